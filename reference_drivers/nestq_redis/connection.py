"""The producer side of the Redis driver: :class:`RedisConnection`, bound as the app's ``JobProducer``.

``push_json`` is the seam's one method; delays, priorities, caller-chosen ids and batches are this driver's own
API on the same class. The Redis client is created on first use, inside the event loop that uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from nestq_spec import ConfigError, JobProducer, JSONValue, encode_job, validate_queue_name

from .cluster import AnyRedis, NestqRedisCluster, NotAClusterError, is_cluster_url, make_cluster_client
from .config import RedisConfig, display_url, load_config
from .store import MAX_PRIORITY, RedisQueueStore

if TYPE_CHECKING:
    from .admin import RedisQueueAdmin

__all__ = ["MAX_PRIORITY", "PERMANENT_ERRORS", "RedisConnection", "check_access", "make_client"]

PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthenticationWrongNumberOfArgsError,
    redis.exceptions.NoPermissionError,
)
"""Errors no retry can cure (wrong credentials, an ACL that forbids what the driver needs): they fail the boot."""


_EVICTING = ("allkeys-lru", "allkeys-lfu", "allkeys-random")


async def _warn_about_durability(client: AnyRedis, where: str) -> None:
    if isinstance(client, NestqRedisCluster):
        # Each master holds its own queues: each is checked, and named in the warning.
        for node in client.get_primaries():
            await _warn_about_node(node, f"{where} (node {node.name})")
    else:
        await _warn_about_node(client, where)


async def _warn_about_node(client: Any, where: str) -> None:
    # Issue 13 (item 6): said once at worker start, as Sidekiq and BullMQ do. An evicting policy drops queued
    # jobs silently under memory pressure; without persistence a restart loses every queued job.
    if type(client).__module__.startswith("fakeredis"):
        return
    memory = await _info(client, "memory")
    policy = str(memory.get("maxmemory_policy", ""))
    if policy in _EVICTING:
        log.warning("Redis at %s has maxmemory-policy %s: under memory pressure it evicts queued jobs without a "
                    "trace; use noeviction (or volatile-*, which leaves the queues' keys alone)", where, policy)
    persistence = await _info(client, "persistence")
    if not int(persistence.get("aof_enabled", 0)):
        try:
            save: dict[Any, Any] = dict(await _config_get(client, "save"))
        except redis.exceptions.ResponseError:  # CONFIG disabled (managed Redis): AOF off is all we know
            save = {}
        if not (save.get("save") or save.get(b"save")):
            log.warning("Redis at %s has persistence off (no AOF, no RDB snapshots): a restart loses every queued "
                        "job; enable appendonly yes", where)


async def _info(client: Any, section: str) -> dict[Any, Any]:
    if isinstance(client, redis.asyncio.Redis):
        return dict(await client.info(section))
    # A cluster node (ClusterNode): its raw command, parsed by the node's own response callbacks.
    return dict(await client.execute_command("INFO", section))


async def _config_get(client: Any, name: str) -> dict[Any, Any]:
    if isinstance(client, redis.asyncio.Redis):
        return dict(await client.config_get(name))
    return dict(await client.execute_command("CONFIG GET", name))


async def check_access(store: RedisQueueStore, config: RedisConfig, queues: Sequence[str]) -> None:
    """Fail with a :class:`~nestq_spec.ConfigError` when Redis refuses the credentials or a needed command.

    Checks a ping and the driver's scripts on every key of ``queues``. An unreachable Redis is left to the
    worker's retries (it may just be starting). Run once when a worker starts: a wrong password or a missing ACL
    permission is a configuration error, not an outage to retry quietly while the process serves nothing.
    """
    where = display_url(config.url)
    try:
        await store.client.ping()
        for queue in queues:
            await store.depth(queue)  # a script over every key of the queue: EVALSHA, SCRIPT LOAD, key patterns
        await _warn_about_durability(store.client, where)
    except PERMANENT_ERRORS as exc:
        kind = "refused the credentials" if not isinstance(exc, redis.exceptions.NoPermissionError) else (
            "denies a permission the driver needs (it runs Lua scripts with EVALSHA / SCRIPT LOAD on every key "
            f"under {config.key_prefix}:*)"
        )
        raise ConfigError(
            f"Redis at {where} {kind}: {type(exc).__name__}: {exc}; check NESTQ_REDIS__URL, "
            "NESTQ_REDIS__PASSWORD and the server's ACL"
        ) from None
    except NotAClusterError as exc:
        raise ConfigError(f"{exc}; check NESTQ_REDIS__URL") from None
    except (redis.exceptions.RedisError, OSError):
        return

_FAKE_SERVERS: dict[str, Any] = {}

log = logging.getLogger("nestq.redis")


def fake_server(url: str) -> Any:
    """The embedded ``fakeredis.FakeServer`` of a ``fakeredis://[name]`` URL: one per name, per process."""
    import fakeredis

    name = url.partition("://")[2].strip("/")
    server = _FAKE_SERVERS.get(name)
    if server is None:
        server = _FAKE_SERVERS[name] = fakeredis.FakeServer()
    return server


