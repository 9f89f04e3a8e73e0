"""Helpers shared by the Redis driver's tests (imported by name: this folder is on sys.path, not a package)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio
from nestq_redis.server import LinkProxy, redis_server_binary

__all__ = ["LinkProxy", "count_keys", "require_redis_server", "until"]


def require_redis_server() -> None:
    """Skip (fail under CI=true) when there is no redis-server binary to start."""
    if redis_server_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but redis-server is not installed; the Redis driver's fault tests need it")
        pytest.skip("redis-server is not installed")


async def count_keys(client: redis.asyncio.Redis, prefix: str) -> int:
    """Number of keys under ``prefix:``."""
    return len([k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)])


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str,
                seen: Callable[[], Awaitable[object]] | None = None) -> None:
    """Poll ``check`` until true; fail naming ``what`` (and the state ``seen`` describes) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            state = f"; seen: {await seen()}" if seen is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{state}")
        await asyncio.sleep(0.02)
