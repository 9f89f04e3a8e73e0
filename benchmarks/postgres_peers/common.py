"""What every benchmark worker shares: report a finished latency probe with ``NOTIFY bench_done, '<n>'``."""

from __future__ import annotations

import os
from typing import Any

import asyncpg

_conn: Any = None


async def done(job: dict[str, Any]) -> None:
    """When the job asks (``notify``), tell the benchmark it ran, over a connection of the worker's own."""
    global _conn
    if not job.get("notify"):
        return
    if _conn is None:
        _conn = await asyncpg.connect(os.environ["BENCH_DSN"])
    await _conn.execute("SELECT pg_notify('bench_done', $1)", str(job["n"]))
