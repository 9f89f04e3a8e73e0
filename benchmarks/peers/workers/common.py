"""Shared bits of the peer worker modules: where Redis is and the completion counter.

Every no-op job does exactly one thing: INCR the counter, so the harness can see
the last job finish without sleeping for a fixed time.
"""

from __future__ import annotations

import os

import redis
import redis.asyncio

REDIS_URL = os.environ["PEERS_REDIS_URL"]
COUNTER_KEY = os.environ.get("PEERS_COUNTER_KEY", "peers:done")

_sync_client: redis.Redis | None = None
_async_client: redis.asyncio.Redis | None = None


def incr() -> None:
    """Count one finished job (thread-safe: redis-py's pool hands each thread a connection)."""
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(REDIS_URL)
    _sync_client.incr(COUNTER_KEY)


async def aincr() -> None:
    """Count one finished job from inside the worker's event loop."""
    global _async_client
    if _async_client is None:
        # Created lazily so it binds to the loop the worker runs jobs on.
        _async_client = redis.asyncio.Redis.from_url(REDIS_URL)
    await _async_client.incr(COUNTER_KEY)
