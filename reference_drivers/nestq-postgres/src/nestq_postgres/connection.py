"""The producer side: :class:`PostgresConnection`, the driver's ``JobProducer`` over an asyncpg pool.

``push_json`` is the seam's one method; delays, priorities, batches and pushing inside the caller's own
transaction (``connection=``) are this driver's own API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg
from nestq_spec import JobProducer, JSONValue, NestqError, encode_job, redact, validate_queue_name

from .admin import PostgresQueueAdmin
from .config import PostgresConfig, display_dsn
from .schema import check_version, migrate, schema_version

__all__ = ["PostgresConnection", "PostgresConnectionError", "channel_name"]


class PostgresConnectionError(NestqError, ConnectionError):
    """The driver cannot reach or log in to PostgreSQL (the message masks the password)."""


def channel_name(schema: str) -> str:
    """The ``LISTEN``/``NOTIFY`` channel of ``schema``'s queues (PostgreSQL cuts identifiers at 63 bytes)."""
    return f"nestq_{schema}"[:63]


def describe_connect_error(dsn: str, exc: BaseException) -> str:
    """One line saying why connecting to ``dsn`` failed, with any password masked."""
    reason = redact(f"{type(exc).__name__}: {exc}", as_repr=False)
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        hint = "check the user and password in the DSN"
    elif isinstance(exc, asyncpg.InvalidCatalogNameError):
        hint = "the database does not exist; create it or fix the DSN"
    elif isinstance(exc, OSError | asyncio.TimeoutError | TimeoutError):
        hint = "is PostgreSQL running there, and the host and port right?"
    else:
        hint = "check NESTQ_POSTGRES__DSN"
    return f"cannot connect to PostgreSQL at {display_dsn(dsn)}: {reason} ({hint})"


async def _keep_session(connection: Any) -> None:
    """The pool's reset on release: nothing to do.

    asyncpg's default reset sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` each time a
    connection goes back to the pool, one more round trip per pooled call. This driver leaves no session state on a
    pooled connection (no session advisory locks, cursors, LISTEN or SET: migrations take a transaction lock, the
    LISTEN connection is not pooled, and settings are transaction-local), so there is nothing to reset.
    """


