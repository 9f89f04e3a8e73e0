"""The conformance harness of the Redis driver: how it picks its storage, what it declares, its hooks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import nestq_redis.harness as harness_module
import pytest
from nestq_conformance.harness import SuiteSettings
from nestq_redis import RedisConnection
from nestq_redis.harness import RedisHarness
from nestq_redis_testkit import require_redis_server

from nestq_spec import Application, module


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("NESTQ_REDIS__URL", "NESTQ_REDIS__KEY_PREFIX", "CI"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_env_url_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NESTQ_REDIS__URL", "redis://:pw@db.example:6380/3")
    h = RedisHarness()
    assert h.url == "redis://:pw@db.example:6380/3"
    assert not h.capabilities.storage_restart
    assert "NESTQ_REDIS__URL" in h.describe()
    assert "pw" not in h.describe()


def test_private_server_when_the_binary_exists(clean_env: pytest.MonkeyPatch) -> None:
    require_redis_server()
    h = RedisHarness()
    assert h.capabilities.storage_restart
    h.session_start()
    try:
        assert "private redis-server" in h.describe()
        env = h.subprocess_env()
        assert env["NESTQ_REDIS__URL"] == h.url
        assert env["NESTQ_REDIS__KEY_PREFIX"] == h.key_prefix

        async def scenario() -> None:
            app = Application.create(module(imports=[h.producer_module(SuiteSettings())])(type("P", (), {})))
            conn = app.container.get(RedisConnection)
            await conn.push_json("h", {"n": 1})
            await h.restart_storage()
            assert await h.queue_depth(app.container, "h") == 1  # fsynced before the push returned
            await conn.aclose()

        asyncio.run(scenario())
    finally:
        h.session_end()


def test_local_server_then_fakeredis(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(harness_module, "redis_server_binary", lambda: None)
    clean_env.setattr(harness_module, "ping", lambda host, port: True)
    local = RedisHarness()
    assert local.url == "redis://127.0.0.1:6379/0"
    assert not local.capabilities.storage_restart
    clean_env.setattr(harness_module, "ping", lambda host, port: False)
    fake = RedisHarness()
    assert fake.url.startswith("fakeredis://")
    assert not fake.capabilities.storage_restart
    assert "fakeredis" in fake.describe()
    clean_env.setenv("CI", "true")
    with pytest.raises(RuntimeError, match="CI=true"):
        RedisHarness().describe()


def test_fakeredis_bridge_shares_jobs_with_a_subprocess(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NESTQ_REDIS__URL", "fakeredis://bridge-test")
    h = RedisHarness()
    h.session_start()
    try:
        env = {**os.environ, **h.subprocess_env()}
        assert env["NESTQ_REDIS__URL"].startswith("redis://127.0.0.1:")

        async def push() -> None:
            app = Application.create(module(imports=[h.producer_module(SuiteSettings())])(type("P", (), {})))
            await app.container.get(RedisConnection).push_json("bridged", {"n": 7})

        asyncio.run(push())
        code = (
            "import asyncio\n"
            "from nestq_redis import RedisConnection\n"
            "async def main():\n"
            "    conn = RedisConnection()\n"
            "    print((await conn.admin.queue('bridged')).ready)\n"
            "    await conn.aclose()\n"
            "asyncio.run(main())\n"
        )
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "1", out.stderr
    finally:
        h.session_end()


def test_priorities_are_clamped_into_the_driver_range(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("NESTQ_REDIS__URL", "fakeredis://prio-test")
    h = RedisHarness()

    async def scenario() -> list[int]:
        app = Application.create(module(imports=[h.producer_module(SuiteSettings())])(type("P", (), {})))
        for p in (0, 5, 10, -3):
            await h.push_with_priority(app.container, "prio", {"p": p}, p)
        conn = app.container.get(RedisConnection)
        jobs = await conn.store.claim("prio", limit=10, lease_seconds=5)
        import json

        return [json.loads(j.data)["payload"]["p"] for j in jobs]

    assert asyncio.run(scenario()) == [10, 5, 0, -3]
