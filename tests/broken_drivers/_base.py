"""The parts every deliberately broken driver is made of: the memory driver with hooks where bugs go.

:class:`BrokenWorker` is a memory-driver worker that implements ``Transport`` directly (not on the toolkit's
``QueueWorker``, as the reference worker is), each numbered step a method a broken driver can override:
:meth:`~BrokenWorker.routes` (1)+(2), the number of receive loops (3), :meth:`~BrokenWorker.dispatch_job` (4),
``_failed`` (5), :meth:`~BrokenWorker.cut_off` (6). The ``control`` driver (no bug) shows that this hand-written
worker behaves exactly like the toolkit one: the suite judges both the same way.

:func:`broken_harness` builds a harness from a connection class, a worker class and a broker, each driver with
its own broker so that nothing leaks between drivers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import SuiteSettings
from nestq_memory import (
    MemoryBroker,
    MemoryConfig,
    MemoryConnection,
    MemoryQueueSetup,
    StoredJob,
    describe_error,
    load_config,
)
from nestq_memory.harness import MemoryHarness

from nestq_spec import (
    CancellationToken,
    Container,
    ContainerBuilder,
    JobMeta,
    JobProducer,
    Module,
    ModuleLike,
    ProcessMethod,
    Transport,
    TransportContribution,
    dispatch,
    is_retryable,
    routes,
)

YIELD_EVERY = 32
"""A receive loop gives the event loop a turn once every this many jobs, even when none of them awaited."""

__all__ = ["BrokenWorker", "Setup", "broken_harness"]


class BrokenWorker(Transport):
    """A memory worker with every step of ``serve`` as a method, so that one broken driver changes one step."""

    yield_every: int | None = YIELD_EVERY
    """How many jobs a receive loop runs between two turns it gives the event loop; ``None``: it never yields."""

    def __init__(self, broker: MemoryBroker, config: MemoryConfig) -> None:
        self.broker = broker
        self.config = config

    def _failed(self, job: StoredJob, exc: BaseException) -> None:
        """(5) The retry and dead-letter policy."""
        error = describe_error(exc)
        if is_retryable(exc) and job.attempts < self.config.max_attempts:
            self.broker.retry(job, self.config.backoff(job.attempts), error)
            return
        self.broker.dead_letter(job, error)

    def cut_off(self, job: StoredJob, exc: BaseException) -> None:
        """(6) A job whose handler was cancelled at shutdown (after the grace): back to its queue, unfinished."""
        self.broker.give_back(job)

    def routes(self, container: Container) -> dict[str, tuple[ProcessMethod, ...]]:
        """(1) + (2): the reachable methods by queue."""
        return routes(container)

    def loops(self) -> int:
        """(3): how many receive loops share the worker's queues (the concurrency bound)."""
        return self.config.concurrency

    async def dispatch_job(self, methods: Sequence[ProcessMethod], job: StoredJob, container: Container) -> None:
        """(4): hand the stored bytes to dispatch with this attempt's JobMeta."""
        await dispatch(methods, job.data, container, JobMeta(job.attempts, job.job_id))

    def stop_signal(self, stop: asyncio.Future[None]) -> asyncio.Future[None]:
        """What the receive loops watch to stop taking jobs."""
        return stop

    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """The reference ``serve``, its steps as methods."""
        by_queue = self.routes(container)
        if not by_queue:
            await cancel.wait()
            return
        queues = tuple(by_queue)
        stop = asyncio.ensure_future(cancel.wait())
        runners = [
            asyncio.create_task(self._receive_loop(by_queue, queues, container, self.stop_signal(stop)))
            for _ in range(self.loops())
        ]
        try:
            await asyncio.wait([stop, *runners], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            await asyncio.wait(runners, timeout=self.config.shutdown_grace)
        finally:
            for runner in runners:
                runner.cancel()
            stop.cancel()
            await asyncio.gather(stop, *runners, return_exceptions=True)
        for runner in runners:
            if not runner.cancelled() and (failure := runner.exception()) is not None:
                raise failure

    async def _receive_loop(
        self,
        by_queue: dict[str, tuple[ProcessMethod, ...]],
        queues: Sequence[str],
        container: Container,
        stop: asyncio.Future[None],
    ) -> None:
        broker, woken_for, streak = self.broker, None, 0
        while not stop.done():
            job = broker.claim(queues, prefer=woken_for)
            woken_for = None
            if job is None:
                woken_for = await broker.wait(queues, stop)
                continue
            try:
                await self.dispatch_job(by_queue[job.queue], job, container)
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    self.cut_off(job, exc)
                    raise
                self._failed(job, exc)
            except Exception as exc:
                self._failed(job, exc)
            else:
                broker.ack(job)
            streak += 1
            if streak == self.yield_every:
                streak = 0
                await asyncio.sleep(0)


class _Setup(MemoryQueueSetup):
    connection_class: type[MemoryConnection] = MemoryConnection

    def load(self) -> MemoryConfig:
        """The settings, as the real module loads them (pinned, then env, then defaults)."""
        return load_config(self.pinned)

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        config = self.load()
        assert self.broker is not None
        builder.provide(MemoryConfig, config)
        builder.provide(MemoryConnection, self.connection_class(self.broker, config))
        builder.bind(JobProducer, MemoryConnection)
        return builder


Setup = _Setup
"""The producer module of every broken driver (subclass it to break how settings are loaded)."""


def broken_harness(
    name: str,
    *,
    connection: type[MemoryConnection] = MemoryConnection,
    worker: type[BrokenWorker] = BrokenWorker,
    broker: MemoryBroker | None = None,
    capabilities: Capabilities | None = None,
    setup_class: type[_Setup] | None = None,
) -> MemoryHarness:
    """A harness for the memory driver with ``connection``, ``worker`` and ``broker`` swapped in.

    The manifest stays the memory driver's (the broken driver still claims everything), unless given.
    """
    storage = broker or MemoryBroker()
    setup: type[_Setup] = type(f"{name}Setup", (setup_class or _Setup,), {"connection_class": connection})

    def build(container: Container) -> BrokenWorker:
        return worker(container.get(MemoryConnection).broker, container.get(MemoryConfig))

    class WorkerModule(Module):
        @classmethod
        def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
            return builder.provide_meta(TransportContribution(f"{name}Worker", build))

    class Harness(MemoryHarness):
        def describe(self) -> str:
            return f"broken driver {name}: the memory driver with one bug"

        def producer_module(self, settings: SuiteSettings) -> ModuleLike:
            return setup(self._pinned(settings), storage)

        def worker_module(self, settings: SuiteSettings) -> ModuleLike:
            return WorkerModule

        def configured_module(self, pinned: Mapping[str, object]) -> ModuleLike:
            return setup(dict(pinned), storage)

    made = Harness()
    made.name = name
    if capabilities is not None:
        made.capabilities = capabilities
    return made
