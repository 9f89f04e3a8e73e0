"""The conformance harness, entry point ``nats`` in ``nestq.drivers``.

``pytest`` in this project, or ``nestq check nats``, runs the conformance suite against it.

Which server: ``NESTQ_NATS__URL`` when set; otherwise a private ``nats-server -js`` the harness starts on a free
port with its own store folder (so ``storage_restart`` is declared and tested); otherwise the local server on
127.0.0.1:4222. With ``CI=true`` a missing server is an error, never a skip. A storage that is not on this machine
is refused unless ``NESTQ_SUITE_ALLOW_REMOTE=1``. Every run uses its own stream prefix and deletes its streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DeadLetterInfo, DriverHarness, SuiteSettings
from nestq_spec import Container, JSONValue, ModuleLike, env_var, redact

from .admin import NatsAdmin
from .config import NatsConfig
from .connection import NatsConnection
from .module import NatsQueueModule, NatsQueueWorkerModule
from .server import NatsServer, nats_server_binary, server_answers

__all__ = ["NatsHarness", "harness"]

_URL_VAR = env_var(NatsConfig, "url")
_PREFIX_VAR = "NESTQ_NATS_SUITE_PREFIX"  # the session's stream prefix, handed to worker subprocesses
_LOCAL = ("127.0.0.1", 4222)
PAYLOAD_LIMIT = 256 * 1024
"""What the suite pushes at most; the server's max_payload (1 MiB by default) holds it with the headers."""


@dataclass(frozen=True, slots=True)
class _Plan:
    kind: str  # "env", "private" or "local"
    url: str
    why: str


