"""Issue 13: the Redis driver under faults. One test per numbered item of the issue, each reproducing the fault
on a private redis-server (or through a TCP proxy for link faults): it failed before the fix and passes after.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from nestq_redis import RedisConnection, RedisQueueModule, RedisQueueWorkerModule, load_config, scripts
from nestq_redis.server import RedisServer
from nestq_redis.store import PushBatchError
from nestq_redis_testkit import LinkProxy, until
from redis.exceptions import ResponseError

from nestq_spec import Application, CancellationToken, module, process, processor

pytestmark = pytest.mark.asyncio



def connection(url: str, prefix: str, **pinned: object) -> RedisConnection:
    return RedisConnection(load_config({"url": url, "key_prefix": prefix, **pinned}, env={}))


def new_queue(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def serving(url: str, prefix: str, providers: list[type[Any]], **pinned: object) -> AsyncIterator[Application]:
    """Serve a worker app (Redis modules + ``providers``) for the block."""
    settings = {"url": url, "key_prefix": prefix, "poll_timeout": 0.1, "visibility_timeout": 2.0, **pinned}
    root = module(imports=[RedisQueueModule.for_root(settings), RedisQueueWorkerModule], providers=providers)(
        type("Issue13App", (), {})
    )
    app = Application.create(root)
    cancel = CancellationToken()
    task = asyncio.create_task(app.serve(cancel, shutdown_timeout=15))
    try:
        yield app
        assert not task.done(), f"the worker stopped serving: {task}"
    finally:
        cancel.cancel()
        await asyncio.wait_for(task, 20)
        await app.container.get(RedisConnection).aclose()


def counting_processor(queue: str, runs: dict[int, int], work: float = 0.0) -> type[Any]:
    async def handle(self: object, job: dict[str, Any]) -> None:
        runs[job["n"]] = runs.get(job["n"], 0) + 1
        if work:
            await asyncio.sleep(work)

    name = f"Count_{queue.replace('-', '_')}"
    cls = type(name, (), {"handle": process(queue=queue)(handle)})
    cls.__qualname__ = name
    return processor(cls)


# --------------------------------------------------------------------------- 1. one corrupted field


async def test_item1_corrupt_field_is_quarantined_alone(redis_server: RedisServer, prefix: str) -> None:
    """A job whose attempts field is not a number goes to the dead letters alone; the others are all claimed."""
    conn = connection(redis_server.url, prefix)
    store = conn.store
    queue = new_queue("corrupt")
    keys = store.keys(queue)
    ids = [await conn.enqueue(queue, {"n": n}) for n in range(8)]
    bad = ids[2]
    await conn.client.hset(keys.meta, f"{bad}:a", "not-a-number")
    claimed = await store.claim(queue, limit=8, lease_seconds=30)
    assert sorted(j.id for j in claimed) == sorted(i for i in ids if i != bad)
    depth = await store.depth(queue)
    assert (depth.ready, depth.leased, depth.dead) == (0, 7, 1)
    letter = await conn.admin.dead_letter(queue, bad)
    assert letter is not None
    assert "corrupt entry quarantined" in letter.error
    assert f"{bad}:a" in letter.error
    assert "not-a-number" in letter.error

    # The sweep: an expired lease whose priority field is corrupt, among healthy expired leases.
    queue2 = new_queue("corrupt-sweep")
    ids2 = [await conn.enqueue(queue2, {"n": n}) for n in range(5)]
    await store.claim(queue2, limit=5, lease_seconds=0.05)
    await conn.client.hset(store.keys(queue2).meta, f"{ids2[1]}:p", "42")
    await until(lambda: _expired(conn, queue2, 5), 5, "five expired leases")
    await store.sweep(queue2, max_attempts=5)
    depth = await store.depth(queue2)
    assert (depth.ready, depth.leased, depth.dead) == (4, 0, 1)
    letter = await conn.admin.dead_letter(queue2, ids2[1])
    assert letter is not None
    assert "priority" in letter.error

    # A delayed job with a corrupt priority is quarantined when promoted, and the claim goes on.
    queue3 = new_queue("corrupt-delayed")
    late = await conn.enqueue(queue3, {"n": 0}, delay=0.01)
    fine = await conn.enqueue(queue3, {"n": 1})
    await conn.client.hset(store.keys(queue3).meta, f"{late}:p", "-1")
    await until(lambda: _due(conn, queue3), 5, "the delayed job due")
    assert [j.id for j in await store.claim(queue3, limit=5, lease_seconds=30)] == [fine]
    assert (await store.depth(queue3)).dead == 1

    # A key of the wrong type fails the script before it writes anything: no job leaves the ready list.
    queue4 = new_queue("wrongtype")
    for n in range(3):
        await conn.enqueue(queue4, {"n": n})
    await conn.client.set(store.keys(queue4).ready[5], "not a list")
    with pytest.raises(ResponseError, match="WRONGTYPE nestq key"):
        await store.claim(queue4, limit=3, lease_seconds=30)
    assert await conn.client.llen(store.keys(queue4).ready[0]) == 3
    await conn.aclose()


async def _expired(conn: RedisConnection, queue: str, n: int) -> bool:
    keys = conn.store.keys(queue)
    return len(await conn.client.zrangebyscore(keys.leases, "-inf", int(time.time() * 1000))) == n


async def _due(conn: RedisConnection, queue: str) -> bool:
    keys = conn.store.keys(queue)
    return len(await conn.client.zrangebyscore(keys.delayed, "-inf", int(time.time() * 1000))) == 1


async def test_item1_worker_runs_every_healthy_job_around_a_corrupt_one(redis_server: RedisServer,
                                                                         prefix: str) -> None:
    """The issue's scenario end to end: one corrupt job among many; every other job runs once."""
    queue = new_queue("corrupt-e2e")
    conn = connection(redis_server.url, prefix)
    ids = [await conn.enqueue(queue, {"n": n}) for n in range(20)]
    await conn.client.hset(conn.store.keys(queue).meta, f"{ids[7]}:a", "not-a-number")
    runs: dict[int, int] = {}
    async with serving(redis_server.url, prefix, [counting_processor(queue, runs)], claim_batch=10):
        await until(lambda: _true(len(runs) == 19), 20, "19 healthy jobs", seen=lambda: _value(sorted(runs)))
        await until(lambda: _settled(conn, queue), 10, "every healthy job acked")
    assert set(runs) == set(range(20)) - {7}
    assert set(runs.values()) == {1}
    assert (await conn.store.depth(queue)).dead == 1
    await conn.aclose()


