"""Helpers shared by the Redis driver's tests (imported by name: this folder is on sys.path, not a package)."""

from __future__ import annotations

import os

import pytest
import redis.asyncio
from nestq_redis.server import LinkProxy, redis_server_binary

__all__ = ["LinkProxy", "count_keys", "require_redis_server"]


def require_redis_server() -> None:
    """Skip (fail under CI=true) when there is no redis-server binary to start."""
    if redis_server_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but redis-server is not installed; the Redis driver's fault tests need it")
        pytest.skip("redis-server is not installed")


async def count_keys(client: redis.asyncio.Redis, prefix: str) -> int:
    """Number of keys under ``prefix:``."""
    return len([k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)])

