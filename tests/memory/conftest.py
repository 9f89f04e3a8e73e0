"""Processors and helpers for the memory driver's own tests: a journal of every run, apps on a fresh broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from nestq_memory import MemoryBroker, MemoryConfig, MemoryConnection, MemoryQueueModule, MemoryQueueWorkerModule

from nestq_spec import Application, CancellationToken, NonRetryableError, current_job, module, process, processor

FAST = {"backoff_base": 0.01, "backoff_cap": 0.02, "shutdown_grace": 2.0}
"""Short timings for tests that retry or stop workers."""


@dataclass
class Run:
    """One handler run, as the journal saw it."""

    queue: str
    payload: Any
    attempt: int
    job_id: str | None
    started: float
    finished: float | None = None
    outcome: str = "running"


class Journal:
    """Every run of the test processors; payloads say how a run behaves.

    ``{"fail": k}`` raises on attempts 1..k; ``{"fatal": true}`` raises NonRetryableError; ``{"hold": true}``
    waits for :attr:`gate`.
    """

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.running = 0
        self.max_running = 0
        self.gate = asyncio.Event()

    async def handle(self, queue: str, job: Any) -> None:
        ctx = current_job()
        run = Run(queue, job, ctx.attempt, ctx.job_id, time.monotonic())
        self.runs.append(run)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            spec = job if isinstance(job, dict) else {}
            if spec.get("hold"):
                await self.gate.wait()
            if spec.get("fatal"):
                raise NonRetryableError(f"fatal job {job}")
            if ctx.attempt <= spec.get("fail", 0):
                raise RuntimeError(f"boom on attempt {ctx.attempt}")
            run.outcome = "ok"
        except BaseException as exc:
            run.outcome = f"raised {type(exc).__name__}"
            raise
        finally:
            run.finished = time.monotonic()
            self.running -= 1

    def done(self, queue: str | None = None) -> list[Any]:
        """Payloads that completed, in completion order."""
        return [r.payload for r in self.runs if r.outcome == "ok" and queue in (None, r.queue)]

    def attempts(self, payload: Any) -> list[int]:
        return [r.attempt for r in self.runs if r.payload == payload]


JOURNAL: Journal | None = None


def journal() -> Journal:
    assert JOURNAL is not None, "use the `journal` fixture"
    return JOURNAL


@processor
class Jobs:
    """Handles queue ``jobs``."""

    @process(queue="jobs")
    async def handle(self, job: Any) -> None:
        await journal().handle("jobs", job)


@processor
class Other:
    """Handles queue ``other``."""

    @process(queue="other")
    async def handle(self, job: Any) -> None:
        await journal().handle("other", job)


@pytest.fixture(name="journal")
def journal_fixture() -> Iterator[Journal]:
    global JOURNAL
    JOURNAL = Journal()
    yield JOURNAL
    JOURNAL = None


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


def worker_app(
    broker: MemoryBroker, config: MemoryConfig | Mapping[str, object] | None = None, *processors: type[Any]
) -> Application:
    """Producer module + worker module on ``broker``, serving ``processors`` (default: :class:`Jobs`)."""

    @module(
        imports=[MemoryQueueModule.for_root(config, broker=broker), MemoryQueueWorkerModule],
        providers=list(processors or (Jobs,)),
    )
    class WorkerApp:
        pass

    return Application.create(WorkerApp)


def producer_app(broker: MemoryBroker | None = None) -> Application:
    @module(imports=[MemoryQueueModule.for_root(broker=broker)])
    class ProducerApp:
        pass

    return Application.create(ProducerApp)


def connection(app: Application) -> MemoryConnection:
    return app.container.get(MemoryConnection)


@dataclass
class Serving:
    app: Application
    cancel: CancellationToken
    task: asyncio.Task[None]

    @property
    def conn(self) -> MemoryConnection:
        return connection(self.app)

    async def stop(self, within: float = 5.0) -> float:
        """Cancel and wait for serve() to return; the seconds it took."""
        started = time.monotonic()
        self.cancel.cancel()
        await asyncio.wait_for(asyncio.shield(self.task), within)
        return time.monotonic() - started


@contextlib.asynccontextmanager
async def serving(app: Application) -> AsyncIterator[Serving]:
    """Serve ``app`` in a task for the block; stop it afterwards (failing if serve() raised)."""
    cancel = CancellationToken()
    running = Serving(app, cancel, asyncio.create_task(app.serve(cancel, shutdown_timeout=10.0)))
    try:
        yield running
    finally:
        if not running.task.done():
            cancel.cancel()
            await asyncio.wait({running.task}, timeout=10.0)
        if not running.task.done():
            running.task.cancel()
    running.task.result()


async def eventually(predicate: Callable[[], bool], what: str, within: float = 5.0) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.002)