async def _true(value: bool) -> bool:
    return value


async def _value(value: object) -> object:
    return value


async def _settled(conn: RedisConnection, queue: str) -> bool:
    depth = await conn.store.depth(queue)
    return depth.ready == depth.leased == depth.delayed == 0


# --------------------------------------------------------------------------- 2. one bad queue


async def test_item2_a_broken_queue_does_not_stop_heartbeats_or_acks_of_another(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Queue A's meta key turns into a string while both queues have running jobs: B's long job keeps its lease
    (runs once) and is acked; A's failures are logged naming A, more than once."""
    qa, qb = new_queue("a-broken"), new_queue("b-healthy")
    release_a = asyncio.Event()
    started: dict[str, int] = {"a": 0, "b": 0}

    @processor
    class Both:
        @process(queue=qa)
        async def a(self, job: dict[str, Any]) -> None:
            started["a"] += 1
            await release_a.wait()

        @process(queue=qb)
        async def b(self, job: dict[str, Any]) -> None:
            started["b"] += 1
            await asyncio.sleep(3.0)  # three visibility timeouts: it needs its heartbeats

    conn = connection(redis_server.url, prefix)
    caplog.set_level(logging.WARNING, logger="nestq.redis")
    async with serving(redis_server.url, prefix, [Both], visibility_timeout=1.0, heartbeat_interval=0.2,
                       sweep_interval=0.1, max_attempts=5):
        await conn.enqueue(qa, {"n": 0})
        await until(lambda: _true(started["a"] == 1), 10, "A's job started")
        # Break queue A: its meta hash becomes a string (WRONGTYPE for every script on A).
        meta = conn.store.keys(qa).meta
        await conn.client.delete(meta)
        await conn.client.set(meta, "broken")
        await conn.enqueue(qb, {"n": 1})
        await until(lambda: _true(started["b"] == 1), 10, "B's job started")
        await until(lambda: _settled(conn, qb), 15, "B's job acked", seen=lambda: conn.store.depth(qb))
        release_a.set()
    assert started["b"] == 1, "B's job ran again: its lease was not extended while A was failing"
    assert (await conn.store.depth(qb)).dead == 0
    a_reports = [r for r in caplog.records if f"heartbeat on {qa}" in r.getMessage()]
    assert len(a_reports) >= 2, [r.getMessage() for r in caplog.records]
    assert all("WRONGTYPE" in r.getMessage() for r in a_reports)
    await conn.client.delete(meta)
    await conn.aclose()


# --------------------------------------------------------------------------- 3. batch retries


async def test_item3_a_retried_batch_stores_each_job_once(redis_server: RedisServer, prefix: str) -> None:
    """The link drops part-way through a 50,000-job batch; retrying with the error's batch id stores 50,000."""
    queue = new_queue("batch")
    direct = connection(redis_server.url, prefix)
    async with LinkProxy(redis_server.port) as proxy:
        conn = connection(proxy.url, prefix)
        await conn.ping()
        proxy.cut_after(2_000_000)  # about a third of the batch's bytes
        payloads = [{"n": n, "pad": "x" * 60} for n in range(50_000)]
        with pytest.raises(PushBatchError) as info:
            await conn.push_many_json(queue, payloads)
        stored = (await direct.store.depth(queue)).ready
        assert 0 < stored < 50_000, stored
        proxy.restore()
        ids = await conn.push_many_json(queue, payloads, batch_id=info.value.batch_id)
        assert len(ids) == len(set(ids)) == 50_000
        assert (await direct.store.depth(queue)).ready == 50_000
        # Once the jobs are gone the record still holds: a late retry stores nothing.
        await direct.client.delete(*direct.store.keys(queue).ready, direct.store.keys(queue).jobs)
        await conn.push_many_json(queue, payloads, batch_id=info.value.batch_id)
        assert (await direct.store.depth(queue)).ready == 0
        await conn.aclose()
    await direct.aclose()


# --------------------------------------------------------------------------- 4. lost claim replies


async def test_item4_lost_claim_replies_burn_no_attempt(redis_server: RedisServer, prefix: str) -> None:
    """Three claim replies are lost on the way back (the claims ran): with max_attempts=1 every job still runs
    once, none is dead-lettered, and the client never re-sends a claim."""
    queue = new_queue("lost-claims")
    runs: dict[int, int] = {}
    direct = connection(redis_server.url, prefix)
    claim_sha = hashlib.sha1(scripts.CLAIM.encode()).hexdigest().encode()
    for n in range(6):
        await direct.enqueue(queue, {"n": n})
    # Loaded beforehand, so the replies lost are those of claims that ran (not NOSCRIPT replies).
    assert (await direct.client.script_load(scripts.CLAIM)) == claim_sha.decode()
    async with LinkProxy(redis_server.port) as proxy:
        proxy.drop_reply_after(claim_sha, 3)
        async with serving(proxy.url, prefix, [counting_processor(queue, runs)], max_attempts=1,
                           visibility_timeout=0.6, sweep_interval=0.1, claim_batch=2, concurrency=2):
            await until(lambda: _true(len(runs) == 6), 30, "all six jobs run",
                        seen=lambda: _state(direct, queue, runs))
            await until(lambda: _settled(direct, queue), 10, "every job acked")
        assert proxy.cuts >= 3
    assert runs == dict.fromkeys(range(6), 1)
    assert (await direct.store.depth(queue)).dead == 0
    await direct.aclose()


async def _state(conn: RedisConnection, queue: str, runs: dict[int, int]) -> str:
    letters = await conn.admin.dead_letters(queue)
    return f"runs {runs}, depth {await conn.store.depth(queue)}, dead {[d.error for d in letters]}"


async def test_item4_never_started_is_told_apart_from_died_mid_job(redis_server: RedisServer, prefix: str) -> None:
    """A claim never confirmed gives its attempt back and, after UNCONFIRMED_LIMIT such claims, is dead-lettered as
    "never started"; a confirmed claim whose lease expires says the worker died mid-job."""
    conn = connection(redis_server.url, prefix)
    store = conn.store
    queue = new_queue("never-started")
    job = await conn.enqueue(queue, {"n": 0})
    for round_ in range(scripts.UNCONFIRMED_LIMIT):
        (claimed,) = await store.claim(queue, limit=1, lease_seconds=0.05)
        assert claimed.attempt == 1, f"round {round_}: an unconfirmed claim's attempt was kept"
        await until(lambda: _expired(conn, queue, 1), 5, "the lease expired")
        await store.sweep(queue, max_attempts=3)
    letter = await conn.admin.dead_letter(queue, job)
    assert letter is not None
    assert "never started" in letter.error
    assert letter.attempts == 0

    queue2 = new_queue("died-mid-job")
    job2 = await conn.enqueue(queue2, {"n": 0})
    (claimed,) = await store.claim(queue2, limit=1, lease_seconds=0.05)
    assert await store.confirm(queue2, claimed.lease_token, [claimed.id]) == 1
    await until(lambda: _expired(conn, queue2, 1), 5, "the lease expired")
    await store.sweep(queue2, max_attempts=1)
    letter = await conn.admin.dead_letter(queue2, job2)
    assert letter is not None
    assert "worker died" in letter.error
    assert letter.attempts == 1
    await conn.aclose()


# --------------------------------------------------------------------------- 10. password redaction

SECRET = "Zq9sEcReT"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://user:ab/{SECRET}@example.com:6379/0",  # '/' in a base64 secret
        f"redis://user:ab#{SECRET}@example.com:6379/0",
        f"redis://user:ab?{SECRET}@example.com:6379/0",
        f"redis://user:ab[{SECRET}@example.com:6379/0",
        f"user:{SECRET}@example.com:6379",  # no scheme
        f"rediss://:{SECRET}@example.com:notaport/0",
    ],
)
async def test_item10_password_never_shown_and_every_failure_is_a_config_error(url: str) -> None:
    from nestq_redis import display_url

    from nestq_spec import ConfigError, redact

    assert SECRET not in display_url(url)
    assert SECRET not in redact(url)
    assert SECRET not in redact({"NESTQ_REDIS__URL": url})
    with pytest.raises(ConfigError) as info:
        load_config({"url": url}, env={})
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(env={"NESTQ_REDIS__URL": url})
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("password", [f"ab/#?[@{SECRET}", f"ab@{SECRET}"])
async def test_item10_url_with_escaped_specials_boots_and_secrets_stay_out_of_views(password: str) -> None:
    import dataclasses
    from urllib.parse import quote

    from nestq_redis import RedisQueueModule

    # Percent-encoded, or an unescaped '@' (the client library splits the userinfo at the last '@' too).
    url = f"redis://user:{quote(password, safe='') if '/' in password else password}@example.com:6379/0"
    config = load_config({"url": url, "password": SECRET}, env={})
    assert config.password == SECRET
    assert config.url == url
    for view in (repr(config), repr(vars(config)), repr(dataclasses.asdict(config)), str(vars(config)),
                 repr(RedisConnection(config)), repr(RedisQueueModule.for_root({"url": url}))):
        assert SECRET not in view
        assert quote(SECRET) not in view