def make_client(config: RedisConfig, *, resend: bool = True) -> AnyRedis:
    """A new ``redis.asyncio`` client for ``config.url`` (bytes replies, bounded timeouts, short retries).

    ``resend=False``: a command whose connection fails is never sent again by the client (the worker's client:
    a claim that executed but whose reply was lost must not be re-sent blindly; the worker's loops retry what
    is safe to retry). A ``fakeredis://`` URL gives a client of the process's embedded server for that URL; a
    ``redis+cluster://`` URL a :class:`~nestq_redis.cluster.NestqRedisCluster`.
    """
    if is_cluster_url(config.url):
        return make_cluster_client(
            config.url, password=config.password, socket_timeout=config.socket_timeout,
            connect_timeout=config.connect_timeout, wait_replicas=config.wait_replicas,
            wait_timeout=config.wait_timeout, resend=resend, where=display_url(config.url),
        )
    if config.wait_replicas:
        log.warning("NESTQ_REDIS__WAIT_REPLICAS=%d is ignored: it applies to a Redis Cluster (redis+cluster:// "
                    "URLs) and %s names a single server", config.wait_replicas, display_url(config.url))
    if config.url.lower().startswith("fakeredis://"):
        import fakeredis

        client: redis.asyncio.Redis = fakeredis.FakeAsyncRedis(server=fake_server(config.url))
        return client
    kwargs: dict[str, Any] = {
        "decode_responses": False,
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.connect_timeout,
        # Two quick retries ride out a dropped connection; longer outages are the worker loop's business, which
        # backs off and keeps going. Retried pushes are safe: ids are chosen before the call and stored with HSETNX.
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2 if resend else 0),
    }
    if config.password:
        kwargs["password"] = config.password
    return redis.asyncio.Redis.from_url(config.url, **kwargs)


