"""The conformance harness of the Redis driver (entry point ``redis`` in ``nestq.drivers``).

Where the storage comes from, first match wins:

0. ``NESTQ_REDIS_CLUSTER=1``: a private Redis Cluster the harness starts (three masters, three replicas, on free
   ports; ``redis+cluster://`` URL), so the whole suite runs on a cluster, storage restarts included;
1. ``NESTQ_REDIS__URL`` when set (a real server, a ``redis+cluster://`` cluster, or ``fakeredis://``);
2. a private ``redis-server`` the harness starts on a free port (``appendonly yes``, ``appendfsync always``),
   when the binary is installed: the only way ``storage_restart`` can be tested without touching a shared server;
3. the local server at 127.0.0.1:6379, when it answers PING;
4. the embedded fakeredis; never when ``CI=true``, where a missing real server is an error.

Every session uses its own key prefix. With fakeredis, worker subprocesses reach the embedded server through a
``fakeredis.TcpFakeServer`` bridge on a free port; storage restarts cannot be tested there.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DeadLetterInfo, DriverHarness, SuiteSettings

from nestq_spec import Container, JSONValue, ModuleLike

from .cluster import is_cluster_url
from .config import RedisConfig, display_url
from .connection import MAX_PRIORITY, RedisConnection, fake_server
from .module import RedisQueueModule, RedisQueueWorkerModule
from .server import PrivateRedisCluster, RedisServer, ping, redis_server_binary

__all__ = ["RedisHarness", "harness"]

_URL_VAR = "NESTQ_REDIS__URL"
_CLUSTER_VAR = "NESTQ_REDIS_CLUSTER"
_PREFIX_VAR = "NESTQ_REDIS__KEY_PREFIX"
_LOCAL = ("127.0.0.1", 6379)
PAYLOAD_LIMIT = 4 * 1024 * 1024
"""The largest envelope the harness declares (the suite pushes up to it); the driver's own default is 8 MiB."""


@dataclass(frozen=True, slots=True)
class _Plan:
    kind: str
    """``cluster``, ``env``, ``private``, ``local`` or ``fake``."""
    url: str
    why: str


