"""Pulling ahead: quick jobs are pulled a worker's worth ahead, and what was pulled ahead goes back at stop.

A long ``visibility_timeout`` (30 s) makes the give-back visible: a job pulled ahead and not given back would sit
out its ``ack_wait`` before the next worker could run it.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nestq_spec import Application, CancellationToken, module, process, processor

from nestq_nats import NatsConnection, NatsQueueModule, NatsQueueWorkerModule, NatsWorker, load_config
from nestq_nats.server import NatsServer, nats_server_binary

JOBS = 400


@pytest.fixture
def server() -> Iterator[NatsServer]:
    if nats_server_binary() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but there is no nats-server binary for a private server")
        pytest.skip("no nats-server binary for a private server")
    with NatsServer() as private:
        yield private


async def eventually(check: Callable[[], bool], what: str, within: float,
                     seen: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; {seen()}")
        await asyncio.sleep(0.01)


QUEUE = "ahead"
RUNS: collections.Counter[int] = collections.Counter()


@processor
class Quick:
    """Records each run; quick, but not instant, so the worker stops with jobs at hand."""

    @process(queue=QUEUE)
    async def handle(self, job: dict[str, Any]) -> None:
        RUNS[int(job["n"])] += 1
        await asyncio.sleep(0.002)


def worker_root(settings: dict[str, object]) -> type[Any]:
    return module(imports=[NatsQueueModule.for_root(settings), NatsQueueWorkerModule],
                  providers=[Quick])(type("App", (), {}))


def test_jobs_pulled_ahead_are_given_back_at_stop_not_left_to_ack_wait(server: NatsServer) -> None:
    settings: dict[str, object] = {
        "url": server.url, "stream_prefix": f"pa{uuid.uuid4().hex[:8]}", "visibility_timeout": 30.0,
        "heartbeat_interval": 5.0, "shutdown_grace": 2.0, "concurrency": 10,
    }
    queue, runs = QUEUE, RUNS
    runs.clear()

    async def scenario() -> None:
        producer = NatsConnection(load_config(settings))
        try:
            for start in range(0, JOBS, 100):
                await producer.push_many_json(queue, [{"n": n} for n in range(start, start + 100)])
        finally:
            await producer.aclose()
        first = Application.create(worker_root(settings))
        cancel = CancellationToken()
        serving = asyncio.create_task(first.serve(cancel, shutdown_timeout=10))
        try:
            await eventually(lambda: len(runs) >= JOBS // 4, "a quarter of the jobs on the first worker", 30)
            worker = next(t for t in first._built if isinstance(t, NatsWorker))
            assert worker._quick(), f"jobs taking ~2 ms should count as quick (average {worker._job_time})"
            assert worker._ahead or worker._fetching, "a quick, busy worker should have jobs at hand or a pull out"
        finally:
            cancel.cancel()
            await asyncio.wait_for(serving, 15)
            await first.close()
        assert len(runs) < JOBS, "the first worker ran everything before it was stopped"
        second = Application.create(worker_root(settings))
        cancel = CancellationToken()
        serving = asyncio.create_task(second.serve(cancel, shutdown_timeout=10))
        try:
            # Well within the 30 s ack_wait: nothing the first worker held is waiting for its lease to lapse.
            await eventually(lambda: len(runs) == JOBS, f"all {JOBS} jobs, the rest on the second worker", 15,
                             seen=lambda: f"{len(runs)} ran; missing {sorted(set(range(JOBS)) - set(runs))[:20]}")
        finally:
            cancel.cancel()
            await asyncio.wait_for(serving, 15)
            await second.close()
        twice = sorted(n for n, count in runs.items() if count > 1)
        assert not twice, f"jobs ran twice (given back after they started?): {twice[:10]}"

    asyncio.run(scenario())
