"""The worker side: :class:`MemoryWorker`, the driver's ``Transport``, on the toolkit's :class:`QueueWorker`.

The toolkit owns the loop (concurrency, cancel, grace, dispatch, retry policy, outcomes); this module is only the
storage primitives over :class:`MemoryBroker`: claim, wait for a push, ack, retry, dead-letter, give back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

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

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[StoredJob]]:
        """Claim up to ``limit`` ready jobs; when there is none, wait for a push (never polls), then claim again."""
        claim_many = self.broker.claim_many
        jobs = claim_many(queues, limit)
        if not jobs and not self.stopping.is_set():
            until = asyncio.ensure_future(_stopped_or_after(self.stopping, wait))
            try:
                woken_for = await self.broker.wait(queues, until)
            finally:
                until.cancel()
            jobs = claim_many(queues, limit, woken_for)
        if len(jobs) == 1:  # a worker with one free slot: no list comprehension for one job
            job = jobs[0]
            return [Delivery(job.queue, job.data, job.attempts, job.job_id, job)]
        return [Delivery(job.queue, job.data, job.attempts, job.job_id, job) for job in jobs]

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


async def _stopped_or_after(stopping: asyncio.Event, seconds: float) -> None:
    """Return when ``stopping`` is set or after ``seconds``, whichever is first (a bounded wait for the broker)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
