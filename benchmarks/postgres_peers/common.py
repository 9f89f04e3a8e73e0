"""What every benchmark worker shares: report when a latency probe's handler started, ``NOTIFY bench_done``."""

from __future__ import annotations

import os
import time
from typing import Any

import asyncpg

_conn: Any = None


async def done(job: dict[str, Any]) -> None:
    """When the job asks (``notify``), tell the benchmark the wall-clock time this handler started at.

    The time is taken first thing (one machine, one clock), so the NOTIFY that carries it back is not part of the
    figure: every peer is measured up to its handler's start, with nothing of the report's round trip in it.
    """
    started = time.time()
    if not job.get("notify"):
        return
    global _conn
    if _conn is None:
        _conn = await asyncpg.connect(os.environ["BENCH_DSN"])
    await _conn.execute("SELECT pg_notify('bench_done', $1)", f"{job['n']} {started:.6f}")