# --------------------------------------------------------------------------- 7. permanent errors


@pytest.fixture
def acl_redis_server() -> Any:
    """A private redis-server with a password and an ACL user that may not run scripts."""
    from nestq_redis_testkit import require_redis_server

    require_redis_server()
    with RedisServer(extra_args=["--requirepass", "right-pw"]) as server:
        yield server


async def _serve_once(url: str, prefix: str, queue: str, **pinned: object) -> BaseException | None:
    runs: dict[int, int] = {}
    settings = {"url": url, "key_prefix": prefix, "poll_timeout": 0.1, **pinned}
    root = module(imports=[RedisQueueModule.for_root(settings), RedisQueueWorkerModule],
                  providers=[counting_processor(queue, runs)])(type("Issue13Boot", (), {}))
    app = Application.create(root)
    cancel = CancellationToken()
    task = asyncio.create_task(app.serve(cancel, shutdown_timeout=10))
    done, _ = await asyncio.wait({task}, timeout=10)
    if not done:
        cancel.cancel()
        await asyncio.wait_for(task, 15)
        return None
    return task.exception()


async def test_item7_wrong_password_and_missing_permission_fail_the_boot(acl_redis_server: RedisServer,
                                                                          prefix: str) -> None:
    from nestq_spec import ConfigError

    server = acl_redis_server
    queue = new_queue("acl")
    wrong = f"redis://:wrong-pw@127.0.0.1:{server.port}/0"
    error = await _serve_once(wrong, prefix, queue)
    assert isinstance(error, ConfigError), error
    assert "refused the credentials" in str(error)
    assert "wrong-pw" not in str(error)

    admin = connection(server.url, prefix, password="right-pw")
    await admin.client.execute_command("ACL", "SETUSER", "noscripts", "on", ">pw", "~*", "+@all", "-evalsha",
                                       "-eval", "-script")
    error = await _serve_once(f"redis://noscripts:pw@127.0.0.1:{server.port}/0", prefix, new_queue("acl"))
    assert isinstance(error, ConfigError), error
    assert "denies a permission" in str(error)
    await admin.aclose()


