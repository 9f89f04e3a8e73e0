"""Module boot, the producer API and the worker's behaviour, on the embedded fakeredis (and one real server)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from nestq_redis import (
    RedisConfig,
    RedisConnection,
    RedisQueueModule,
    RedisQueueWorkerModule,
    RedisWorker,
)
from nestq_redis.server import RedisServer, free_port
from nestq_redis.worker import error_text
from nestq_redis_testkit import require_redis_server

from nestq_spec import (
    Application,
    BootError,
    CancellationToken,
    JobProducer,
    QueueNameError,
    current_job,
    module,
    process,
    processor,
)

pytestmark = pytest.mark.asyncio


def fake_url() -> str:
    return f"fakeredis://{uuid.uuid4().hex[:8]}"


def app_root(settings: dict[str, object], *providers: type[Any], worker: bool = True) -> type[Any]:
    imports: list[Any] = [RedisQueueModule.for_root(settings)]
    if worker:
        imports.append(RedisQueueWorkerModule)
    return module(imports=imports, providers=list(providers))(type("App", (), {}))


async def eventually(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


class Log:
    """Deliveries seen by a test's processor: (payload, attempt, job id)."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, int, str | None]] = []
        self.running = 0
        self.max_running = 0
        self.release = asyncio.Event()


def make_processor(queue: str, log: Log, *, hold: Callable[[Any], bool] = lambda p: False,
                   fail: Callable[[Any, int], bool] = lambda p, a: False) -> type[Any]:
    async def handle(self: object, job: Any) -> None:
        ctx = current_job()
        log.seen.append((job, ctx.attempt, ctx.job_id))
        log.running += 1
        log.max_running = max(log.max_running, log.running)
        try:
            if hold(job):
                await log.release.wait()
            if fail(job, ctx.attempt):
                raise RuntimeError(f"fails on attempt {ctx.attempt}")
        finally:
            log.running -= 1

    name = f"P_{queue.replace('-', '_')}"
    cls = type(name, (), {"handle": process(queue=queue)(handle)})
    cls.__qualname__ = name
    return processor(cls)


@asynccontextmanager
async def serving(root: type[Any], grace: float = 10.0) -> AsyncIterator[tuple[Application, asyncio.Task[None]]]:
    app = Application.create(root)
    cancel = CancellationToken()
    task = asyncio.create_task(app.serve(cancel, shutdown_timeout=grace))
    try:
        yield app, task
    finally:
        cancel.cancel()
        await asyncio.wait_for(asyncio.shield(task), grace + 5)


FAST: dict[str, object] = {"poll_timeout": 0.05, "visibility_timeout": 1.0, "heartbeat_interval": 0.2,
                           "backoff_base": 0.01, "backoff_cap": 0.05, "shutdown_grace": 1.0}


# ------------------------------------------------------------------------------------------------ boot


async def test_modules_boot_and_bind_the_producer() -> None:
    url = fake_url()
    app = Application.create(app_root({"url": url}))
    producer = app.container.get(JobProducer)
    assert isinstance(producer, RedisConnection)
    assert producer is app.container.get(RedisConnection)
    assert app.container.get(RedisConfig).url == url
    assert [t.name for t in app.transports] == ["RedisWorker"]
    assert isinstance(app.transports[0].build(app.container), RedisWorker)
    assert RedisQueueModule.for_root({"url": url}) == RedisQueueModule.for_root({"url": url})
    assert not Application.create(app_root({"url": url}, worker=False)).transports


async def test_worker_module_without_the_producer_module_is_a_boot_error() -> None:
    app = Application.create(module(imports=[RedisQueueWorkerModule])(type("Lonely", (), {})))
    with pytest.raises(BootError, match=r"RedisQueueModule\.for_root"):
        await app.serve(CancellationToken())


async def test_dynamic_module_imported_twice_with_different_settings_is_refused() -> None:
    a = module(imports=[RedisQueueModule.for_root({"url": fake_url()})])(type("A", (), {}))
    root = module(imports=[a, RedisQueueModule.for_root({"url": fake_url()})])(type("Root", (), {}))
    with pytest.raises(BootError, match="twice"):
        Application.create(root)


# ------------------------------------------------------------------------------------------------ producer


