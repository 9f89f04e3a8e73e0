"""The worker app of ``benchmarks/redis_soak.py``, run in 4 processes with ``nestq run redis_soak_app:SoakApp``.

Its handler counts every completed run of job ``n`` in Redis (``HINCRBY <NESTQ_SOAK_RESULTS> <n> 1``) over its own
connection straight to Redis (``NESTQ_SOAK_RESULTS_URL``), not through the link the soak drops: a count is then a
run, never a client's re-send. Queue traffic uses ``NESTQ_REDIS__*`` (the proxy).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis.asyncio
from nestq_redis import RedisQueueModule, RedisQueueWorkerModule

from nestq_spec import module, process, processor

QUEUE = os.environ.get("NESTQ_SOAK_QUEUE", "soak")
RESULTS = os.environ.get("NESTQ_SOAK_RESULTS", "nestq-soak-results")


@processor
class SoakRecorder:
    """Sleeps ``work`` seconds, then counts the run of job ``n``."""

    def __init__(self) -> None:
        self.results = redis.asyncio.Redis.from_url(os.environ["NESTQ_SOAK_RESULTS_URL"])

    @process(queue=QUEUE)
    async def handle(self, job: dict[str, Any]) -> None:
        """Handle one soak job."""
        if job.get("work"):
            await asyncio.sleep(float(job["work"]))
        await self.results.hincrby(RESULTS, str(job["n"]), 1)


@module(imports=[RedisQueueModule.for_root(), RedisQueueWorkerModule], providers=[SoakRecorder])
class SoakApp:
    """A soak worker: the Redis driver (settings from the environment) and the recording processor."""
