"""A tiny in-process driver written against the seam alone: what the seed's guide asks of a driver, no more.

Storage is a process-wide broker per name (so a producer-only app and a worker app in one process share it).
``push_json`` encodes once with ``encode_job``; the worker takes ``routes(container)`` and hands each envelope to
``dispatch``; failures are retried up to three attempts unless ``is_retryable`` says no, then dead-lettered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from nestq_spec import (
    BootError,
    CancellationToken,
    Container,
    ContainerBuilder,
    DynamicModule,
    JobMeta,
    JobProducer,
    JSONValue,
    Module,
    ProcessMethod,
    Transport,
    TransportContribution,
    dispatch,
    encode_job,
    is_retryable,
    load_settings,
    routes,
    setting,
    settings,
)

log = logging.getLogger("fake_driver")

MAX_ATTEMPTS = 3


@settings("fake")
class FakeConfig:
    """The fake driver's settings (``NESTQ_FAKE__BROKER``), to show the dual-path rule."""

    broker: str = setting("default", help="name of the in-process broker; apps that share it see each other's jobs")


@dataclass
class Stored:
    """One job in the broker: the envelope bytes exactly as pushed, plus delivery metadata (never in the envelope)."""

    data: bytes
    job_id: str
    attempt: int = 1


@dataclass
class FakeBroker:
    """The storage: a deque per queue name, and events to wake idle workers."""

    queues: dict[str, deque[Stored]] = field(default_factory=dict)
    dead: list[tuple[Stored, str]] = field(default_factory=list)
    waiters: set[asyncio.Event] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def put(self, queue: str, job: Stored) -> None:
        """Store ``job`` at the tail of ``queue`` and wake the workers."""
        self.queues.setdefault(queue, deque()).append(job)
        for event in self.waiters:
            event.set()

    def take(self, queue: str) -> Stored | None:
        """The head of ``queue``, or None when it is empty."""
        jobs = self.queues.get(queue)
        return jobs.popleft() if jobs else None


_BROKERS: dict[str, FakeBroker] = {}


def broker(name: str = "default") -> FakeBroker:
    """The process-wide broker called ``name``."""
    return _BROKERS.setdefault(name, FakeBroker())


class FakeConnection(JobProducer):
    """The producer: ``push_json`` is the one method the seam asks for."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    async def push_json(self, queue: str, payload: JSONValue) -> None:
        """Wrap once and store; a bad queue name or a payload that is not JSON is refused before storing."""
        data = encode_job(queue, payload)
        self.broker.put(queue, Stored(data, f"fake-{next(self.broker.ids)}"))


class FakeQueueSetup(DynamicModule):
    """What ``FakeQueueModule.for_root(config)`` returns: provides the connection, bound as ``JobProducer``."""

    def __init__(self, pinned: FakeConfig | Mapping[str, object] | None) -> None:
        self.pinned = pinned

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        """Load the settings (pinned > env > default) and provide the connection as the app's ``JobProducer``."""
        config = load_settings(FakeConfig, self.pinned)
        builder.provide(FakeConfig, config)
        builder.provide(FakeConnection, FakeConnection(broker(config.broker)))
        builder.bind(JobProducer, FakeConnection)
        return builder


class FakeQueueModule:
    """Producer side of the fake driver."""

    @staticmethod
    def for_root(config: FakeConfig | Mapping[str, object] | None = None) -> FakeQueueSetup:
        """Configure the driver: a whole config, a mapping of some settings, or None (environment, defaults)."""
        return FakeQueueSetup(config)


class FakeWorker(Transport):
    """The transport: drains every reachable queue until cancelled."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.by_queue: dict[str, tuple[ProcessMethod, ...]] = {}

    async def configure(self, container: Container) -> None:
        """Steps (1) and (2) of the guide: the reachable methods, grouped by queue."""
        self.by_queue = routes(container)

    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """Steps (3) to (5): take, dispatch, retry or dead-letter, until cancelled."""
        wake = asyncio.Event()
        self.broker.waiters.add(wake)
        stop = asyncio.ensure_future(cancel.wait())
        try:
            while not cancel.is_cancelled:
                wake.clear()
                busy = False
                for queue, methods in self.by_queue.items():
                    job = self.broker.take(queue)
                    if job is not None:
                        busy = True
                        await self._run(queue, methods, job, container)
                if not busy:
                    woken = asyncio.ensure_future(wake.wait())
                    await asyncio.wait({woken, stop}, return_when=asyncio.FIRST_COMPLETED)
                    woken.cancel()
        finally:
            stop.cancel()
            self.broker.waiters.discard(wake)

    async def _run(self, queue: str, methods: tuple[ProcessMethod, ...], job: Stored, container: Container) -> None:
        try:
            await dispatch(methods, job.data, container, JobMeta(job.attempt, job.job_id))
        except Exception as exc:
            if is_retryable(exc) and job.attempt < MAX_ATTEMPTS:
                self.broker.put(queue, Stored(job.data, job.job_id, job.attempt + 1))
            else:
                log.warning("job %s on %s dead-lettered: %s", job.job_id, queue, exc)
                self.broker.dead.append((job, f"{type(exc).__name__}: {exc}"))


def _build_worker(container: Container) -> FakeWorker:
    if not container.provides(FakeConnection):
        raise BootError("FakeQueueWorkerModule needs FakeQueueModule.for_root(...) in the same app")
    return FakeWorker(container.get(FakeConnection).broker)


class FakeQueueWorkerModule(Module):
    """Consumer side of the fake driver: contributes the transport."""

    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        """Contribute the ``FakeWorker`` transport."""
        return builder.provide_meta(TransportContribution("FakeWorker", _build_worker))
