"""The conformance harness of the memory driver (entry point ``memory`` in ``nestq.drivers``).

The suite's apps use the process-wide broker, as real apps do; every rule has its own queue names, so they do
not see each other's jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DeadLetterInfo, DriverHarness, SuiteSettings

from nestq_spec import Container, JSONValue, ModuleLike

from .config import MemoryConfig
from .connection import MemoryConnection
from .module import MemoryQueueModule, MemoryQueueWorkerModule

__all__ = ["PAYLOAD_LIMIT", "MemoryHarness", "harness"]

PAYLOAD_LIMIT = 4 * 1024 * 1024
"""The largest envelope declared. The driver has no limit of its own (bytes in a deque); the suite pushes
payloads up to this size, so a bigger number only makes the suite slower."""


class MemoryHarness(DriverHarness):
    """Runs the conformance suite against the memory driver."""

    name = "memory"
    settings_class = MemoryConfig
    capabilities = Capabilities(
        # Jobs live as long as the process: nothing survives it, and no other process can reach them.
        durability="ephemeral",
        cross_process=False,
        # Within that lifetime no accepted job is lost: a failed attempt is retried or dead-lettered, and a job
        # cut off at shutdown goes back to its queue and runs again (so its handler may run twice).
        delivery="at-least-once",
        ordering="fifo",
        retries=True,
        max_attempts=MemoryConfig().max_attempts,
        backoff=True,
        dead_letters=True,
        delayed_jobs=True,
        priority=True,
        precise_delays=True,
        max_concurrency=True,
        max_payload_bytes=PAYLOAD_LIMIT,
        # No lease to expire (a worker cannot die without its broker) and no storage to restart.
        visibility_timeout=False,
        storage_restart=False,
    ).validate()

    def describe(self) -> str:
        """Where the jobs live."""
        return "memory: the process-wide in-memory broker (ephemeral, one process)"

    def _pinned(self, settings: SuiteSettings) -> dict[str, object]:
        return {
            "concurrency": settings.concurrency,
            "max_attempts": settings.max_attempts,
            "backoff_base": settings.backoff,
            "backoff_cap": max(settings.backoff_cap, settings.backoff),
            "shutdown_grace": settings.shutdown_grace,
        }

    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        """``MemoryQueueModule.for_root`` with the suite's settings pinned."""
        return MemoryQueueModule.for_root(self._pinned(settings))

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        """``MemoryQueueWorkerModule`` (its settings come with the producer module)."""
        return MemoryQueueWorkerModule

    def configured_module(self, pinned: Mapping[str, object]) -> ModuleLike:
        """``MemoryQueueModule.for_root(pinned)``: the rest from ``NESTQ_MEMORY__*`` and the defaults."""
        return MemoryQueueModule.for_root(dict(pinned))

    def live_settings(self, container: Container) -> object:
        """The :class:`MemoryConfig` the booted app's connection and worker are built with."""
        return container.get(MemoryConfig)

    async def dead_letters(self, container: Container, queue: str) -> list[DeadLetterInfo]:
        """The dead letters of ``queue``, oldest first, with their envelope bytes."""
        letters = container.get(MemoryConnection).dead_letters(queue)
        return [DeadLetterInfo(d.data, d.error, d.attempts, d.job_id) for d in letters]

    async def queue_depth(self, container: Container, queue: str) -> int:
        """Ready, delayed and running jobs of ``queue``."""
        return container.get(MemoryConnection).queue_depth(queue)

    async def push_delayed(self, container: Container, queue: str, payload: object, delay: float) -> None:
        """``push_json(queue, payload, delay=delay)``."""
        await container.get(MemoryConnection).push_json(queue, cast(JSONValue, payload), delay=delay)

    async def push_with_priority(self, container: Container, queue: str, payload: object, priority: int) -> None:
        """``push_json(queue, payload, priority=priority)``."""
        await container.get(MemoryConnection).push_json(queue, cast(JSONValue, payload), priority=priority)

    async def push_raw(self, container: Container, queue: str, data: bytes) -> None:
        """``MemoryConnection.push_raw``: the bytes stored as they are."""
        await container.get(MemoryConnection).push_raw(queue, data)


harness = MemoryHarness()
"""The instance the ``memory`` entry point names."""
