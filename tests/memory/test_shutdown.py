"""Graceful shutdown: stop taking jobs, let running ones finish within the grace, give back the rest; return."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nestq_memory import MemoryBroker, MemoryQueueModule, MemoryQueueWorkerModule

from nestq_spec import Application, CancellationToken, module, process, processor

from .conftest import Journal, connection, eventually, producer_app, serving, worker_app

pytestmark = pytest.mark.asyncio


async def test_an_idle_worker_returns_promptly_and_leaves_no_task(broker: MemoryBroker, journal: Journal) -> None:
    before = asyncio.all_tasks()
    async with serving(worker_app(broker)) as worker:
        await worker.conn.push_json("jobs", {"n": 1})
        await eventually(lambda: journal.done() == [{"n": 1}], "the job")
        took = await worker.stop()
    assert took < 1.0
    left = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    assert left == []


async def test_a_running_job_finishes_within_the_grace_and_no_new_one_starts(
    broker: MemoryBroker, journal: Journal
) -> None:
    async with serving(worker_app(broker, {"concurrency": 1, "shutdown_grace": 5.0})) as worker:
        await worker.conn.push_json("jobs", {"n": "running", "hold": True})
        await worker.conn.push_json("jobs", {"n": "waiting"})
        await eventually(lambda: journal.running == 1, "the held job to start")
        worker.cancel.cancel()
        await asyncio.sleep(0)  # the worker sees the cancel while the job still runs
        journal.gate.set()
        await worker.stop()
    assert journal.done() == [{"n": "running", "hold": True}]
    assert broker.stats("jobs").ready == 1, "the job that had not started stays for the next worker"


async def test_a_job_cut_off_after_the_grace_goes_back_to_the_head(broker: MemoryBroker, journal: Journal) -> None:
    one = {"concurrency": 1, "shutdown_grace": 0.05}
    async with serving(worker_app(broker, one)) as worker:
        await worker.conn.push_json("jobs", {"n": 0, "hold": True})
        await eventually(lambda: journal.running == 1, "the held job to start")
        for i in (1, 2):
            await worker.conn.push_json("jobs", {"n": i})
        await worker.stop()
    assert journal.runs[0].outcome == "raised CancelledError"
    assert broker.stats("jobs").ready == 3
    assert broker.stats("jobs").running == 0
    journal.gate.set()
    async with serving(worker_app(broker, {"concurrency": 1})):
        await eventually(lambda: len(journal.done()) == 3, "the 3 jobs on the next worker")
    assert [p["n"] for p in journal.done()] == [0, 1, 2], "the returned job goes first"
    assert journal.attempts({"n": 0, "hold": True}) == [1, 1], "the interrupted attempt is not counted"


async def test_serve_with_a_cancelled_token_returns_and_takes_nothing(broker: MemoryBroker, journal: Journal) -> None:
    await connection(producer_app(broker)).push_json("jobs", {"n": 1})
    app = worker_app(broker)
    cancel = CancellationToken()
    cancel.cancel()
    await asyncio.wait_for(app.serve(cancel), 1.0)
    assert journal.runs == []
    assert broker.stats("jobs").ready == 1


async def test_an_app_without_listed_processors_consumes_nothing(broker: MemoryBroker) -> None:
    @processor
    class Unlisted:
        @process(queue="jobs")
        async def handle(self, job: Any) -> None:
            raise AssertionError("not listed in the app, so never run")

    @module(imports=[MemoryQueueModule.for_root(broker=broker), MemoryQueueWorkerModule])
    class Empty:
        pass

    async with serving(Application.create(Empty)) as worker:
        await worker.conn.push_json("jobs", {"n": 1})
        assert not worker.task.done()
        assert not broker._queues["jobs"].waiters, "the worker must not even wait on a queue it does not serve"
        assert broker.stats("jobs").ready == 1
        assert await worker.stop() < 1.0


async def test_a_handler_raising_cancelled_error_itself_is_a_failure(broker: MemoryBroker) -> None:
    calls: list[int] = []

    @processor
    class Gives:
        @process(queue="gives-up")
        async def handle(self, job: Any) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise asyncio.CancelledError  # not the worker's cancel: a handler bug or an inner timeout

    async with serving(worker_app(broker, {"backoff_base": 0.01}, Gives)) as worker:
        await worker.conn.push_json("gives-up", {})
        await eventually(lambda: len(calls) == 2 and worker.conn.queue_depth("gives-up") == 0, "the retry")
    assert worker.conn.dead_letters("gives-up") == []
