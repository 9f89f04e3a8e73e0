"""The conformance harness, entry point ``postgres`` in ``nestq.drivers``.

``pytest`` in this project, or ``nestq check postgres``, runs the conformance suite against it. Which PostgreSQL:
``NESTQ_POSTGRES__DSN`` when set; otherwise a private cluster (``initdb`` + ``pg_ctl`` from the installed server
binaries, in a temp directory, on a free port, with a password), which is what makes ``storage_restart``
testable; otherwise the local server at 127.0.0.1:5432. Every session uses its own schema and drops it at the
end. The suite refuses a server that is not on this machine unless ``NESTQ_SUITE_ALLOW_REMOTE=1``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import os
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

import asyncpg
from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DeadLetterInfo, DriverHarness, SuiteSettings
from nestq_spec import Container, JSONValue, ModuleLike, env_var

from .config import PostgresConfig, display_dsn
from .connection import PostgresConnection
from .module import PostgresQueueModule, PostgresQueueWorkerModule
from .schema import migrate
from .server import PostgresServer, find_bindir

__all__ = ["LOCAL_DSN", "PostgresHarness", "harness"]

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/test"
"""The machine's own server, used when neither ``NESTQ_POSTGRES__DSN`` nor server binaries are there."""

_DSN_VAR = env_var(PostgresConfig, "dsn")
_SCHEMA_VAR = env_var(PostgresConfig, "schema")
# How a worker process the suite starts learns the session's schema. Not NESTQ_POSTGRES__SCHEMA: a schema named
# in the shell (perhaps the production one) must never become the suite's, which it drops at the end.
_SUITE_SCHEMA_VAR = "NESTQ_POSTGRES_SUITE_SCHEMA"
T = TypeVar("T")


@dataclass(frozen=True)
class _Plan:
    kind: Literal["env", "private", "local"]
    dsn: str
    why: str


def _in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when the caller is inside an event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()