async def test_item7_persistent_errors_keep_being_reported(redis_server: RedisServer, prefix: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A queue whose keys hold the wrong type is reported at WARNING again and again, never only once."""
    queue = new_queue("wrongtype-loop")
    conn = connection(redis_server.url, prefix)
    await conn.client.set(conn.store.keys(queue).signal, "a string, not a list")
    caplog.set_level(logging.DEBUG, logger="nestq.redis")
    async with serving(redis_server.url, prefix, [counting_processor(queue, {})], poll_timeout=0.1):
        await until(lambda: _true(len(_warnings(caplog, f"claim on {queue}")) >= 3), 15,
                    "three WARNING reports of the failing claim loop")
    assert all("WRONGTYPE" in r.getMessage() for r in _warnings(caplog, f"claim on {queue}"))
    await conn.client.delete(conn.store.keys(queue).signal)
    await conn.aclose()


def _warnings(caplog: pytest.LogCaptureFixture, what: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and what in r.getMessage()]


# --------------------------------------------------------------------------- 12. inputs the producer accepts


@pytest.mark.parametrize(
    ("job_id", "why"),
    [("", "empty"), ("x" * 1_000_000, "characters long"), (42, "must be a string"), ("a\ud800b", "not allowed"),
     ("has space", "not allowed"), (":lead", "not allowed")],
)
async def test_item12_job_ids_are_validated(redis_server: RedisServer, prefix: str, job_id: Any, why: str) -> None:
    conn = connection(redis_server.url, prefix)
    queue = new_queue("ids")
    # The message names the job id and the problem (not a codec's or the server's raw error).
    with pytest.raises(ValueError, match=f"job id.*{why}"):
        await conn.push_json(queue, {"n": 1}, job_id=job_id)
    with pytest.raises(ValueError, match=f"job id.*{why}"):
        await conn.push_raw(queue, b"{}", job_id=job_id, priority=3)
    assert (await conn.store.depth(queue)).ready == 0
    assert await conn.enqueue(queue, {"n": 1}, job_id="order-42:v1.0_x") == "order-42:v1.0_x"
    await conn.aclose()


async def test_item12_oversize_jobs_are_refused_by_push_raw_and_the_worker(redis_server: RedisServer,
                                                                           prefix: str) -> None:
    """push_raw holds data to max_payload_bytes; a worker dead-letters a planted oversize job without loading it."""
    queue = new_queue("huge")
    limit = 64 * 1024
    conn = connection(redis_server.url, prefix, max_payload_bytes=limit)
    with pytest.raises(ValueError, match="MAX_PAYLOAD_BYTES"):
        await conn.push_raw(queue, b"x" * (limit + 1))
    # Planted behind the driver's back (another producer with a higher limit): three oversize jobs, one normal.
    big = connection(redis_server.url, prefix)
    huge_ids = [await big.enqueue(queue, {"n": 100 + n, "pad": "x" * (2 * limit)}) for n in range(3)]
    await big.enqueue(queue, {"n": 1})
    runs: dict[int, int] = {}
    async with serving(redis_server.url, prefix, [counting_processor(queue, runs)], max_payload_bytes=limit):
        await until(lambda: _true(runs == {1: 1}), 10, "the normal job run", seen=lambda: _value(runs))
        await until(lambda: _dead(conn, queue, 3), 10, "three oversize jobs dead-lettered")
    for job_id in huge_ids:
        letter = await conn.admin.dead_letter(queue, job_id)
        assert letter is not None
        assert "above max_payload_bytes=65536" in letter.error
    assert runs == {1: 1}
    await conn.aclose()
    await big.aclose()


async def _dead(conn: RedisConnection, queue: str, n: int) -> bool:
    return (await conn.store.depth(queue)).dead == n


# --------------------------------------------------------------------------- 5. shutdown defaults


async def test_item5_default_grace_fits_in_the_default_shutdown_timeout() -> None:
    import inspect

    from nestq_redis import RedisConfig
    from nestq_redis.config import SHUTDOWN_MARGIN

    from nestq_spec.cli import build_parser

    app_default = inspect.signature(Application.run).parameters["shutdown_timeout"].default
    cli_default = build_parser().parse_args(["run", "x:y"]).shutdown_timeout
    assert RedisConfig().shutdown_grace + SHUTDOWN_MARGIN <= min(app_default, cli_default)


async def test_item5_sigterm_during_a_long_job_is_a_clean_exit(redis_server: RedisServer, prefix: str,
                                                                tmp_path: Any) -> None:
    """``nestq run`` with the driver's grace + margin as its timeout: SIGTERM while a job runs past the grace
    exits 0 (not 2) and the job is given back, ready to run again at once with its attempt refunded. Scaled down:
    grace 1 s instead of 25 s."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from nestq_redis.config import SHUTDOWN_MARGIN

    here = Path(__file__).resolve().parent
    queue = new_queue("long")
    grace = 1.0
    env = dict(os.environ)
    env.update({"NESTQ_REDIS__URL": redis_server.url, "NESTQ_REDIS__KEY_PREFIX": prefix, "NESTQ_FAULT_QUEUE": queue,
                "NESTQ_FAULT_RESULTS": f"{prefix}:results", "NESTQ_REDIS__SHUTDOWN_GRACE": str(grace),
                "PYTHONPATH": os.pathsep.join(p for p in (str(here), env.get("PYTHONPATH", "")) if p)})
    env.pop("PYTEST_CURRENT_TEST", None)
    log = tmp_path / "worker.log"
    conn = connection(redis_server.url, prefix)
    job_id = await conn.enqueue(queue, {"n": 1, "work": 60})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nestq_spec.cli", "run", "redis_fault_app:WorkerApp", "--shutdown-timeout",
             str(grace + SHUTDOWN_MARGIN)], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=here)
    try:
        await until(lambda: _leased(conn, queue), 20, "the long job to be claimed",
                    seen=lambda: _value(log.read_text(errors="replace")))
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None:
            assert time.monotonic() - stopping < grace + SHUTDOWN_MARGIN + 10, "the worker did not exit"
            await asyncio.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text
    assert "did not return within" not in text
    assert "still running after the" in text
    depth = await conn.store.depth(queue)
    assert (depth.leased, depth.ready) == (0, 1)  # given back to its queue, not left to a lease to expire
    assert await conn.client.hget(conn.store.keys(queue).meta, f"{job_id}:a") is None  # its attempt refunded
    await conn.aclose()


