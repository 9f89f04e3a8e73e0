"""The worker app of ``soak.py``, run in several processes with ``nestq run soak_app:SoakApp``.

Each completed run of job ``n`` is recorded as a row in ``<schema>.soak_runs`` over the handler's own pool, after
the job's work: a row is a run that finished, so a SIGKILL mid-job leaves none for that run.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg
from nestq_spec import module, process, processor

from nestq_postgres import PostgresQueueModule, PostgresQueueWorkerModule

QUEUE = os.environ.get("NESTQ_SOAK_QUEUE", "soak")


@processor
class SoakRecorder:
    """Sleeps ``work`` seconds, then records the run of job ``n``."""

    def __init__(self) -> None:
        self.pool: Any = None
        self.schema = os.environ["NESTQ_POSTGRES__SCHEMA"]

    @process(queue=QUEUE)
    async def handle(self, job: dict[str, Any]) -> None:
        """Handle one soak job."""
        if job.get("work"):
            await asyncio.sleep(float(job["work"]))
        if self.pool is None:
            self.pool = await asyncpg.create_pool(os.environ["NESTQ_POSTGRES__DSN"], min_size=1, max_size=4)
        await self.pool.execute(f"INSERT INTO {self.schema}.soak_runs (n, pid) VALUES ($1, $2)", int(job["n"]),
                                os.getpid())


@module(imports=[PostgresQueueModule.for_root(), PostgresQueueWorkerModule], providers=[SoakRecorder])
class SoakApp:
    """A soak worker: the Postgres driver (settings from the environment) and the recording processor."""