async def test_producer_api() -> None:
    conn = RedisConnection(RedisConfig(url=fake_url(), max_payload_bytes=2048))
    queue = "api"
    job_id = await conn.enqueue(queue, {"n": 1}, job_id="fixed")
    assert job_id == "fixed"
    assert await conn.enqueue(queue, {"n": 2}, job_id="fixed") == "fixed"  # idempotent while it exists
    await conn.push_json(queue, {"n": 3}, delay=60)
    await conn.push_json(queue, {"n": 4}, priority=9)
    ids = await conn.push_many_json(queue, [{"n": i} for i in range(5, 10)])
    assert len(set(ids)) == 5
    info = await conn.admin.queue(queue)
    assert (info.ready, info.delayed, info.running, info.dead) == (7, 1, 0, 0)
    with pytest.raises(ValueError, match="MAX_PAYLOAD_BYTES"):
        await conn.push_json(queue, {"s": "x" * 4096})
    with pytest.raises(ValueError, match="MAX_PAYLOAD_BYTES"):
        await conn.push_many_json(queue, [{"n": 0}, {"s": "x" * 4096}])
    with pytest.raises(QueueNameError):
        await conn.push_json("bad queue", {})
    with pytest.raises(ValueError, match="priority"):
        await conn.push_json(queue, {}, priority=10)
    assert (await conn.admin.queue(queue)).ready == 7  # nothing stored by the refused pushes
    assert [q.name for q in await conn.admin.queues()] == [queue]
    await conn.aclose()


# ------------------------------------------------------------------------------------------------ worker


async def test_jobs_run_with_attempts_and_ids_and_retries() -> None:
    log = Log()
    queue = "retries"
    proc = make_processor(queue, log, fail=lambda p, a: p.get("flaky") and a < 3)
    async with serving(app_root({"url": fake_url(), **FAST}, proc)) as (app, _):
        conn = app.container.get(RedisConnection)
        flaky = await conn.enqueue(queue, {"flaky": True})
        plain = await conn.enqueue(queue, {"flaky": False})
        await eventually(lambda: len(log.seen) == 4, "3 attempts of the flaky job and 1 of the plain one")
        assert [(a, i) for p, a, i in log.seen if p["flaky"]] == [(1, flaky), (2, flaky), (3, flaky)]
        assert [(a, i) for p, a, i in log.seen if not p["flaky"]] == [(1, plain)]
        await eventually(lambda: log.running == 0, "the last run to return")


async def test_concurrency_is_bounded_across_queues() -> None:
    log = Log()
    procs = [make_processor(q, log, hold=lambda p: True) for q in ("cc-a", "cc-b")]
    async with serving(app_root({"url": fake_url(), "concurrency": 3, "claim_batch": 10, **FAST}, *procs)) as (app, _):
        conn = app.container.get(RedisConnection)
        for q in ("cc-a", "cc-b"):
            await conn.push_many_json(q, [{"n": i} for i in range(5)])
        await eventually(lambda: log.running == 3, "3 jobs running")
        info = [await conn.admin.queue(q) for q in ("cc-a", "cc-b")]
        assert sum(i.running for i in info) == 3, info  # nothing claimed beyond the free slots
        log.release.set()
        await eventually(lambda: len(log.seen) == 10, "all 10 jobs")
        assert log.max_running == 3


async def test_long_job_keeps_its_lease_through_heartbeats() -> None:
    log = Log()
    queue = "long"
    proc = make_processor(queue, log, hold=lambda p: True)
    settings = {"url": fake_url(), **FAST, "visibility_timeout": 0.3, "heartbeat_interval": 0.05}
    async with serving(app_root(settings, proc)) as (app, _), serving(app_root(settings, proc)):
        conn = app.container.get(RedisConnection)
        await conn.push_json(queue, {"n": 1})
        await eventually(lambda: len(log.seen) == 1, "the job to start")
        started = time.monotonic()
        # Three visibility timeouts with both workers polling: a lost lease would show as a second delivery.
        while time.monotonic() - started < 0.9:
            assert len(log.seen) == 1, log.seen
            await asyncio.sleep(0.01)
        log.release.set()
        await eventually(lambda: log.running == 0, "the job to finish")
    assert len(log.seen) == 1


async def test_lost_lease_is_logged_and_not_acked(caplog: pytest.LogCaptureFixture) -> None:
    log = Log()
    queue = "lost"
    proc = make_processor(queue, log, hold=lambda p: True)
    async with serving(app_root({"url": fake_url(), **FAST}, proc)) as (app, _):
        conn = app.container.get(RedisConnection)
        job_id = await conn.enqueue(queue, {"n": 1})
        await eventually(lambda: len(log.seen) == 1, "the job to start")
        # Take the lease away behind the worker's back, as a sweep would after an expired lease.
        with caplog.at_level(logging.WARNING, logger="nestq.redis"):
            await conn.client.hdel(conn.store.keys(queue).meta, f"{job_id}:t")
            await eventually(lambda: "lease lost" in caplog.text, "the heartbeat to notice")
            log.release.set()
            await eventually(lambda: log.running == 0, "the job to finish")
            await eventually(lambda: "lost" in caplog.text and "ack" in caplog.text, "the stale ack warning")
        # The job was not acked by the worker that lost it: its data is still there.
        assert await conn.client.hexists(conn.store.keys(queue).jobs, job_id)