async def _leased(conn: RedisConnection, queue: str) -> bool:
    return (await conn.store.depth(queue)).leased == 1


# --------------------------------------------------------------------------- 8. ghost queues


async def test_item8_queue_registration_survives_redis_losing_its_data(own_redis_server: RedisServer,
                                                                       prefix: str) -> None:
    """Redis restarts empty (no persistence) while a producer keeps pushing: the queue is listed again."""
    server = own_redis_server
    queue = new_queue("ghost")
    conn = connection(server.url, prefix)
    await conn.enqueue(queue, {"n": 0})
    await conn.push_many_json(queue, [{"n": 1}])
    assert [q.name for q in await conn.admin.queues()] == [queue]
    await conn.client.flushall()  # what a restart without persistence (or a failover to an empty replica) does
    assert await conn.admin.queues() == []

    async def listed() -> bool:
        await conn.enqueue(queue, {"n": 2})
        return [q.name for q in await conn.admin.queues()] == [queue]

    await until(listed, 5, "the queue to be listed again after pushes into the emptied Redis")
    await conn.client.flushall()

    async def listed_after_batches() -> bool:
        await conn.push_many_json(queue, [{"n": 3}, {"n": 4}])
        return [q.name for q in await conn.admin.queues()] == [queue]

    await until(listed_after_batches, 5, "the queue to be listed again after batch pushes")
    await conn.aclose()


