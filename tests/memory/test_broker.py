"""The broker on its own: event-driven waits, give-back order, the operator API."""

from __future__ import annotations

import asyncio

import pytest
from nestq_memory import MemoryBroker

pytestmark = pytest.mark.asyncio


async def test_wait_is_woken_by_a_push_and_names_its_queue(broker: MemoryBroker) -> None:
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(broker.wait(["a", "b"], stop))
    await asyncio.sleep(0)  # let it register its waiter
    broker.push("b", b"{}")
    assert await asyncio.wait_for(waiting, 1.0) == "b"
    job = broker.claim(["a", "b"], "b")
    assert job is not None
    assert (job.queue, job.attempts) == ("b", 1)
    assert not broker._queues["a"].waiters, "a finished wait leaves no future behind"


async def test_wait_returns_when_stopped(broker: MemoryBroker) -> None:
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(broker.wait(["a"], stop))
    await asyncio.sleep(0)
    stop.set_result(None)
    assert await asyncio.wait_for(waiting, 1.0) is None


async def test_a_wake_up_for_a_stopping_claimer_is_passed_on(broker: MemoryBroker) -> None:
    loop = asyncio.get_running_loop()
    stopping: asyncio.Future[None] = loop.create_future()
    staying: asyncio.Future[None] = loop.create_future()
    first = asyncio.create_task(broker.wait(["a"], stopping))
    await asyncio.sleep(0)
    second = asyncio.create_task(broker.wait(["a"], staying))
    await asyncio.sleep(0)
    broker.push("a", b"{}")  # wakes the first claimer...
    stopping.set_result(None)  # ...which stops before it can claim
    assert await asyncio.wait_for(second, 1.0) == "a"
    await first


async def test_a_delayed_job_wakes_its_waiter_when_due(broker: MemoryBroker) -> None:
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    broker.push("a", b"{}", delay=0.05)
    assert broker.claim(["a"]) is None
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(broker.wait(["a"], stop), 1.0) is None
    assert asyncio.get_running_loop().time() - started >= 0.049
    assert broker.claim(["a"]) is not None


async def test_jobs_given_back_keep_their_push_order(broker: MemoryBroker) -> None:
    for n in range(4):
        broker.push("a", str(n).encode())
    first, second = broker.claim(["a"]), broker.claim(["a"])
    assert first is not None
    assert second is not None
    broker.give_back(second)
    broker.give_back(first)
    order = []
    while (job := broker.claim(["a"])) is not None:
        order.append(job.data)
    assert order == [b"0", b"1", b"2", b"3"]


async def test_claims_take_turns_between_queues(broker: MemoryBroker) -> None:
    for _ in range(3):
        broker.push("a", b"a")
        broker.push("b", b"b")
    taken = [job.data for _ in range(6) if (job := broker.claim(["a", "b"])) is not None]
    assert sorted(taken) == [b"a"] * 3 + [b"b"] * 3
    assert taken[:2] in ([b"a", b"b"], [b"b", b"a"])


async def test_operator_api(broker: MemoryBroker) -> None:
    broker.push("a", b"1")
    broker.push("a", b"2", delay=60)
    job = broker.claim(["a"])
    assert job is not None
    broker.dead_letter(job, "Boom: no")
    broker.push("a", b"3")
    stats = broker.stats("a")
    assert (stats.ready, stats.delayed, stats.running, stats.dead, stats.depth) == (1, 1, 0, 1, 2)
    assert broker.queues() == ["a"]
    assert broker.stats("never") == broker.stats("never seen either")
    assert broker.redrive("a") == 1
    assert broker.stats("a").ready == 2
    assert broker.purge("a") == 3
    assert broker.depth("a") == 0
    assert broker.redrive("nothing") == broker.purge_dead_letters("nothing") == broker.purge("nothing") == 0


@pytest.mark.parametrize(
    ("action", "call"),
    [
        ("ack", lambda b, j: b.ack(j)),
        ("retry", lambda b, j: b.retry(j, 0.0, "boom")),
        ("dead-letter", lambda b, j: b.dead_letter(j, "boom")),
        ("give back", lambda b, j: b.give_back(j)),
    ],
)
def test_finishing_a_job_that_is_not_running_is_refused(action: str, call: object) -> None:
    from nestq_memory.broker import IllegalTransition

    finish = call  # type: ignore[assignment]
    broker = MemoryBroker()
    broker.push("q", b"first")
    broker.push("q", b"second")
    job = broker.claim(["q"])
    assert job is not None
    broker.ack(job)
    with pytest.raises(IllegalTransition, match=rf"cannot {action} job {job.job_id} .*it already finished"):
        finish(broker, job)  # type: ignore[operator]
    # An early call on a job still waiting to be claimed does not undo its state either.
    waiting = broker._queues["q"].ready[0][0]
    with pytest.raises(IllegalTransition, match="it is ready, waiting to be claimed"):
        finish(broker, waiting)  # type: ignore[operator]
    assert broker.stats("q").ready == 1
    assert broker.claim(["q"]) is waiting


def test_a_retried_job_cannot_be_acked_by_its_old_attempt() -> None:
    from nestq_memory.broker import IllegalTransition

    broker = MemoryBroker()
    broker.push("q", b"x")
    job = broker.claim(["q"])
    assert job is not None
    broker.retry(job, 60.0, "boom")
    with pytest.raises(IllegalTransition, match="it is delayed"):
        broker.ack(job)
    assert broker.stats("q").delayed == 1


def test_claim_many_takes_what_claim_would_take_in_one_locking() -> None:
    broker = MemoryBroker()
    for data in (b"1", b"2", b"3"):
        broker.push("a", data)
    broker.push("a", b"urgent", priority=5)
    jobs = broker.claim_many(["a"], 3)
    assert [j.data for j in jobs] == [b"urgent", b"1", b"2"], "highest priority first, then push order, at most 3"
    assert [j.attempts for j in jobs] == [1, 1, 1]
    assert broker.stats("a").running == 3
    assert broker.stats("a").ready == 1
    assert [j.data for j in broker.claim_many(["a"], 5)] == [b"3"]
    assert broker.claim_many(["a"], 5) == []
    assert broker.claim_many(["never"], 5) == []
    # Several queues: the turns of claim(), one job at a time.
    broker.push("b", b"b1")
    broker.push("c", b"c1")
    broker.push("c", b"c2")
    assert sorted(j.data for j in broker.claim_many(["b", "c"], 2)) == [b"b1", b"c1"]


def test_ack_many_stops_at_the_first_job_that_is_not_running() -> None:
    from nestq_memory.broker import IllegalTransition

    broker = MemoryBroker()
    for data in (b"1", b"2", b"3"):
        broker.push("q", data)
    first, second, third = broker.claim_many(["q"], 3)
    broker.ack(second)
    with pytest.raises(IllegalTransition, match=rf"cannot ack job {second.job_id} .*it already finished"):
        broker.ack_many([first, second, third])
    assert list(broker._queues["q"].running) == [third.job_id], "acked up to the bad one, nothing after it"
    broker.ack_many([third])
    assert broker.stats("q").depth == 0


async def test_wait_returns_after_at_most_seconds(broker: MemoryBroker) -> None:
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = asyncio.get_running_loop().time()
    # Awaited under a deadline 100x longer: a wait that ignored at_most would fail here, not hang.
    assert await asyncio.wait_for(broker.wait(["a"], stop, at_most=0.02), 2.0) is None
    assert asyncio.get_running_loop().time() - started >= 0.015
    assert not broker._queues["a"].waiters
    assert not stop.done()