async def test_shutdown_interrupts_jobs_past_the_grace_and_they_are_redelivered() -> None:
    log = Log()
    queue = "grace"
    proc = make_processor(queue, log, hold=lambda p: p.get("stuck", False))
    settings = {"url": fake_url(), **FAST, "shutdown_grace": 0.2, "visibility_timeout": 0.5,
                "heartbeat_interval": 0.1}
    async with serving(app_root(settings, proc)) as (app, task):
        conn = app.container.get(RedisConnection)
        await conn.push_json(queue, {"stuck": True})
        await eventually(lambda: len(log.seen) == 1, "the stuck job to start")
    assert task.done()
    assert task.exception() is None
    info = await conn.admin.queue(queue)
    assert (info.ready, info.running) == (1, 0)  # given back: ready again at once, neither acked nor lost
    log.release.set()
    async with serving(app_root(settings, proc)):
        await eventually(lambda: len(log.seen) == 2, "the stuck job to be redelivered")
    assert log.seen[1][1] == 1  # the interrupted run was refunded: a cut-off is not a failed attempt


async def test_a_handler_raising_cancelled_error_is_a_failed_attempt() -> None:
    log = Log()
    queue = "self-cancel"

    async def handle(self: object, job: Any) -> None:
        log.seen.append((job, current_job().attempt, current_job().job_id))
        if current_job().attempt == 1:
            raise asyncio.CancelledError("an inner timeout leaked out")

    cls = type("SelfCancel", (), {"handle": process(queue=queue)(handle)})
    proc = processor(cls)
    async with serving(app_root({"url": fake_url(), **FAST, "concurrency": 1}, proc)) as (app, task):
        conn = app.container.get(RedisConnection)
        await conn.push_json(queue, {"n": 1})
        await conn.push_json(queue, {"n": 2})
        await eventually(lambda: len(log.seen) == 4, "both jobs retried once after their CancelledError")
        assert not task.done()
        assert sorted(a for _, a, _ in log.seen) == [1, 1, 2, 2]


async def test_idle_worker_stops_promptly() -> None:
    proc = make_processor("idle", Log())
    app = Application.create(app_root({"url": fake_url(), "poll_timeout": 5.0}, proc))
    cancel = CancellationToken()
    task = asyncio.create_task(app.serve(cancel))
    await asyncio.sleep(0.1)  # let it block in its (5 s) wait for jobs
    started = time.monotonic()
    cancel.cancel()
    await asyncio.wait_for(task, 3)
    assert time.monotonic() - started < 0.5


async def test_error_text_is_defensive() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert error_text(Unprintable()).startswith("Unprintable: <str() of the exception failed")
    assert error_text(ValueError()) == "ValueError"
    assert len(error_text(RuntimeError("x" * 1_000_000))) <= 4000


async def test_password_protected_server(prefix: str) -> None:
    require_redis_server()
    secret = "s3cret-pw"
    with RedisServer(extra_args=["--requirepass", secret]) as server:
        good = RedisConnection(RedisConfig(url=f"redis://:{secret}@127.0.0.1:{server.port}/0", key_prefix=prefix))
        await good.push_json("pw", {"n": 1})
        assert (await good.admin.queue("pw")).ready == 1
        via_setting = RedisConnection(RedisConfig(url=server.url, password=secret, key_prefix=prefix))
        assert (await via_setting.admin.queue("pw")).ready == 1
        bad = RedisConnection(RedisConfig(url=f"redis://:wrong-{secret}@127.0.0.1:{server.port}/0",
                                          key_prefix=prefix))
        with pytest.raises(Exception) as info:
            await bad.push_json("pw", {"n": 2})
        assert secret not in str(info.value)
        assert secret not in repr(info.value)
        for conn in (good, via_setting, bad):
            await conn.aclose()


async def test_tls_with_password(prefix: str, tmp_path: Path) -> None:
    """A rediss:// URL with a password reaches a TLS-only listener; the worker runs jobs over it."""
    require_redis_server()
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed, so no certificate can be made for the TLS test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    tls_port = free_port()
    secret = "tls-s3cret"
    tls = ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
           "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--requirepass", secret]
    with RedisServer(extra_args=tls):
        url = f"rediss://:{secret}@127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}"
        log = Log()
        proc = make_processor("tls", log)
        async with serving(app_root({"url": url, "key_prefix": prefix, **FAST}, proc)) as (app, _):
            conn = app.container.get(RedisConnection)
            assert secret not in repr(conn)
            await conn.push_many_json("tls", [{"n": i} for i in range(20)])
            await eventually(lambda: len(log.seen) == 20, "20 jobs over TLS")