class RedisConnection(JobProducer):
    """The Redis driver's producer: pushes wrapped jobs, with optional delay, priority and job id.

    ``RedisQueueModule.for_root(...)`` binds it as ``JobProducer``. It also exposes the store (:attr:`store`) and
    the operator API (:attr:`admin`).
    """

    def __init__(self, config: RedisConfig | None = None) -> None:
        self.config = config if config is not None else load_config()
        self._client: AnyRedis | None = None
        self._store: RedisQueueStore | None = None

    def __repr__(self) -> str:
        return f"RedisConnection(url={display_url(self.config.url)!r}, key_prefix={self.config.key_prefix!r})"

    @property
    def client(self) -> AnyRedis:
        """The Redis client (created on first use, in the running event loop)."""
        if self._client is None:
            self._client = make_client(self.config)
        return self._client

    @property
    def store(self) -> RedisQueueStore:
        """The byte-level queue store under ``config.key_prefix``."""
        if self._store is None:
            self._store = RedisQueueStore(
                self.client, prefix=self.config.key_prefix, dead_letter_max=self.config.dead_letter_max
            )
        return self._store

    @property
    def admin(self) -> RedisQueueAdmin:
        """The operator API: queue depths, dead letters (list, inspect, redrive, purge)."""
        from .admin import RedisQueueAdmin

        return RedisQueueAdmin(self.store)

    def new_client(self, *, resend: bool = True) -> AnyRedis:
        """A separate client with the same settings (the worker's own); the caller closes it.

        ``resend=False``: the client never re-sends a command after a connection error (see :func:`make_client`).
        """
        return make_client(self.config, resend=resend)

    def _check_size(self, queue: str, data: bytes) -> bytes:
        if len(data) > self.config.max_payload_bytes:
            raise ValueError(
                f"job for queue {queue!r} is {len(data)} bytes encoded, above NESTQ_REDIS__MAX_PAYLOAD_BYTES="
                f"{self.config.max_payload_bytes}; store large data elsewhere and push a reference"
            )
        return data

    async def push_json(
        self,
        queue: str,
        payload: JSONValue,
        *,
        delay: float = 0.0,
        priority: int = 0,
        job_id: str | None = None,
    ) -> None:
        """Wrap ``payload`` once and enqueue it on ``queue``.

        ``delay``: seconds before it becomes ready. ``priority``: 0 (default) to :data:`MAX_PRIORITY`, higher
        first. ``job_id``: a caller-chosen id, which makes the push idempotent while that job exists.
        """
        await self.enqueue(queue, payload, delay=delay, priority=priority, job_id=job_id)

    async def enqueue(
        self,
        queue: str,
        payload: JSONValue,
        *,
        delay: float = 0.0,
        priority: int = 0,
        job_id: str | None = None,
    ) -> str:
        """Like :meth:`push_json`, returning the job's id."""
        data = self._check_size(queue, encode_job(queue, payload))
        return await self.store.push(queue, data, delay=delay, priority=priority, job_id=job_id)

    async def push_many_json(
        self,
        queue: str,
        payloads: Sequence[JSONValue],
        *,
        delay: float = 0.0,
        priority: int = 0,
        batch_id: str | None = None,
    ) -> list[str]:
        """Wrap and enqueue many payloads in one round trip per 5,000; return their ids in order.

        Every payload is encoded (and checked) before anything is stored. The batch has an id (``batch_id``,
        or a random one chosen before the first attempt): pushing the same batch id again within an hour stores
        nothing twice, even after its jobs have run. When the call fails part-way it raises
        :class:`~nestq_redis.store.PushBatchError` (a ``RedisError``); retry safely with the same payloads and
        ``batch_id=error.batch_id``. Job ids are ``<batch_id>-<index>``.
        """
        items = [self._check_size(queue, encode_job(queue, p)) for p in payloads]
        return await self.store.push_many(queue, items, delay=delay, priority=priority, batch_id=batch_id)

    async def push_raw(
        self,
        queue: str,
        data: bytes,
        *,
        delay: float = 0.0,
        priority: int = 0,
        job_id: str | None = None,
    ) -> str:
        """Store ``data`` as it is, bypassing the envelope: for tests and tools that plant messages.

        ``data`` is held to ``max_payload_bytes`` like any push.
        """
        validate_queue_name(queue)
        data = self._check_size(queue, bytes(data))
        return await self.store.push(queue, data, delay=delay, priority=priority, job_id=job_id)

    async def ping(self) -> None:
        """Raise unless the server answers."""
        await self.client.ping()

    async def aclose(self) -> None:
        """Close the client's connections (it reconnects if used again)."""
        if self._client is not None:
            client, self._client, self._store = self._client, None, None
            await client.aclose()
