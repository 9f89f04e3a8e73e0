"""Issue 13, item 11: the operator CLI on a private redis-server: redrive needs ids or --all, destructive actions
are confirmed on a terminal (--yes skips), and a dead letter nested 100,000 levels deep is shown truncated."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from nestq_redis import RedisConnection, load_config
from nestq_redis.cli import main
from nestq_redis.server import RedisServer


def seed(url: str, prefix: str, queue: str, raw: list[bytes]) -> list[str]:
    """Dead-letter the raw envelopes ``raw`` on ``queue``; return their ids."""

    async def go() -> list[str]:
        conn = RedisConnection(load_config({"url": url, "key_prefix": prefix}, env={}))
        ids = [await conn.store.push(queue, data) for data in raw]
        for job in await conn.store.claim(queue, limit=len(raw), lease_seconds=30):
            await conn.store.fail(queue, job.id, job.lease_token, "Boom: bad", retry_in=None, max_attempts=3)
        await conn.aclose()
        return ids

    return asyncio.run(go())


def run(capsys: pytest.CaptureFixture[str], url: str, prefix: str, *argv: str) -> tuple[int, str, str]:
    code = main(["--url", url, "--prefix", prefix, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def dead_count(capsys: pytest.CaptureFixture[str], url: str, prefix: str, queue: str) -> int:
    code, out, _ = run(capsys, url, prefix, "--json", "queues")
    assert code == 0
    return int(next(q["dead"] for q in json.loads(out) if q["queue"] == queue))


def test_item11_redrive_needs_ids_or_all_and_confirms_on_a_terminal(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, prefix, queue = redis_server.url, f"cli-{uuid.uuid4().hex[:8]}", "mail"
    seed(url, prefix, queue, [b'{"v": 1, "payload": {"n": %d}}' % n for n in range(3)])

    code, _, err = run(capsys, url, prefix, "dead", "redrive", queue)
    assert code == 2
    assert "--all" in err
    assert dead_count(capsys, url, prefix, queue) == 3

    # On a terminal: asked first; anything but yes aborts.
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "n")
    code, _, err = run(capsys, url, prefix, "dead", "redrive", queue, "--all")
    assert code == 1
    assert "aborted" in err
    assert asked == [f"Redrive all 3 dead letter(s) of {queue}? [y/N] "]
    code, _, err = run(capsys, url, prefix, "dead", "purge", queue, "--all")
    assert code == 1
    assert dead_count(capsys, url, prefix, queue) == 3

    code, out, _ = run(capsys, url, prefix, "dead", "redrive", queue, "--all", "--yes")
    assert code == 0
    assert "3 dead letter(s) redriven" in out
    assert dead_count(capsys, url, prefix, queue) == 0


def test_item11_deeply_nested_dead_letter_is_shown_truncated(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url, prefix, queue = redis_server.url, f"cli-{uuid.uuid4().hex[:8]}", "deep"
    deep = b'{"v": 1, "payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    medium = b'{"v": 1, "payload": ' + b"[" * 500 + b"]" * 500 + b"}"  # parses, but too deep to print
    (deep_id, medium_id) = seed(url, prefix, queue, [deep, medium])

    code, out, _ = run(capsys, url, prefix, "--json", "dead", "list", queue)
    assert code == 0
    letters = json.loads(out)
    assert len(letters) == 2
    assert all("truncated" in letter["envelope"] for letter in letters)
    for job_id in (deep_id, medium_id):
        code, out, _ = run(capsys, url, prefix, "dead", "show", queue, job_id)
        assert code == 0
        assert "nested more than 100 levels deep" in out
        code, out, _ = run(capsys, url, prefix, "--json", "dead", "show", queue, job_id)
        assert code == 0
        assert "truncated" in json.loads(out)["envelope"]