class PostgresHarness(DriverHarness):
    """Runs the conformance suite against the driver on a real PostgreSQL."""

    name = "postgres"
    settings_class = PostgresConfig
    expected_failures: Mapping[str, str] = {}

    def __init__(self) -> None:
        self._plan: _Plan | None = None
        self._server: PostgresServer | None = None
        self._schema = os.environ.get(_SUITE_SCHEMA_VAR) or f"nqsuite_{uuid.uuid4().hex[:10]}"
        self._capabilities: Capabilities | None = None

    def _choose(self) -> _Plan:
        if self._plan is None:
            given = os.environ.get(_DSN_VAR, "").strip()
            if given:
                plan = _Plan("env", given, f"from {_DSN_VAR}")
            elif find_bindir() is not None:
                plan = _Plan("private", "", "a private cluster (initdb + pg_ctl), so restarts can be tested")
            else:
                plan = _Plan("local", LOCAL_DSN, f"no {_DSN_VAR} and no server binaries: the local server")
            if plan.kind != "private":
                host = urlsplit(plan.dsn).hostname or "localhost"
                if not _is_local(host) and os.environ.get("NESTQ_SUITE_ALLOW_REMOTE") != "1":
                    raise RuntimeError(
                        f"the suite would write test jobs to {host!r} ({plan.why}), not on this machine; set "
                        "NESTQ_SUITE_ALLOW_REMOTE=1 if that server is meant for tests"
                    )
            self._plan = plan
        return self._plan

    @property
    def address(self) -> str:
        """The DSN the suite uses (the private cluster's, once started)."""
        plan = self._choose()
        if plan.kind == "private":
            return self._start_server().dsn
        return plan.dsn

    @property
    def schema(self) -> str:
        """The session's own schema, dropped at the end."""
        return self._schema

    @property
    def capabilities(self) -> Capabilities:
        """Everything the driver does; ``storage_restart`` only on a private cluster the harness can restart."""
        if self._capabilities is None:
            self._capabilities = Capabilities(
                durability="durable",
                delivery="at-least-once",
                ordering="fifo",
                retries=True,
                max_attempts=SuiteSettings().max_attempts,
                backoff=True,
                dead_letters=True,
                visibility_timeout=True,
                delayed_jobs=True,
                priority=True,
                cross_process=True,
                max_concurrency=True,
                max_payload_bytes=PostgresConfig().max_payload_bytes,
                storage_restart=self._choose().kind == "private",
            ).validate()
        return self._capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self._capabilities = value

    def describe(self) -> str:
        """Which PostgreSQL the suite runs on, why, and the session's schema (password masked)."""
        plan = self._choose()
        if plan.kind == "private":
            where = f"private cluster at {display_dsn(self._server.dsn)}" if self._server else "private cluster"
        else:
            where = display_dsn(plan.dsn)
        return f"postgres: {where} ({plan.why}); schema {self._schema}"

    def _start_server(self) -> PostgresServer:
        if self._server is None:
            self._server = PostgresServer().start()
        return self._server

    def session_start(self) -> None:
        """Start the private cluster when the plan needs one; create this session's schema."""
        dsn = self.address

        async def create() -> None:
            conn = await asyncpg.connect(dsn, timeout=10)
            try:
                await migrate(conn, self._schema)
            finally:
                await conn.close()

        _in_thread(create)

    def session_end(self) -> None:
        """Drop this session's schema; stop the private cluster (which takes everything with it)."""
        plan = self._plan
        if self._server is not None:
            self._server.stop()
            self._server = None
            return
        if plan is None:
            return

        async def drop() -> None:
            conn = await asyncpg.connect(plan.dsn, timeout=10)
            try:
                await conn.execute(f"DROP SCHEMA IF EXISTS {self._schema} CASCADE")
            finally:
                await conn.close()

        # Nothing reachable to clean means the session never wrote there.
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            _in_thread(drop)

    def _pinned(self, settings: SuiteSettings) -> dict[str, object]:
        return {
            "dsn": self.address,
            "schema": self._schema,
            "concurrency": settings.concurrency,
            "max_attempts": settings.max_attempts,
            "backoff_base": settings.backoff,
            "backoff_cap": max(settings.backoff_cap, settings.backoff),
            "shutdown_grace": settings.shutdown_grace,
            "visibility_timeout": settings.visibility_timeout,
            "heartbeat_interval": min(settings.heartbeat_interval, settings.visibility_timeout / 2),
            "poll_interval": settings.poll_interval,
        }

    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        """``PostgresQueueModule.for_root`` with the suite's timings, this session's DSN and schema."""
        return PostgresQueueModule.for_root(self._pinned(settings))

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        """``PostgresQueueWorkerModule`` (its settings come with the producer module)."""
        return PostgresQueueWorkerModule

    def configured_module(self, pinned: Mapping[str, object]) -> ModuleLike:
        """``PostgresQueueModule.for_root(pinned)``: the rest from ``NESTQ_POSTGRES__*`` and the defaults."""
        return PostgresQueueModule.for_root(dict(pinned))

    def live_settings(self, container: Container) -> object:
        """The :class:`PostgresConfig` the booted app's connection and worker are built with."""
        return container.get(PostgresConfig)

    def subprocess_env(self) -> dict[str, str]:
        """``NESTQ_POSTGRES__DSN`` and ``NESTQ_POSTGRES__SCHEMA`` for worker processes (``cross_process``)."""
        return {_DSN_VAR: self.address, _SCHEMA_VAR: self._schema, _SUITE_SCHEMA_VAR: self._schema}

    # ------------------------------------------------------------------ probes and hooks

    async def dead_letters(self, container: Container, queue: str) -> list[DeadLetterInfo]:
        """Dead letters of ``queue``, oldest first, with the stored envelope bytes."""
        pool = await container.get(PostgresConnection).client()
        rows = await pool.fetch(
            f"SELECT id, data, error, attempts FROM {self._schema}.dead_letters WHERE queue = $1 "
            "ORDER BY failed_at, id",
            queue,
        )
        return [DeadLetterInfo(bytes(r["data"]), r["error"], r["attempts"], str(r["id"])) for r in rows]

    async def queue_depth(self, container: Container, queue: str) -> int:
        """Ready + delayed + running jobs of ``queue`` (dead letters live in their own table)."""
        pool = await container.get(PostgresConnection).client()
        return int(await pool.fetchval(f"SELECT count(*) FROM {self._schema}.jobs WHERE queue = $1", queue))

    async def push_delayed(self, container: Container, queue: str, payload: object, delay: float) -> None:
        """``push_json(..., delay=delay)``."""
        await container.get(PostgresConnection).push_json(queue, cast(JSONValue, payload), delay=delay)

    async def push_with_priority(self, container: Container, queue: str, payload: object, priority: int) -> None:
        """``push_json(..., priority=priority)`` (any integer; higher runs first)."""
        await container.get(PostgresConnection).push_json(queue, cast(JSONValue, payload), priority=priority)

    async def push_raw(self, container: Container, queue: str, data: bytes) -> None:
        """``PostgresConnection.push_raw``: the bytes stored as they are."""
        await container.get(PostgresConnection).push_raw(queue, data)

    async def restart_storage(self) -> None:
        """Stop the private cluster immediately (like a crash) and start it again on the same port and data."""
        if self._choose().kind != "private" or self._server is None:
            raise NotImplementedError("restart_storage hook: only a cluster the harness started can restart")
        await asyncio.to_thread(self._server.restart)

    async def storage_identity(self) -> str:
        """The postmaster's start time (``pg_postmaster_start_time()``), new on every start."""
        conn = await asyncpg.connect(self.address, timeout=10)
        try:
            started = await conn.fetchval("SELECT pg_postmaster_start_time()")
        finally:
            await conn.close()
        return f"postmaster started {started.isoformat()}"


def _is_local(host: str) -> bool:
    if host == "localhost" or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


harness = PostgresHarness()
"""The instance the ``postgres`` entry point names."""
