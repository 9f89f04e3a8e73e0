"""Fixtures of the Redis driver's own tests: private redis-server processes and unique key prefixes.

Tests that need a real server skip when ``redis-server`` is not installed, and fail instead when ``CI=true``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from nestq_redis.server import RedisServer
from nestq_redis_testkit import require_redis_server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A private, durable redis-server shared by one test module (never restart it: use ``own_redis_server``)."""
    require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A private redis-server for one test, which the test may kill and restart."""
    require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """A key prefix unique to the test."""
    return f"nqt-{uuid.uuid4().hex[:10]}"
