"""The operator API of the Redis driver: queue depths and dead letters (list, inspect, redrive, purge).

``RedisConnection.admin`` returns one; the ``nestq redis ...`` command is a thin shell over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nestq_spec import validate_queue_name

from .store import DeadLetter, QueueDepth, RedisQueueStore

__all__ = ["DeadLetter", "QueueDepth", "QueueInfo", "RedisQueueAdmin"]


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One queue and how many of its jobs are in each state."""

    name: str
    ready: int
    delayed: int
    running: int
    """Claimed by a worker (leased), not yet acked or failed."""
    dead: int

    @property
    def pending(self) -> int:
        """Jobs accepted and not finished: ready, delayed or running (dead letters excluded)."""
        return self.ready + self.delayed + self.running


class RedisQueueAdmin:
    """Inspect and repair queues: every call is one or a few atomic scripts, safe while workers run."""

    def __init__(self, store: RedisQueueStore) -> None:
        self.store = store

    async def queues(self) -> list[QueueInfo]:
        """Every queue ever pushed to under the key prefix, sorted by name, with its depths."""
        out = []
        for name in await self.store.queues():
            out.append(self._info(name, await self.store.depth(name)))
        return out

    async def queue(self, queue: str) -> QueueInfo:
        """The depths of one queue."""
        validate_queue_name(queue)
        return self._info(queue, await self.store.depth(queue))

    @staticmethod
    def _info(name: str, depth: QueueDepth) -> QueueInfo:
        return QueueInfo(name, depth.ready, depth.delayed, depth.leased, depth.dead)

    async def dead_letters(self, queue: str, *, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        """Dead letters of ``queue``, newest first (``offset``/``limit`` page through them)."""
        validate_queue_name(queue)
        return await self.store.dead_letters(queue, offset=offset, limit=limit)

    async def dead_letter(self, queue: str, job_id: str) -> DeadLetter | None:
        """One dead letter, or None when ``job_id`` is not a dead letter of ``queue``."""
        validate_queue_name(queue)
        return await self.store.dead_letter(queue, job_id)

    async def redrive(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Move dead letters (None: all) back to ready, attempts and error reset; return how many moved."""
        validate_queue_name(queue)
        return await self.store.redrive(queue, ids)

    async def purge_dead(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters (None: all) with all their data; return how many were deleted."""
        validate_queue_name(queue)
        return await self.store.purge_dead(queue, ids)
