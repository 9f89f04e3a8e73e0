"""procrastinate worker for ``postgres_peers.py``: ``procrastinate --app=procrastinate_app.app worker -c 10``."""

from __future__ import annotations

import os

import procrastinate
from common import done

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_DSN"]))


@app.task(name="bench", queue="bench")
async def bench(n: int, notify: bool = False) -> None:
    """A no-op job; reports completion when asked (latency runs)."""
    await done({"n": n, "notify": notify})
