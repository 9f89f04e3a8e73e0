"""The worker side: :class:`SqsWorker`, the storage primitives under nestq's worker loop.

``nestq_spec.driverkit.QueueWorker`` runs the loop: concurrency, cancel and shutdown grace, dispatch in the job
context, the retry policy and error text, batched outcomes, heartbeats that extend running jobs' leases.
Fill only what your storage does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nestq_spec.driverkit import Delivery, QueueWorker

from .config import SqsConfig
from .connection import SqsConnection

__all__ = ["SqsWorker"]

_MARK = "src/nestq_sqs/worker.py marker"


class SqsWorker(QueueWorker[Any]):
    """Receives from the queues the app's ``@process`` methods name; ``Delivery.handle`` is what settling needs."""

    def __init__(self, connection: SqsConnection, config: SqsConfig) -> None:
        super().__init__(
            concurrency=config.concurrency,
            shutdown_grace=config.shutdown_grace,
            retry_policy=config.retry_policy(),
            heartbeat_interval=config.heartbeat_interval,
        )
        self.connection = connection
        self.config = config

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[Any]]:
        """Marker (3): take up to ``limit`` jobs of ``queues``, waiting at most ``wait`` seconds (or until stopping)."""
        raise NotImplementedError(f"{_MARK} (3): receive the next envelopes of `queues` from your storage")

    async def ack(self, deliveries: Sequence[Delivery[Any]]) -> None:
        """Marker (4): these jobs (one queue) succeeded: delete them."""
        raise NotImplementedError(f"{_MARK} (4): acknowledge a success")

    async def retry(self, delivery: Delivery[Any], delay: float, error: str) -> None:
        """Marker (5): make the job due again in ``delay`` seconds (its attempt stays counted)."""
        raise NotImplementedError(f"{_MARK} (5): retry a failure after its backoff")

    async def dead_letter(self, delivery: Delivery[Any], error: str) -> None:
        """Marker (6): keep the job as a dead letter with ``error`` and ``delivery.attempt``."""
        raise NotImplementedError(f"{_MARK} (6): dead-letter a failure")

    async def give_back(self, deliveries: Sequence[Delivery[Any]]) -> None:
        """Marker (7): the worker stopped mid-job: make these due now, refunding the attempt."""
        raise NotImplementedError(f"{_MARK} (7): give back an interrupted job")

    async def extend_leases(self, deliveries: Sequence[Delivery[Any]]) -> None:
        """Marker (8): push the lease deadline of these running jobs ``visibility_timeout`` seconds ahead."""
        raise NotImplementedError(f"{_MARK} (8): extend the leases of running jobs")