class _FakeBridge:
    """A ``TcpFakeServer`` serving the process's embedded fakeredis, so worker subprocesses share its data."""

    def __init__(self, url: str) -> None:
        import fakeredis

        self.server = fakeredis.TcpFakeServer(("127.0.0.1", 0))
        self.server.fake_server = fake_server(url)
        # A worker subprocess's connection must never keep the suite's interpreter from exiting.
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="nestq-fakeredis-bridge", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class RedisHarness(DriverHarness):
    """Runs the conformance suite against the Redis driver; see the module docstring for storage selection."""

    name = "redis"
    settings_class = RedisConfig

    def __init__(self) -> None:
        self._plan: _Plan | None = None
        self._server: RedisServer | None = None
        self._cluster: PrivateRedisCluster | None = None
        self._bridge: _FakeBridge | None = None
        self._prefix: str | None = None
        self._capabilities: Capabilities | None = None

    # ------------------------------------------------------------------ choosing the storage

    def _choose(self) -> _Plan:
        if self._plan is not None:
            return self._plan
        ci = os.environ.get("CI", "").lower() == "true"
        url = os.environ.get(_URL_VAR)
        if os.environ.get(_CLUSTER_VAR, "").lower() in ("1", "true", "yes") and not url:
            if not redis_server_binary():
                raise RuntimeError(f"{_CLUSTER_VAR}=1 but there is no redis-server binary to start a cluster with")
            plan = _Plan("cluster", "", "a private Redis Cluster (3 masters, 3 replicas) started by the harness on "
                         f"free ports, because {_CLUSTER_VAR}=1")
        elif url:
            kind = "fake" if url.lower().startswith("fakeredis://") else "env"
            why = f"from {_URL_VAR}"
            if kind == "fake":
                why += " (the embedded fakeredis, chosen explicitly)"
            plan = _Plan(kind, url, why)
        elif redis_server_binary():
            plan = _Plan("private", "", "a private redis-server started by the harness on a free port "
                         "(appendonly yes, appendfsync always), so storage restarts can be tested; "
                         f"set {_URL_VAR} to use another server")
        elif ping(*_LOCAL):
            plan = _Plan("local", "redis://127.0.0.1:6379/0", "the local server on 127.0.0.1:6379, which answered "
                         "PING (no redis-server binary to start a private one, so storage_restart is not declared)")
        elif ci:
            raise RuntimeError(
                f"CI=true but no real Redis: {_URL_VAR} is unset, there is no redis-server binary to start, and "
                "nothing answers PING on 127.0.0.1:6379; the redis driver's suite must not fall back to fakeredis "
                "in CI"
            )
        else:
            plan = _Plan("fake", "fakeredis://nestq-suite", "the embedded fakeredis: no NESTQ_REDIS__URL, no "
                         "redis-server binary, nothing on 127.0.0.1:6379 (storage_restart is not declared)")
        self._plan = plan
        return plan

    def _start(self) -> _Plan:
        plan = self._choose()
        if plan.kind == "private" and self._server is None:
            self._server = RedisServer().start()
        if plan.kind == "cluster" and self._cluster is None:
            self._cluster = PrivateRedisCluster().start()
        if plan.kind == "fake" and self._bridge is None:
            self._bridge = _FakeBridge(plan.url)
        return plan

    @property
    def url(self) -> str:
        """The URL the suite's modules use (starting the private server or the bridge when needed)."""
        plan = self._start()
        if plan.kind == "private":
            assert self._server is not None
            return self._server.url
        if plan.kind == "cluster":
            assert self._cluster is not None
            return self._cluster.url
        return plan.url

    @property
    def key_prefix(self) -> str:
        """The session's key prefix (``NESTQ_REDIS__KEY_PREFIX`` in a worker subprocess, else a fresh one)."""
        if self._prefix is None:
            self._prefix = os.environ.get(_PREFIX_VAR) or f"nqsuite-{uuid.uuid4().hex[:10]}"
        return self._prefix

    @property
    def capabilities(self) -> Capabilities:
        """Durable, at-least-once, everything declared; ``storage_restart`` only on a server the harness owns."""
        if self._capabilities is None:
            self._capabilities = Capabilities(
                durability="durable",
                delivery="at-least-once",
                ordering="fifo",
                retries=True,
                max_attempts=RedisConfig().max_attempts,
                backoff=True,
                dead_letters=True,
                visibility_timeout=True,
                delayed_jobs=True,
                priority=True,
                precise_delays=True,
                cross_process=True,
                max_payload_bytes=PAYLOAD_LIMIT,
                max_concurrency=True,
                storage_restart=self._choose().kind in ("private", "cluster"),
            ).validate()
        return self._capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self._capabilities = value

    def describe(self) -> str:
        """Which Redis the suite runs on, and why."""
        plan = self._choose()
        if plan.kind == "private" and self._server is not None:
            where = f"redis-server {self._server.version()} at {self._server.url}"
        elif plan.kind == "private":
            where = "redis-server (not started yet)"
        elif plan.kind == "cluster" and self._cluster is not None:
            where = f"Redis Cluster of redis-server {self._cluster.nodes[0].version()} at {self._cluster.url}"
        elif plan.kind == "cluster":
            where = "Redis Cluster (not started yet)"
        elif plan.kind == "fake":
            bridge = self._bridge.url if self._bridge is not None else "a free port"
            where = f"fakeredis at {plan.url} (worker subprocesses reach it through a TcpFakeServer on {bridge})"
        else:
            where = display_url(plan.url)
        return f"redis: {where}: {plan.why}; key prefix {self.key_prefix}"

    def session_start(self) -> None:
        """Start the private server or the fakeredis bridge when the plan needs one; pick a fresh key prefix."""
        self._prefix = f"nqsuite-{uuid.uuid4().hex[:10]}"
        self._start()

    def session_end(self) -> None:
        """Stop what the harness started; on a shared server, delete this session's keys."""
        plan = self._plan
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._cluster is not None:
            self._cluster.stop()
            self._cluster = None
        if self._bridge is not None:
            self._bridge.stop()
            self._bridge = None
        if plan is not None and plan.kind in ("env", "local") and self._prefix is not None:
            _delete_prefix(plan.url, self._prefix)

    # ------------------------------------------------------------------ modules

    def _pinned(self, settings: SuiteSettings) -> dict[str, object]:
        # On a cluster every write waits for one replica (WAIT), the setting a cluster deployment should use.
        durable = {"wait_replicas": 1} if is_cluster_url(self.url) else {}
        return {
            **durable,
            "url": self.url,
            "key_prefix": self.key_prefix,
            "concurrency": settings.concurrency,
            "max_attempts": settings.max_attempts,
            "backoff_base": settings.backoff,
            "backoff_cap": max(settings.backoff_cap, settings.backoff),
            "visibility_timeout": settings.visibility_timeout,
            "heartbeat_interval": min(settings.heartbeat_interval, settings.visibility_timeout / 2),
            "shutdown_grace": settings.shutdown_grace,
            "poll_timeout": settings.poll_interval,
            "socket_timeout": max(10.0, settings.poll_interval + 5.0),
            "max_payload_bytes": max(PAYLOAD_LIMIT, RedisConfig().max_payload_bytes),
        }

    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        """``RedisQueueModule.for_root`` with the suite's timings, this session's URL and key prefix."""
        return RedisQueueModule.for_root(self._pinned(settings))

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        """``RedisQueueWorkerModule`` (its settings come with the producer module)."""
        return RedisQueueWorkerModule

    def configured_module(self, pinned: Mapping[str, object]) -> ModuleLike:
        """``RedisQueueModule.for_root(pinned)``: the rest from ``NESTQ_REDIS__*`` and the defaults."""
        return RedisQueueModule.for_root(dict(pinned))

    def live_settings(self, container: Container) -> object:
        """The :class:`RedisConfig` the booted app's connection and worker are built with."""
        return container.get(RedisConfig)

    def subprocess_env(self) -> dict[str, str]:
        """``NESTQ_REDIS__URL`` (the bridge's, with fakeredis) and ``NESTQ_REDIS__KEY_PREFIX`` for worker processes."""
        url = self._bridge.url if self._start().kind == "fake" and self._bridge is not None else self.url
        return {_URL_VAR: url, _PREFIX_VAR: self.key_prefix}

    # ------------------------------------------------------------------ probes and hooks

    async def dead_letters(self, container: Container, queue: str) -> list[DeadLetterInfo]:
        """Dead letters of ``queue``, oldest first, with the stored envelope bytes."""
        letters = await container.get(RedisConnection).admin.dead_letters(queue, limit=10_000)
        return [DeadLetterInfo(d.data, d.error, d.attempts, d.id) for d in reversed(letters)]

    async def queue_depth(self, container: Container, queue: str) -> int:
        """Ready + delayed + running jobs of ``queue``."""
        return (await container.get(RedisConnection).admin.queue(queue)).pending

    async def push_delayed(self, container: Container, queue: str, payload: object, delay: float) -> None:
        """``push_json(..., delay=delay)``."""
        await container.get(RedisConnection).push_json(queue, cast(JSONValue, payload), delay=delay)

    async def push_with_priority(self, container: Container, queue: str, payload: object, priority: int) -> None:
        """``push_json(..., priority=p)``, the suite's priority clamped into the driver's 0..9."""
        level = min(max(priority, 0), MAX_PRIORITY)
        await container.get(RedisConnection).push_json(queue, cast(JSONValue, payload), priority=level)

    async def push_raw(self, container: Container, queue: str, data: bytes) -> None:
        """``RedisConnection.push_raw``: the bytes stored as they are."""
        await container.get(RedisConnection).push_raw(queue, data)

    async def restart_storage(self) -> None:
        """Kill the private redis-server (SIGKILL) and start it again on the same port and AOF files.

        On the private cluster: every node at once, then wait until the cluster serves every slot again.
        """
        if self._choose().kind == "cluster" and self._cluster is not None:
            await asyncio.to_thread(self._cluster.restart)
            return
        if self._choose().kind != "private" or self._server is None:
            raise NotImplementedError("restart_storage hook: only a redis-server the harness started can restart")
        await asyncio.to_thread(self._server.restart)

    async def storage_identity(self) -> str:
        """The server's ``run_id`` from ``INFO server`` (a new one on every start) and its process id."""
        plan = self._choose()
        if plan.kind == "fake":
            raise NotImplementedError("storage_identity probe: the embedded fakeredis has no run id")
        if plan.kind == "cluster" and self._cluster is not None:
            return f"run_ids {await asyncio.to_thread(self._cluster.run_ids)}"
        import redis.asyncio as aioredis

        client: Any = aioredis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=2)
        try:
            info = await client.info("server")
        finally:
            await client.aclose()
        return f"run_id {info['run_id']} (pid {info.get('process_id')})"


def _delete_prefix(url: str, prefix: str) -> None:
    import redis

    from .cluster import is_cluster_url, parse_cluster_url

    if is_cluster_url(url):
        # Each master holds some of the keys: scan and delete on each, one key at a time (no cross-slot DEL).
        try:
            parsed = parse_cluster_url(url)
            cluster: Any = redis.RedisCluster(
                startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in parsed["nodes"]],  # type: ignore[no-untyped-call]
                username=parsed["username"], password=parsed["password"], ssl=parsed["ssl"],
                socket_timeout=5, socket_connect_timeout=2,
            )
        except (ValueError, redis.RedisError, redis.exceptions.RedisClusterException, OSError):
            return
        try:
            for key in cluster.scan_iter(match=f"{prefix}:*", count=1000):
                cluster.delete(key)
        except (redis.RedisError, redis.exceptions.RedisClusterException, OSError):
            pass
        finally:
            cluster.close()
        return

    try:
        client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    except ValueError:
        return  # a URL redis-py cannot parse reached no server, so there is nothing of this session to delete
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    except (redis.RedisError, OSError):
        pass
    finally:
        client.close()


harness = RedisHarness()
"""The instance the ``redis`` entry point names."""
