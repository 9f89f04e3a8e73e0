"""pgqueuer worker for ``postgres_peers.py``: ``pgq run pgqueuer_app:main --max-concurrent-tasks 10``."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from common import done
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    """The PgQueuer instance ``pgq run`` serves (pgqueuer 1.6 wants an async context manager)."""
    conn = await asyncpg.connect(os.environ["BENCH_DSN"])
    pgq = PgQueuer(AsyncpgDriver(conn))

    @pgq.entrypoint("bench")
    async def bench(job: Job) -> None:
        await done(json.loads(job.payload or b"{}"))

    try:
        yield pgq
    finally:
        await conn.close()
