"""The worker side: :class:`MemoryWorker`, the driver's ``Transport``, on the toolkit's :class:`QueueWorker`.

The toolkit owns the loop (concurrency, cancel, grace, dispatch, retry policy, outcomes); this module is only the
storage primitives over :class:`MemoryBroker`: claim, wait for a push, ack, retry, dead-letter, give back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from nestq_spec.driverkit import MAX_ERROR_CHARS, Delivery, QueueWorker, RetryPolicy, describe_error

from .broker import MemoryBroker, StoredJob
from .config import MemoryConfig

__all__ = ["MAX_ERROR_CHARS", "MemoryWorker", "describe_error"]


class MemoryWorker(QueueWorker[StoredJob]):
    """Consumes the broker's queues that the app's ``@process`` methods name, ``concurrency`` jobs at a time."""

    def __init__(self, broker: MemoryBroker, config: MemoryConfig) -> None:
        super().__init__(
            concurrency=config.concurrency,
            shutdown_grace=config.shutdown_grace,
            retry_policy=RetryPolicy(config.max_attempts, config.backoff_base, config.backoff_cap),
        )
        self.broker = broker
        self.config = config
        self._stopping_future: asyncio.Future[Any] | None = None

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[StoredJob]]:
        """Claim up to ``limit`` ready jobs; when there is none, wait for a push (never polls), then claim again."""
        claim_many = self.broker.claim_many
        jobs = claim_many(queues, limit)
        if not jobs and not self.stopping.is_set():
            woken_for = await self.broker.wait(queues, self._stop_signal(), wait)
            jobs = claim_many(queues, limit, woken_for)
        if len(jobs) == 1:  # a worker with one free slot: no list comprehension for one job
            job = jobs[0]
            return [Delivery(job.queue, job.data, job.attempts, job.job_id, job)]
        return [Delivery(job.queue, job.data, job.attempts, job.job_id, job) for job in jobs]

    def _stop_signal(self) -> asyncio.Future[Any]:
        """A future done once :attr:`stopping` is set: one per ``serve``, not one task per idle wait."""
        signal = self._stopping_future
        if signal is None or signal.get_loop() is not asyncio.get_running_loop() or (
            signal.done() and not self.stopping.is_set()  # set by an earlier serve; this one cleared it
        ):
            signal = self._stopping_future = asyncio.ensure_future(self.stopping.wait())
        return signal

    async def ack(self, deliveries: Sequence[Delivery[StoredJob]]) -> None:
        """Forget the jobs that succeeded."""
        if len(deliveries) == 1:
            self.broker.ack(deliveries[0].handle)
        else:
            self.broker.ack_many([delivery.handle for delivery in deliveries])

    async def retry(self, delivery: Delivery[StoredJob], delay: float, error: str) -> None:
        """Schedule the failed job ``delay`` seconds from now."""
        self.broker.retry(delivery.handle, delay, error)

    async def dead_letter(self, delivery: Delivery[StoredJob], error: str) -> None:
        """Keep the job as a dead letter with its error and attempts."""
        self.broker.dead_letter(delivery.handle, error)

    async def give_back(self, deliveries: Sequence[Delivery[StoredJob]]) -> None:
        """Return interrupted jobs to the head of their queue, their attempt refunded."""
        for delivery in reversed(deliveries):  # put_back prepends: reversed keeps their order at the head
            self.broker.give_back(delivery.handle)
