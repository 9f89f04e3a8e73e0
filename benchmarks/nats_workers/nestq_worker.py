"""nestq-nats worker for benchmarks/nats_peers.py: ``nestq run nestq_worker:WorkerApp`` (settings from NESTQ_NATS__*).

Each no-op job publishes one core-NATS message on ``BENCH_DONE_SUBJECT``; the benchmark counts them.
"""

from __future__ import annotations

import os
from typing import Any

from nestq_nats import NatsConnection, NatsQueueModule, NatsQueueWorkerModule

from nestq_spec import module, process, processor

QUEUE = os.environ.get("BENCH_QUEUE", "bench")
DONE = os.environ["BENCH_DONE_SUBJECT"]


@processor
class Noop:
    """Signals completion and returns."""

    def __init__(self, connection: NatsConnection) -> None:
        self.connection = connection

    @process(queue=QUEUE)
    async def handle(self, job: dict[str, Any]) -> None:
        """A no-op job."""
        client = await self.connection.client()
        await client.publish(DONE, b"")


@module(imports=[NatsQueueModule.for_root(), NatsQueueWorkerModule], providers=[Noop])
class WorkerApp:
    """The benchmark's nestq worker."""