async def open_pool(config: PostgresConfig, *, min_size: int = 1) -> Any:
    """An asyncpg pool for ``config``, or :class:`PostgresConnectionError` saying why not."""
    try:
        return await asyncpg.create_pool(
            config.dsn, min_size=min(min_size, config.pool_size), max_size=config.pool_size,
            timeout=config.connect_timeout, command_timeout=None, reset=_keep_session,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise PostgresConnectionError(describe_connect_error(config.dsn, exc)) from None


class PostgresConnection(JobProducer):
    """Pushes envelopes into the jobs table; the container closes it (``aclose``) when the app shuts down."""

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self.schema = config.schema
        self.channel = channel_name(config.schema)
        self._pool: Any = None
        self._opening: asyncio.Lock | None = None
        s = config.schema
        self._sql_push = (
            f"WITH j AS (INSERT INTO {s}.jobs (queue, data, priority) VALUES ($1, $2, $3) RETURNING id) "
            "SELECT j.id, pg_notify($4, $1) FROM j"
        )
        self._sql_push_delayed = (
            f"INSERT INTO {s}.jobs (queue, data, priority, available_at) "
            "VALUES ($1, $2, $3, now() + $4 * interval '1 second') RETURNING id"
        )
        self._sql_push_many = (
            f"WITH j AS (INSERT INTO {s}.jobs (queue, data, priority, available_at) "
            "SELECT $1, d, $3, now() + $4 * interval '1 second' FROM unnest($2::bytea[]) WITH ORDINALITY AS u(d, n) "
            "ORDER BY n RETURNING id) SELECT array_agg(id ORDER BY id), pg_notify($5, $1) FROM j"
        )

    async def client(self) -> Any:
        """The asyncpg pool, opened on first use (inside the event loop that uses it), schema version checked."""
        if self._pool is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._pool is None:
                    self._pool = await self.connect()
        return self._pool

    async def connect(self) -> Any:
        """Open the pool; migrate when ``migrate`` is set, else fail unless the schema has this driver's version."""
        pool = await open_pool(self.config)
        try:
            async with pool.acquire() as conn:
                if self.config.migrate:
                    await migrate(conn, self.schema)
                else:
                    check_version(await schema_version(conn, self.schema), self.schema)
        except BaseException:
            await pool.close()
            raise
        return pool

    async def admin(self) -> PostgresQueueAdmin:
        """The operator API (depths, dead letters) over this connection's pool."""
        return PostgresQueueAdmin(await self.client(), self.schema, self.channel)

    async def disconnect(self, client: Any) -> None:
        """Close the pool (waits for borrowed connections to come back, then closes them)."""
        try:
            await asyncio.wait_for(client.close(), timeout=10)
        except TimeoutError:
            client.terminate()

    async def aclose(self) -> None:
        """Close the pool (conformance rule LIF-009 checks that nothing stays open)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await self.disconnect(pool)

    def _check(self, queue: str, data: bytes) -> None:
        validate_queue_name(queue)
        if len(data) > self.config.max_payload_bytes:
            raise ValueError(
                f"envelope for queue {queue!r} is {len(data)} bytes, over NESTQ_POSTGRES__MAX_PAYLOAD_BYTES="
                f"{self.config.max_payload_bytes}"
            )

    async def push_json(
        self, queue: str, payload: JSONValue, *, delay: float = 0.0, priority: int = 0, connection: Any = None
    ) -> None:
        """Wrap ``payload`` once (``{"v": 1, "payload": ...}``) and store it on ``queue``.

        ``delay``: seconds before it is due. ``priority``: higher runs first (default 0). ``connection``: an
        asyncpg connection inside the caller's transaction: the job exists if and only if that transaction commits
        (and idle workers are woken at the commit).
        """
        await self.enqueue(queue, payload, delay=delay, priority=priority, connection=connection)

    async def enqueue(
        self, queue: str, payload: JSONValue, *, delay: float = 0.0, priority: int = 0, connection: Any = None
    ) -> str:
        """Like :meth:`push_json`, returning the job's id."""
        return await self.push_raw(queue, encode_job(queue, payload), delay=delay, priority=priority,
                                   connection=connection)

    async def push_raw(
        self, queue: str, data: bytes, *, delay: float = 0.0, priority: int = 0, connection: Any = None
    ) -> str:
        """Store ``data`` (an encoded envelope, bytes, unchanged) on ``queue``; return the job's id."""
        self._check(queue, data)
        if delay < 0 or delay != delay:
            raise ValueError(f"delay must be >= 0 seconds, found {delay!r}")
        target = connection if connection is not None else await self.client()
        if delay > 0:
            job_id = await target.fetchval(self._sql_push_delayed, queue, data, int(priority), float(delay))
        else:
            job_id = await target.fetchval(self._sql_push, queue, data, int(priority), self.channel)
        return str(job_id)

    async def push_many(
        self, queue: str, payloads: Sequence[JSONValue], *, delay: float = 0.0, priority: int = 0,
        connection: Any = None,
    ) -> list[str]:
        """Wrap and store every payload on ``queue`` in one statement (all or none); return their ids in order."""
        items = [encode_job(queue, p) for p in payloads]
        for data in items:
            self._check(queue, data)
        if not items:
            return []
        if delay < 0 or delay != delay:
            raise ValueError(f"delay must be >= 0 seconds, found {delay!r}")
        target = connection if connection is not None else await self.client()
        ids = await target.fetchval(self._sql_push_many, queue, items, int(priority), float(delay), self.channel)
        return [str(i) for i in ids]
