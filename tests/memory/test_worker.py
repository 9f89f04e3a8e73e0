"""The worker: dispatch, retries with backoff, dead letters and redrive, delayed jobs, priority, FIFO, the bound."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest
from nestq_memory import MemoryBroker

from nestq_spec import JobContext, current_job, process, processor

from .conftest import FAST, Jobs, Journal, Other, eventually, serving, worker_app

pytestmark = pytest.mark.asyncio


@processor
class AlsoJobs:
    """A second class on queue ``jobs``: every method of a queue gets each job."""

    calls: list[JobContext] = []

    @process(queue="jobs")
    async def also(self, job: Any) -> None:
        AlsoJobs.calls.append(current_job())


async def test_a_pushed_job_reaches_its_handler_with_attempt_one(broker: MemoryBroker, journal: Journal) -> None:
    async with serving(worker_app(broker)) as worker:
        await worker.conn.push_json("jobs", {"n": 1})
        await eventually(lambda: journal.done() == [{"n": 1}], "the job")
    run = journal.runs[0]
    assert (run.queue, run.attempt) == ("jobs", 1)
    assert run.job_id is not None
    assert run.job_id.startswith("mem-")
    assert broker.stats("jobs").depth == 0


async def test_every_method_of_a_queue_runs_and_unserved_queues_are_left_alone(
    broker: MemoryBroker, journal: Journal
) -> None:
    AlsoJobs.calls.clear()
    async with serving(worker_app(broker, None, Jobs, AlsoJobs)) as worker:
        await worker.conn.push_json("jobs", {"n": 1})
        await worker.conn.push_json("other", {"n": 2})
        await eventually(lambda: journal.done() == [{"n": 1}] and len(AlsoJobs.calls) == 1, "both methods")
    assert AlsoJobs.calls[0].job_id == journal.runs[0].job_id
    # No processor of this app serves "other" (Other is registered, but not listed in the app).
    assert broker.stats("other").ready == 1


async def test_a_failing_job_is_retried_with_growing_backoff(broker: MemoryBroker, journal: Journal) -> None:
    config = {"max_attempts": 4, "backoff_base": 0.02, "backoff_cap": 0.03}
    async with serving(worker_app(broker, config)) as worker:
        await worker.conn.push_json("jobs", {"fail": 3})
        await eventually(lambda: journal.done() == [{"fail": 3}], "success on the 4th attempt")
    runs = journal.runs
    assert [r.attempt for r in runs] == [1, 2, 3, 4]
    assert len({r.job_id for r in runs}) == 1, "a retry keeps the job id"
    gaps = [later.started - (earlier.finished or 0.0) for earlier, later in itertools.pairwise(runs)]
    # Lower bounds only: backoff 0.02, then 0.04 capped at 0.03, then 0.03.
    assert all(gap >= least for gap, least in zip(gaps, [0.02, 0.03, 0.03], strict=True)), gaps


async def test_out_of_attempts_becomes_a_dead_letter_and_redrive_runs_it_again(
    broker: MemoryBroker, journal: Journal
) -> None:
    async with serving(worker_app(broker, {**FAST, "max_attempts": 2})) as worker:
        before = time.time()
        await worker.conn.push_json("jobs", {"fail": 2, "id": "x"})
        await eventually(lambda: len(worker.conn.dead_letters("jobs")) == 1, "the dead letter")
        letter = worker.conn.dead_letters("jobs")[0]
        assert letter.attempts == 2
        assert letter.error == "RuntimeError: boom on attempt 2"
        assert letter.failed_at >= before
        assert json.loads(letter.data) == {"v": 1, "payload": {"fail": 2, "id": "x"}}
        assert worker.conn.stats("jobs").dead == 1
        assert worker.conn.queue_depth("jobs") == 0
        # Redriven with a fresh budget, it fails on attempt 1 and succeeds on attempt 3 (payload says fail 2).
        assert worker.conn.redrive("jobs", [letter.job_id]) == 1
        await eventually(lambda: len(worker.conn.dead_letters("jobs")) == 1 and journal.attempts(
            {"fail": 2, "id": "x"}) == [1, 2, 1, 2], "the redriven job to be dead-lettered again")
    assert worker.conn.dead_letters("jobs")[0].job_id == letter.job_id
    assert worker.conn.purge_dead_letters("jobs") == 1
    assert worker.conn.dead_letters("jobs") == []


async def test_non_retryable_errors_and_bad_envelopes_go_straight_to_the_dead_letters(
    broker: MemoryBroker, journal: Journal
) -> None:
    async with serving(worker_app(broker, FAST)) as worker:
        await worker.conn.push_json("jobs", {"fatal": True})
        await worker.conn.push_raw("jobs", b'{"v": 2, "payload": {"n": 1}}')
        await worker.conn.push_raw("jobs", b"\xff not json")
        await worker.conn.push_json("jobs", {"n": "after"})
        await eventually(lambda: len(worker.conn.dead_letters("jobs")) == 3 and journal.done() == [{"n": "after"}],
                         "three dead letters and the good job")
    letters = worker.conn.dead_letters("jobs")
    assert [d.attempts for d in letters] == [1, 1, 1]
    assert letters[0].error.startswith("NonRetryableError: fatal job")
    assert "version" in letters[1].error
    assert "UnsupportedVersionError" in letters[1].error
    assert letters[2].error.startswith("MalformedEnvelopeError")
    assert journal.attempts({"fatal": True}) == [1], "only the non-retryable job reached a handler"


async def test_a_delayed_job_waits_and_does_not_hold_back_others(broker: MemoryBroker, journal: Journal) -> None:
    async with serving(worker_app(broker, {"concurrency": 1})) as worker:
        pushed = time.monotonic()
        await worker.conn.push_json("jobs", {"n": "late"}, delay=0.2)
        await worker.conn.push_json("jobs", {"n": "now"})
        await eventually(lambda: journal.done() == [{"n": "now"}], "the immediate job")
        assert worker.conn.stats("jobs").delayed == 1
        await eventually(lambda: len(journal.done()) == 2, "the delayed job")
    late = next(r for r in journal.runs if r.payload == {"n": "late"})
    assert late.started - pushed >= 0.2


async def test_higher_priority_first_then_push_order(broker: MemoryBroker) -> None:
    from .conftest import connection, producer_app

    conn = connection(producer_app(broker))
    for n, priority in enumerate([0, 5, 0, 9, 5, -1]):
        await conn.push_json("jobs", {"n": n}, priority=priority)
    order = []
    while (job := broker.claim(["jobs"])) is not None:
        order.append(json.loads(job.data)["payload"]["n"])
    assert order == [3, 1, 4, 0, 2, 5]


async def test_fifo_with_concurrency_one(broker: MemoryBroker, journal: Journal) -> None:
    from .conftest import connection, producer_app

    producer = connection(producer_app(broker))
    for i in range(30):
        await producer.push_json("jobs", {"n": i})
    async with serving(worker_app(broker, {"concurrency": 1})) as worker:
        for i in range(30, 60):
            await worker.conn.push_json("jobs", {"n": i})
        await eventually(lambda: len(journal.done()) == 60, "60 jobs")
    assert [p["n"] for p in journal.done()] == list(range(60))


async def test_the_concurrency_bound_covers_every_queue_and_is_used(broker: MemoryBroker, journal: Journal) -> None:
    async with serving(worker_app(broker, {"concurrency": 3}, Jobs, Other)) as worker:
        for i in range(6):
            await worker.conn.push_json("jobs" if i % 2 else "other", {"n": i, "hold": True})
        await eventually(lambda: journal.running == 3, "3 held jobs running")
        assert worker.conn.stats("jobs").running + worker.conn.stats("other").running == 3
        journal.gate.set()
        await eventually(lambda: len(journal.done()) == 6, "all 6 jobs")
    assert journal.max_running == 3


async def test_a_worker_takes_turns_between_its_queues(broker: MemoryBroker, journal: Journal) -> None:
    async with serving(worker_app(broker, {"concurrency": 1}, Jobs, Other)) as worker:
        await eventually(lambda: bool(broker._queues.get("jobs") and broker._queues["jobs"].waiters),
                         "the idle worker to wait for a push")
        # The first push wakes the worker for "jobs"; that must not make it prefer "jobs" from then on.
        for i in range(5):
            await worker.conn.push_json("jobs", {"n": i})
        for i in range(5):
            await worker.conn.push_json("other", {"n": i})
        await eventually(lambda: len(journal.done()) == 10, "the 10 jobs")
    queues = [r.queue for r in journal.runs]
    assert "other" in queues[:3], f"one busy queue starved the other: {queues}"


async def test_handler_exceptions_never_stop_the_worker(broker: MemoryBroker, journal: Journal) -> None:
    @processor
    class Weird:
        @process(queue="weird")
        async def handle(self, job: Any) -> None:
            if job == "base":
                raise ExceptionGroup("several", [ValueError("a")])
            raise _Unprintable()

    async with serving(worker_app(broker, FAST, Weird, Jobs)) as worker:
        for _ in range(2):
            await worker.conn.push_json("weird", "base")
            await worker.conn.push_json("weird", "unprintable")
        await worker.conn.push_json("jobs", {"n": "still serving"})
        await eventually(lambda: len(worker.conn.dead_letters("weird")) == 4, "4 dead letters")
        await eventually(lambda: journal.done() == [{"n": "still serving"}], "the good job")
    errors = {d.error for d in worker.conn.dead_letters("weird")}
    assert errors == {
        "ExceptionGroup: several (1 sub-exception)",
        "_Unprintable: <str() of this exception raised an error>",
    }


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")