class NatsHarness(DriverHarness):
    """Runs the conformance suite against the NATS JetStream driver; see the module docstring for the server."""

    name = "nats"
    settings_class = NatsConfig
    def __init__(self) -> None:
        self._plan: _Plan | None = None
        self._server: NatsServer | None = None
        self._prefix: str | None = None
        self._capabilities: Capabilities | None = None

    def _choose(self) -> _Plan:
        if self._plan is not None:
            return self._plan
        url = os.environ.get(_URL_VAR)
        if url:
            plan = _Plan("env", url, f"from {_URL_VAR}")
            host = urlsplit(url).hostname or "localhost"
            if not _is_local(host) and os.environ.get("NESTQ_SUITE_ALLOW_REMOTE") != "1":
                raise RuntimeError(
                    f"the suite would write test jobs to {host!r} (from {_URL_VAR}), not on this machine; set "
                    "NESTQ_SUITE_ALLOW_REMOTE=1 if that server is meant for tests"
                )
        elif nats_server_binary():
            plan = _Plan("private", "", "a private nats-server -js started by the harness on a free port with its "
                         f"own store folder, so storage restarts are tested; set {_URL_VAR} to use another server")
        elif server_answers(*_LOCAL):
            plan = _Plan("local", "nats://127.0.0.1:4222", "the local server on 127.0.0.1:4222 (no nats-server "
                         "binary to start a private one, so storage_restart is not declared)")
        elif os.environ.get("CI", "").lower() == "true":
            raise RuntimeError(
                f"CI=true but no NATS server: {_URL_VAR} is unset, there is no nats-server binary to start, and "
                "nothing answers on 127.0.0.1:4222"
            )
        else:
            plan = _Plan("local", "nats://127.0.0.1:4222", "the default local server (nothing answers there now)")
        self._plan = plan
        return plan

    @property
    def address(self) -> str:
        """The URL the suite's modules use (starting the private server when the plan needs it)."""
        plan = self._choose()
        if plan.kind == "private":
            if self._server is None:
                self._server = NatsServer().start()
            return self._server.url
        return plan.url

    @property
    def prefix(self) -> str:
        """The session's stream prefix (handed to worker subprocesses, else a fresh one)."""
        if self._prefix is None:
            self._prefix = os.environ.get(_PREFIX_VAR) or f"nqsuite-{uuid.uuid4().hex[:10]}"
        return self._prefix

    @property
    def capabilities(self) -> Capabilities:
        """Durable, at-least-once, fifo, retries, backoff, dead letters, leases; restarts on a private server.

        ``delayed_jobs`` is not declared: the installed nats-server (2.9) has no message scheduling (2.12's
        ``Nats-Schedule``), and a delay built from ``nak(delay)`` would count a delivery for every wake-up.
        ``priority`` is not declared: a stream delivers in sequence order.
        """
        if self._capabilities is None:
            self._capabilities = Capabilities(
                durability="durable",
                delivery="at-least-once",
                ordering="fifo",
                retries=True,
                max_attempts=NatsConfig().max_attempts,
                backoff=True,
                dead_letters=True,
                visibility_timeout=True,
                cross_process=True,
                max_payload_bytes=PAYLOAD_LIMIT,
                max_concurrency=True,
                storage_restart=self._choose().kind == "private",
            ).validate()
        return self._capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self._capabilities = value

    def describe(self) -> str:
        """Which server the suite runs on, and why (the password masked)."""
        plan = self._choose()
        where = self._server.url if self._server is not None else (plan.url or "(not started yet)")
        return f"nats: {redact(where, as_repr=False)}: {plan.why}; stream prefix {self.prefix}"

    def session_start(self) -> None:
        """Pick a fresh stream prefix; start the private server when the plan needs one."""
        self._prefix = f"nqsuite-{uuid.uuid4().hex[:10]}"
        _ = self.address

    def session_end(self) -> None:
        """Stop the private server (deleting its folder); on a shared server, delete this session's streams."""
        if self._server is not None:
            self._server.close()
            self._server = None
        elif self._plan is not None and self._prefix is not None:
            asyncio.run(_delete_streams(self._plan.url, self._prefix))

    def _pinned(self, settings: SuiteSettings) -> dict[str, object]:
        return {
            "url": self.address,
            "stream_prefix": self.prefix,
            "concurrency": settings.concurrency,
            "max_attempts": settings.max_attempts,
            "backoff_base": settings.backoff,
            "backoff_cap": max(settings.backoff_cap, settings.backoff),
            "shutdown_grace": settings.shutdown_grace,
            "visibility_timeout": settings.visibility_timeout,
            "heartbeat_interval": settings.heartbeat_interval,
        }

    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        """``NatsQueueModule.for_root`` with the suite's settings."""
        return NatsQueueModule.for_root(self._pinned(settings))

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        """``NatsQueueWorkerModule`` (its settings come with the producer module)."""
        return NatsQueueWorkerModule

    def configured_module(self, pinned: Mapping[str, object]) -> ModuleLike:
        """``NatsQueueModule.for_root(pinned)``: only ``pinned`` in code, the rest from env and defaults."""
        return NatsQueueModule.for_root(dict(pinned))

    def live_settings(self, container: Container) -> object:
        """The settings object the booted driver uses."""
        return container.get(NatsConfig)

    def subprocess_env(self) -> dict[str, str]:
        """The server URL and this session's stream prefix, for a worker in another process."""
        return {_URL_VAR: self.address, _PREFIX_VAR: self.prefix}

    async def push_raw(self, container: Container, queue: str, data: bytes) -> None:
        """Store ``data`` as it is, bypassing the envelope: how the suite plants malformed envelopes."""
        await container.get(NatsConnection).push_raw(queue, data)

    async def queue_depth(self, container: Container, queue: str) -> int:
        """Messages on the queue's subject: ready, waiting out a retry delay, or running (not yet acked)."""
        return await NatsAdmin(container.get(NatsConnection)).depth(queue)

    async def dead_letters(self, container: Container, queue: str) -> list[DeadLetterInfo]:
        """The queue's dead letters from the dead-letter stream, oldest first."""
        letters = await NatsAdmin(container.get(NatsConnection)).dead_letters(queue)
        return [DeadLetterInfo(envelope=letter.data, error=letter.error, attempts=letter.attempts,
                               job_id=letter.job_id) for letter in letters]

    async def restart_storage(self) -> None:
        """Stop the private nats-server and start it again on the same port and store folder."""
        if self._server is None:
            raise NotImplementedError("restart_storage hook: only a nats-server the harness started can restart")
        await asyncio.to_thread(self._server.restart)

    async def storage_identity(self) -> str:
        """The server's id and start time from its ``INFO`` greeting (new on every start)."""
        import nats

        client = await nats.connect(self.address, allow_reconnect=False, connect_timeout=5)
        try:
            info = cast(dict[str, JSONValue], client._server_info)  # the INFO the server greeted this client with
            return f"server_id {info.get('server_id')} (pid of the harness's server: " \
                   f"{self._server.process.pid if self._server and self._server.process else 'n/a'})"
        finally:
            await client.close()


async def _delete_streams(url: str, prefix: str) -> None:
    import nats
    import nats.js.errors

    from .layout import Layout

    try:
        client = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    except Exception:
        return  # no server reached, so nothing of this session to delete
    try:
        js = client.jetstream()
        layout = Layout(prefix)
        for stream in (layout.jobs_stream, layout.dead_stream):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
    finally:
        await client.close()


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


harness = NatsHarness()
"""The instance the ``nats`` entry point names."""
