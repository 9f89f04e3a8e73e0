"""A worker app for the fault tests, run in a subprocess with ``nestq run redis_fault_app:WorkerApp``.

Its handler records every completed job in Redis (``HINCRBY <NESTQ_FAULT_RESULTS> <n> 1``), so the test can
count completions and duplicates across worker processes that it kills. Settings come from ``NESTQ_REDIS__*``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from nestq_redis import RedisConnection, RedisQueueModule, RedisQueueWorkerModule

from nestq_spec import module, process, processor

QUEUE = os.environ.get("NESTQ_FAULT_QUEUE", "faults")
RESULTS = os.environ.get("NESTQ_FAULT_RESULTS", "nestq-fault-results")


@processor
class FaultRecorder:
    """Sleeps ``work`` seconds, raises when ``fail`` is set, else counts the job's completion in Redis."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection

    @process(queue=QUEUE)
    async def handle(self, job: dict[str, Any]) -> None:
        """Handle one job of the fault tests."""
        if job.get("work"):
            await asyncio.sleep(float(job["work"]))
        if job.get("fail"):
            raise RuntimeError(f"job {job.get('n')} always fails")
        await self.connection.client.hincrby(RESULTS, str(job["n"]), 1)


@module(imports=[RedisQueueModule.for_root(), RedisQueueWorkerModule], providers=[FaultRecorder])
class WorkerApp:
    """The worker: the Redis driver (settings from the environment) and the recording processor."""
