"""``nestq nats``: depths and dead letters (list, show, redrive, purge) on the local server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from typing import Any

import nats
import nats.js.errors
import pytest
from nestq_spec import Application, CancellationToken, module, process, processor

from nestq_nats import NatsConnection, NatsQueueModule, NatsQueueWorkerModule, load_config
from nestq_nats.admin import NatsAdmin
from nestq_nats.cli import main
from nestq_nats.layout import Layout
from nestq_nats.server import server_answers

URL = os.environ.get("NESTQ_NATS__URL", "nats://127.0.0.1:4222")
QUEUE = "cli.dead:letters"


@processor
class AlwaysFails:
    @process(queue=QUEUE)
    async def handle(self, job: dict[str, Any]) -> None:
        raise ValueError(f"job {job['n']} fails on purpose\nsecond line")


@pytest.fixture
def prefix() -> Any:
    if not URL.startswith("nats://127.0.0.1") or not server_answers("127.0.0.1", 4222):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no NATS server answers on 127.0.0.1:4222")
        pytest.skip("no NATS server on 127.0.0.1:4222")
    name = f"nqcli-{uuid.uuid4().hex[:8]}"
    yield name

    async def drop() -> None:
        client = await nats.connect(URL)
        js = client.jetstream()
        for stream in (Layout(name).jobs_stream, Layout(name).dead_stream):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
        await client.close()

    asyncio.run(drop())


async def _three_dead_letters(prefix: str) -> None:
    settings = {"url": URL, "stream_prefix": prefix, "max_attempts": 2, "backoff_base": 0.01, "backoff_cap": 0.01,
                "visibility_timeout": 2.0, "heartbeat_interval": 0.5}
    root = module(imports=[NatsQueueModule.for_root(settings), NatsQueueWorkerModule], providers=[AlwaysFails])(
        type("CliApp", (), {}))
    conn = NatsConnection(load_config(settings))
    await conn.push_many_json(QUEUE, [{"n": i} for i in range(3)])
    app = Application.create(root)
    cancel = CancellationToken()
    task = asyncio.create_task(app.serve(cancel, shutdown_timeout=10))
    admin = NatsAdmin(conn)
    try:
        deadline = time.monotonic() + 30
        while (found := (await admin.dead_counts()).get(QUEUE, 0)) < 3:
            assert time.monotonic() < deadline, f"3 dead letters within 30 s; found {found}"
            await asyncio.sleep(0.05)
    finally:
        cancel.cancel()
        await task
        await app.close()
        await conn.aclose()


def test_dead_letters_are_listed_shown_redriven_and_purged(prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_three_dead_letters(prefix))
    base = ["--url", URL, "--prefix", prefix, "--json"]

    assert main([*base, "queues"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"queue": QUEUE, "depth": 0, "dead": 3}]

    assert main([*base, "dead", "list", QUEUE]) == 0
    letters = json.loads(capsys.readouterr().out)
    assert [(d["attempts"], d["envelope"]["payload"]["n"]) for d in letters] == [(2, 0), (2, 1), (2, 2)]
    assert all("fails on purpose" in d["error"] and "ValueError" in d["error"] for d in letters)

    first = letters[0]["id"]
    assert main([*base, "dead", "show", str(first)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["queue"] == QUEUE
    assert "second line" in shown["error"]  # the whole error is kept, newlines included

    assert main([*base, "dead", "redrive", QUEUE]) == 2  # neither ids nor --all
    capsys.readouterr()
    assert main([*base, "dead", "redrive", QUEUE, str(first), "--yes"]) == 0
    assert json.loads(capsys.readouterr().out) == {"queue": QUEUE, "redriven": 1}
    assert main([*base, "queues"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"queue": QUEUE, "depth": 1, "dead": 2}]

    assert main([*base, "dead", "purge", QUEUE, "--all", "--yes"]) == 0
    assert json.loads(capsys.readouterr().out) == {"queue": QUEUE, "purged": 2}
    assert main([*base, "dead", "list", QUEUE]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_an_unreachable_server_is_one_error_without_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    from nestq_nats.server import free_port

    code = main(["--url", f"nats://u:hunter2@127.0.0.1:{free_port()}", "queues"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot reach NATS at nats://u:***@127.0.0.1" in err
    assert "hunter2" not in err