# --------------------------------------------------------------------------- 9. dead letters


async def test_item9_dead_letter_cap_on_write_and_one_log_line_each(redis_server: RedisServer, prefix: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    queue = new_queue("dead-cap")

    @processor
    class Fails:
        @process(queue=queue)
        async def handle(self, job: dict[str, Any]) -> None:
            raise ValueError(f"bad job {job['n']}\nsecond line of the message")

    conn = connection(redis_server.url, prefix)
    caplog.set_level(logging.INFO, logger="nestq.redis")
    async with serving(redis_server.url, prefix, [Fails], max_attempts=1, dead_letter_max=5):
        await conn.push_many_json(queue, [{"n": n} for n in range(40)])
        await until(lambda: _settled(conn, queue), 20, "every job failed", seen=lambda: conn.store.depth(queue))
        # The cap holds as soon as the letters are written, not at the next trim (every 60 s).
        assert (await conn.store.depth(queue)).dead == 5
    letters = await conn.admin.dead_letters(queue)
    assert len(letters) == 5
    dead_lines = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert len(dead_lines) == 40
    assert all(r.exc_info is None for r in dead_lines)
    assert all("\n" not in r.getMessage() for r in dead_lines)
    await conn.aclose()


# --------------------------------------------------------------------------- 6. memory pressure


async def test_item6_leases_are_kept_and_recovered_at_maxmemory(prefix: str) -> None:
    """Over maxmemory with noeviction, heartbeat, ack, fail, sweep and purge still run (script flag allow-oom)."""
    from nestq_redis_testkit import require_redis_server
    from redis.exceptions import OutOfMemoryError

    require_redis_server()
    with RedisServer(extra_args=["--maxmemory-policy", "noeviction"]) as server:
        conn = connection(server.url, prefix)
        store = conn.store
        queue = new_queue("oom")
        for n in range(4):
            await conn.enqueue(queue, {"n": n})
        jobs = await store.claim(queue, limit=4, lease_seconds=0.3)
        await store.confirm(queue, jobs[0].lease_token, [j.id for j in jobs])
        for n in range(200):
            await conn.client.set(f"{prefix}:filler:{n}", b"x" * 10_000)
        # Over the limit, as a full server is: maxmemory set below what is used.
        used = (await conn.client.info("memory"))["used_memory"]
        await conn.client.config_set("maxmemory", used - 500_000)
        with pytest.raises(OutOfMemoryError):
            await conn.client.set(f"{prefix}:one-more", b"x")
        pairs = [(j.id, j.lease_token) for j in jobs]
        assert await store.heartbeat(queue, pairs[:3], 30) == set()
        assert await store.ack(queue, pairs[:1]) == 1
        assert await store.fail(queue, jobs[1].id, jobs[1].lease_token, "boom", retry_in=None,
                                max_attempts=5) == "dead"
        await until(lambda: _expired(conn, queue, 1), 5, "the unheartbeated lease to expire")
        assert (await store.sweep(queue, max_attempts=5)).expired == 1  # recovered, under pressure
        assert await store.purge_dead(queue) == 1
        depth = await store.depth(queue)
        assert (depth.ready, depth.leased, depth.dead) == (1, 1, 0)
        await conn.aclose()


async def test_item6_worker_start_warns_about_eviction_and_no_persistence(prefix: str,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    from nestq_redis_testkit import require_redis_server

    require_redis_server()
    caplog.set_level(logging.WARNING, logger="nestq.redis")
    with RedisServer(appendonly=False, extra_args=["--maxmemory-policy", "allkeys-lru"]) as server:
        queue = new_queue("evict")
        async with serving(server.url, prefix, [counting_processor(queue, {})]):
            await until(lambda: _true(any("persistence off" in r.getMessage() for r in caplog.records)), 10,
                        "the persistence warning")
    messages = [r.getMessage() for r in caplog.records]
    assert sum("maxmemory-policy allkeys-lru" in m for m in messages) == 1
    assert sum("persistence off" in m for m in messages) == 1
