"""Tests of the storage layer of the Redis driver, against fakeredis and a real Redis server."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import fakeredis
import pytest
import pytest_asyncio
import redis.asyncio
from nestq_redis import store as store_module
from nestq_redis.store import ClaimedJob, RedisQueueStore

T = TypeVar("T")

REDIS_URL = os.environ.get("NESTQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
Q = "emails"


async def eventually(predicate: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def count_keys(store: RedisQueueStore) -> int:
    """Keys under the prefix, not counting a batch push's retry record, which must expire within the hour."""
    keys = [k async for k in store.client.scan_iter(match=f"{store.prefix}:*", count=1000)]
    records = [k for k in keys if k.endswith(b":batches")]
    for key in records:
        assert 0 < await store.client.pttl(key) <= 3600 * 1000, f"{key!r} does not expire within the hour"
    return len(keys) - len(records)


async def server_ms(store: RedisQueueStore) -> float:
    sec, usec = await store.client.time()
    return sec * 1000 + usec / 1000


@pytest_asyncio.fixture(params=["fakeredis", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisQueueStore]:
    prefix = f"nestqtest-{uuid.uuid4().hex[:12]}"
    client: redis.asyncio.Redis
    if request.param == "fakeredis":
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    else:
        client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            await client.ping()
        except (redis.exceptions.ConnectionError, OSError) as exc:
            await client.aclose()
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI=true but Redis at {REDIS_URL} is unreachable: {exc}")
            pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    try:
        yield RedisQueueStore(client, prefix=prefix)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def last_score(store: RedisQueueStore, key: str) -> float:
    """Highest score in a sorted set (the latest deadline or due time)."""
    entries: list[Any] = await store.client.zrange(key, -1, -1, withscores=True)
    assert entries, f"{key} is empty"
    return float(entries[0][1])


def leases(jobs: list[ClaimedJob]) -> list[tuple[str, str]]:
    return [(j.id, j.lease_token) for j in jobs]


# ---------------------------------------------------------------------------------------------- ordering


@pytest.mark.asyncio
async def test_fifo_within_a_level(store: RedisQueueStore) -> None:
    first = await store.push(Q, b"0")
    rest = await store.push_many(Q, [str(i).encode() for i in range(1, 6)])
    jobs = await store.claim(Q, limit=2, lease_seconds=30)
    jobs += await store.claim(Q, limit=10, lease_seconds=30)
    assert [j.id for j in jobs] == [first, *rest]
    assert [j.data for j in jobs] == [str(i).encode() for i in range(6)]
    assert await store.claim(Q, limit=10, lease_seconds=30) == []


@pytest.mark.asyncio
async def test_priority_higher_first_fifo_within_level(store: RedisQueueStore) -> None:
    a = await store.push(Q, b"a")
    b = await store.push(Q, b"b", priority=5)
    c = await store.push(Q, b"c", priority=9)
    d = await store.push(Q, b"d", priority=5)
    jobs = await store.claim(Q, limit=10, lease_seconds=30)
    assert [j.id for j in jobs] == [c, b, d, a]
    with pytest.raises(ValueError, match="priority"):
        await store.push(Q, b"x", priority=10)
    with pytest.raises(ValueError, match="priority"):
        await store.push(Q, b"x", priority=-1)


@pytest.mark.asyncio
async def test_retry_keeps_priority(store: RedisQueueStore) -> None:
    await store.push(Q, b"low")
    high = await store.push(Q, b"high", priority=3)
    (job,) = await store.claim(Q, limit=1, lease_seconds=30)
    assert job.id == high
    assert await store.fail(Q, job.id, job.lease_token, "boom", retry_in=0, max_attempts=5) == "retry"
    (again,) = await store.claim(Q, limit=1, lease_seconds=30)
    assert (again.id, again.attempt) == (high, 2)


@pytest.mark.asyncio
async def test_delay(store: RedisQueueStore) -> None:
    job_id = await store.push(Q, b"later", delay=0.3)
    assert (await store.depth(Q)).delayed == 1
    assert await store.claim(Q, limit=1, lease_seconds=30) == []
    jobs = await eventually(lambda: store.claim(Q, limit=1, lease_seconds=30), 5, "the delayed job to become claimable")
    assert [j.id for j in jobs] == [job_id]
    depth = await store.depth(Q)
    assert (depth.ready, depth.delayed, depth.leased) == (0, 0, 1)


# ---------------------------------------------------------------------------------------------- leases


@pytest.mark.asyncio
async def test_claim_counts_attempts_and_respects_limit(store: RedisQueueStore) -> None:
    await store.push_many(Q, [b"1", b"2", b"3"])
    jobs = await store.claim(Q, limit=2, lease_seconds=30)
    assert [j.attempt for j in jobs] == [1, 1]
    assert len({j.lease_token for j in jobs}) == 1
    assert await store.depth(Q) == store_module.QueueDepth(ready=1, delayed=0, leased=2, dead=0)
    (third,) = await store.claim(Q, limit=5, lease_seconds=30)
    assert third.lease_token != jobs[0].lease_token
    with pytest.raises(ValueError):
        await store.claim(Q, limit=0, lease_seconds=30)


@pytest.mark.asyncio
async def test_lease_expiry_returns_the_job_and_old_token_is_stale(store: RedisQueueStore) -> None:
    job_id = await store.push(Q, b"x")
    (old,) = await store.claim(Q, limit=1, lease_seconds=0.2)
    # The worker received the claim (issue 13, item 4): from here an expired lease costs the attempt.
    assert await store.confirm(Q, old.lease_token, [old.id]) == 1

    async def recovered() -> list[ClaimedJob]:
        await store.sweep(Q, max_attempts=5)
        return await store.claim(Q, limit=1, lease_seconds=30)

    (new,) = await eventually(recovered, 5, "the expired lease to be swept back to ready")
    assert (new.id, new.attempt) == (job_id, 2)
    assert new.lease_token != old.lease_token
    assert await store.ack(Q, [(old.id, old.lease_token)]) == 0
    assert await store.fail(Q, old.id, old.lease_token, "late", retry_in=0, max_attempts=5) == "stale"
    assert await store.heartbeat(Q, [(old.id, old.lease_token)], 30) == {old.id}
    assert await store.release(Q, [(old.id, old.lease_token)]) == 0
    assert (await store.depth(Q)).leased == 1
    assert await store.ack(Q, [(new.id, new.lease_token)]) == 1


@pytest.mark.asyncio
async def test_sweep_returns_expired_lease_to_the_head(store: RedisQueueStore) -> None:
    first = await store.push(Q, b"first")
    (job,) = await store.claim(Q, limit=1, lease_seconds=0.1)
    second = await store.push(Q, b"second")

    async def swept() -> int:
        return (await store.sweep(Q, max_attempts=5)).expired

    assert await eventually(swept, 5, "the sweep to find the expired lease") == 1
    jobs = await store.claim(Q, limit=2, lease_seconds=30)
    assert [j.id for j in jobs] == [first, second]
    assert job.id == first


@pytest.mark.asyncio
async def test_heartbeat_keeps_the_lease(store: RedisQueueStore) -> None:
    await store.push(Q, b"long")
    (job,) = await store.claim(Q, limit=1, lease_seconds=0.3)
    first_deadline = await last_score(store, store.keys(Q).leases)
    assert await store.heartbeat(Q, leases([job]), 30) == set()
    second_deadline = await last_score(store, store.keys(Q).leases)
    assert second_deadline > first_deadline + 20_000

    async def past_first_deadline() -> bool:
        return await server_ms(store) > first_deadline + 50

    await eventually(past_first_deadline, 5, "the server clock to pass the original lease deadline")
    assert await store.sweep(Q, max_attempts=5) == (0, 0)
    assert await store.claim(Q, limit=1, lease_seconds=30) == []
    assert await store.ack(Q, leases([job])) == 1
    assert await store.heartbeat(Q, leases([job]), 30) == {job.id}


@pytest.mark.asyncio
async def test_wrong_token_is_rejected(store: RedisQueueStore) -> None:
    await store.push(Q, b"x")
    (job,) = await store.claim(Q, limit=1, lease_seconds=30)
    assert await store.ack(Q, [(job.id, "not-the-token")]) == 0
    assert await store.fail(Q, job.id, "not-the-token", "e", retry_in=0, max_attempts=3) == "stale"
    assert await store.fail(Q, "no-such-id", job.lease_token, "e", retry_in=0, max_attempts=3) == "stale"
    assert await store.heartbeat(Q, [(job.id, "nope")], 30) == {job.id}
    assert await store.depth(Q) == store_module.QueueDepth(ready=0, delayed=0, leased=1, dead=0)
    assert await store.ack(Q, leases([job])) == 1
    assert await store.ack(Q, leases([job])) == 0


@pytest.mark.asyncio
async def test_release_returns_unstarted_jobs_in_order_uncounted(store: RedisQueueStore) -> None:
    ids = await store.push_many(Q, [b"1", b"2", b"3", b"4"])
    jobs = await store.claim(Q, limit=3, lease_seconds=30)
    assert await store.release(Q, leases(jobs[1:])) == 2
    assert await store.depth(Q) == store_module.QueueDepth(ready=3, delayed=0, leased=1, dead=0)
    again = await store.claim(Q, limit=3, lease_seconds=30)
    assert [j.id for j in again] == [ids[1], ids[2], ids[3]]
    assert [j.attempt for j in again] == [1, 1, 1]


# ---------------------------------------------------------------------------------------------- failures


@pytest.mark.asyncio
async def test_retry_goes_through_delayed(store: RedisQueueStore) -> None:
    job_id = await store.push(Q, b"x")
    (job,) = await store.claim(Q, limit=1, lease_seconds=30)
    assert await store.fail(Q, job.id, job.lease_token, "boom", retry_in=0.2, max_attempts=3) == "retry"
    assert await store.depth(Q) == store_module.QueueDepth(ready=0, delayed=1, leased=0, dead=0)
    assert await store.claim(Q, limit=1, lease_seconds=30) == []
    (again,) = await eventually(lambda: store.claim(Q, limit=1, lease_seconds=30), 5, "the retry to become due")
    assert (again.id, again.attempt) == (job_id, 2)


@pytest.mark.asyncio
async def test_dead_letter_after_max_attempts(store: RedisQueueStore) -> None:
    job_id = await store.push(Q, b"poison")
    for attempt, expected in [(1, "retry"), (2, "dead")]:
        (job,) = await store.claim(Q, limit=1, lease_seconds=30)
        assert job.attempt == attempt
        result = await store.fail(Q, job.id, job.lease_token, f"boom {attempt}", retry_in=0, max_attempts=2)
        assert result == expected
    assert await store.claim(Q, limit=1, lease_seconds=30) == []
    assert await store.depth(Q) == store_module.QueueDepth(ready=0, delayed=0, leased=0, dead=1)
    dead = await store.dead_letter(Q, job_id)
    assert dead is not None
    assert (dead.id, dead.data, dead.error, dead.attempts) == (job_id, b"poison", "boom 2", 2)
    assert abs(dead.failed_at - time.time()) < 60
    assert await store.dead_letters(Q) == [dead]
    assert await store.dead_letter(Q, "unknown") is None


@pytest.mark.asyncio
async def test_no_retry_dead_letters_at_once_newest_first(store: RedisQueueStore) -> None:
    ids = await store.push_many(Q, [b"a", b"b", b"c"])
    for job in await store.claim(Q, limit=3, lease_seconds=30):
        assert await store.fail(Q, job.id, job.lease_token, "fatal", retry_in=None, max_attempts=9) == "dead"

    letters = await store.dead_letters(Q)
    assert sorted(d.id for d in letters) == sorted(ids)
    assert [d.failed_at for d in letters] == sorted((d.failed_at for d in letters), reverse=True)
    assert [d.id for d in await store.dead_letters(Q, offset=1, limit=1)] == [letters[1].id]


@pytest.mark.asyncio
async def test_sweep_dead_letters_expired_lease_out_of_attempts(store: RedisQueueStore) -> None:
    job_id = await store.push(Q, b"crasher")
    (job,) = await store.claim(Q, limit=1, lease_seconds=0.1)
    await store.confirm(Q, job.lease_token, [job.id])

    async def swept() -> int:
        return (await store.sweep(Q, max_attempts=1)).expired

    assert await eventually(swept, 5, "the sweep to find the expired lease") == 1
    dead = await store.dead_letter(Q, job_id)
    assert dead is not None
    assert dead.attempts == 1
    assert "lease expired" in dead.error


# ---------------------------------------------------------------------------------------------- dead letter ops


async def make_dead(store: RedisQueueStore, n: int) -> list[str]:
    ids = await store.push_many(Q, [f"d{i}".encode() for i in range(n)])
    for job in await store.claim(Q, limit=n, lease_seconds=30):
        await store.fail(Q, job.id, job.lease_token, "x", retry_in=None, max_attempts=1)
    return ids


@pytest.mark.asyncio
async def test_redrive(store: RedisQueueStore) -> None:
    ids = await make_dead(store, 4)
    assert await store.redrive(Q, [ids[0], "unknown"]) == 1
    (job,) = await store.claim(Q, limit=5, lease_seconds=30)
    assert (job.id, job.attempt) == (ids[0], 1)
    assert await store.redrive(Q) == 3
    assert (await store.depth(Q)).dead == 0
    jobs = await store.claim(Q, limit=5, lease_seconds=30)
    assert sorted(j.id for j in jobs) == sorted(ids[1:])
    assert {j.attempt for j in jobs} == {1}


@pytest.mark.asyncio
async def test_purge_dead_deletes_everything(store: RedisQueueStore) -> None:
    await store.push(Q, b"warm-up")
    await store.ack(Q, leases(await store.claim(Q, limit=1, lease_seconds=30)))
    baseline = await count_keys(store)
    ids = await make_dead(store, 3)
    assert await store.purge_dead(Q, [ids[0], "unknown"]) == 1
    assert await store.dead_letter(Q, ids[0]) is None
    assert await store.purge_dead(Q) == 2
    assert await store.depth(Q) == store_module.QueueDepth(0, 0, 0, 0)
    assert await count_keys(store) == baseline


@pytest.mark.asyncio
async def test_trim_dead(store: RedisQueueStore) -> None:
    ids = await make_dead(store, 5)
    assert await store.trim_dead(Q, retention_seconds=3600) == 0
    assert await store.trim_dead(Q, retention_seconds=3600, max_items=2) == 3
    assert len(await store.dead_letters(Q)) == 2

    async def trimmed() -> bool:
        await store.trim_dead(Q, retention_seconds=0)
        return (await store.depth(Q)).dead == 0

    await eventually(trimmed, 5, "dead letters older than 0 s to be trimmed")
    assert all([await store.dead_letter(Q, i) is None for i in ids])
    assert await count_keys(store) == 1  # only the queues set is left


# ---------------------------------------------------------------------------------------------- wake-ups


@pytest.mark.asyncio
async def test_wait_wakes_on_push(store: RedisQueueStore) -> None:
    loop = asyncio.get_running_loop()
    waiter = asyncio.create_task(store.wait(Q, 10))
    await asyncio.sleep(0.05)  # lets the waiter block; the assertion below holds either way
    started = loop.time()
    await store.push(Q, b"x")
    assert await asyncio.wait_for(waiter, 5) is True
    assert loop.time() - started < 5


@pytest.mark.asyncio
async def test_push_before_wait_still_wakes_and_token_is_single(store: RedisQueueStore) -> None:
    await store.push_many(Q, [b"1", b"2", b"3"])
    await store.push(Q, b"4")
    assert await store.client.llen(store.keys(Q).signal) == 1
    assert await asyncio.wait_for(store.wait(Q, 10), 5) is True
    assert await store.wait(Q, 0.1) is False


@pytest.mark.asyncio
async def test_wait_returns_after_its_timeout(store: RedisQueueStore) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await store.wait(Q, 0.2) is False
    assert 0.15 <= loop.time() - started < 3
    assert await store.wait(Q, 0) is False


@pytest.mark.asyncio
async def test_wait_is_cut_short_by_a_due_delayed_job(store: RedisQueueStore) -> None:
    loop = asyncio.get_running_loop()
    await store.push(Q, b"soon", delay=0.2)
    started = loop.time()
    assert await store.wait(Q, 30) is True
    assert loop.time() - started < 5
    assert len(await store.claim(Q, limit=1, lease_seconds=30)) == 1


@pytest.mark.asyncio
async def test_full_claim_passes_the_wake_up_on(store: RedisQueueStore) -> None:
    await store.push_many(Q, [b"1", b"2", b"3"])
    assert await store.wait(Q, 1) is True  # consumes the only token
    await store.claim(Q, limit=2, lease_seconds=30)
    assert await store.client.llen(store.keys(Q).signal) == 1
    await store.claim(Q, limit=2, lease_seconds=30)
    # That claim drained the queue, so the token is gone rather than waking a worker for nothing.
    assert await store.client.llen(store.keys(Q).signal) == 0
    assert await store.wait(Q, 0.05) is False


# ---------------------------------------------------------------------------------------------- housekeeping


@pytest.mark.asyncio
async def test_key_count_back_to_baseline_after_many_acks(store: RedisQueueStore) -> None:
    await store.push(Q, b"warm-up")
    (job,) = await store.claim(Q, limit=1, lease_seconds=30)
    await store.ack(Q, leases([job]))
    baseline = await count_keys(store)
    n = 10_000
    await store.push_many(Q, [b"payload-%d" % i for i in range(n)], priority=2)
    await store.push_many(Q, [b"delayed"] * 10, delay=0.01)
    acked = 0
    while acked < n + 10:
        jobs = await store.claim(Q, limit=500, lease_seconds=60)
        if jobs:
            acked += await store.ack(Q, leases(jobs))
    assert await store.depth(Q) == store_module.QueueDepth(0, 0, 0, 0)
    assert await count_keys(store) == baseline


@pytest.mark.asyncio
async def test_sweep_lock(store: RedisQueueStore) -> None:
    await store.push(Q, b"x")
    await store.claim(Q, limit=1, lease_seconds=0.05)
    lock = store.keys(Q).sweep_lock
    await store.client.set(lock, "someone-else", px=30_000)

    async def expired() -> bool:
        return await server_ms(store) > await last_score(store, store.keys(Q).leases) + 50

    await eventually(expired, 5, "the lease to expire")
    assert await store.sweep(Q, max_attempts=5) == (0, 0)
    assert (await store.depth(Q)).leased == 1
    await store.client.delete(lock)
    assert await store.sweep(Q, max_attempts=5) == (0, 1)
    assert await store.client.exists(lock) == 0


@pytest.mark.asyncio
async def test_sweep_in_chunks(store: RedisQueueStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "_BATCH", 2)
    await store.push_many(Q, [b"1", b"2", b"3", b"4", b"5"])
    # Due well after the claim, which would otherwise promote them itself on a slow machine.
    await store.push_many(Q, [b"d"] * 3, delay=0.3)
    await store.claim(Q, limit=5, lease_seconds=0.05)
    last_deadline = await last_score(store, store.keys(Q).leases)
    last_due = await last_score(store, store.keys(Q).delayed)

    async def all_due() -> bool:
        return await server_ms(store) > max(last_deadline, last_due) + 50

    await eventually(all_due, 5, "the leases and delays to pass")
    assert await store.sweep(Q, max_attempts=5) == (3, 5)
    assert await store.client.exists(store.keys(Q).sweep_lock) == 0
    assert (await store.depth(Q)).ready == 8


@pytest.mark.asyncio
async def test_push_many_is_one_round_trip(store: RedisQueueStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Registers the queue and loads the scripts (a one-job push() has a lean script of its own).
    await store.push_many(Q, [b"warm-up"])
    await store.ack(Q, leases(await store.claim(Q, limit=1, lease_seconds=30)))
    calls: list[Any] = []
    original: Callable[..., Awaitable[Any]] = store.client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return await original(*args, **kwargs)

    monkeypatch.setattr(store.client, "execute_command", counting)
    ids = await store.push_many(Q, [b"x"] * 1000)
    assert len(ids) == len(set(ids)) == 1000
    assert len(calls) == 1
    calls.clear()
    jobs = await store.claim(Q, limit=1000, lease_seconds=30)
    assert len(jobs) == 1000
    await store.ack(Q, leases(jobs))
    assert len(calls) == 2


@pytest.mark.asyncio
async def test_single_push_is_one_round_trip_and_survives_a_script_flush(
    store: RedisQueueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.push(Q, b"warm-up")  # registers the queue and loads the one-job push script
    calls: list[Any] = []
    original: Callable[..., Awaitable[Any]] = store.client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return await original(*args, **kwargs)

    monkeypatch.setattr(store.client, "execute_command", counting)
    await store.push(Q, b"two")
    assert calls == ["EVALSHA"]
    monkeypatch.undo()
    # A SHA the server does not know, as after a SCRIPT FLUSH or a restart (without flushing a shared server's
    # scripts): the script is loaded again and the push still lands once.
    monkeypatch.setattr(store._push_ready, "sha", "0" * 40)
    await store.push(Q, b"three")
    jobs = await store.claim(Q, limit=10, lease_seconds=30)
    assert [j.data for j in jobs] == [b"warm-up", b"two", b"three"]
    assert (await store.depth(Q)).ready == 0


@pytest.mark.asyncio
async def test_queues_and_job_id_idempotence(store: RedisQueueStore) -> None:
    assert await store.queues() == []
    await store.push("b", b"1")
    assert await store.push("a", b"1", job_id="fixed") == "fixed"
    assert await store.push("a", b"2", job_id="fixed") == "fixed"
    assert await store.queues() == ["a", "b"]
    (job,) = await store.claim("a", limit=5, lease_seconds=30)
    assert job.data == b"1"


@pytest.mark.asyncio
async def test_validation(store: RedisQueueStore) -> None:
    with pytest.raises(ValueError, match="queue name"):
        await store.push("bad{name}", b"x")
    with pytest.raises(ValueError, match="queue name"):
        await store.depth("")
    with pytest.raises(ValueError, match="delay"):
        await store.push(Q, b"x", delay=-1)


def test_rejects_decoding_client() -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        RedisQueueStore(fakeredis.FakeAsyncRedis(decode_responses=True))
