"""The conformance harness, entry point ``rabbitmq`` in ``nestq.drivers``.

``pytest`` in this project, or ``nestq check rabbitmq``, runs the conformance suite against it.

Where the broker comes from: ``NESTQ_RABBITMQ__URL`` when set, else the local broker at 127.0.0.1:5672
(guest/guest). Every session keeps to itself: when ``rabbitmqctl`` can administer the broker (the local one), the
session runs in a virtual host of its own that it deletes at the end; otherwise it uses a unique queue-name prefix
and deletes the queues it declared. The suite refuses a broker that is not on this machine unless
``NESTQ_SUITE_ALLOW_REMOTE=1``: a shell variable left pointing at production must not receive test jobs.

The shared broker is never restarted, so ``storage_restart`` is not declared; losing the connection is tested by
the project's own tests, which close the worker's connection through ``rabbitmqctl close_connection``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from typing import cast
from urllib.parse import quote, urlsplit, urlunsplit

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DeadLetterInfo, DriverHarness, SuiteSettings
from nestq_spec import Container, JSONValue, ModuleLike, env_var, redact

from .admin import RabbitmqAdmin
from .config import RabbitmqConfig, load_config
from .connection import DECLARED_NAMES, RabbitmqConnection
from .module import RabbitmqQueueModule, RabbitmqQueueWorkerModule

__all__ = ["PAYLOAD_LIMIT", "RabbitmqHarness", "harness", "rabbitmqctl"]

LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672/"
SUITE_MAX_PRIORITY = 10
"""The ``max_priority`` the suite runs classic queues with (the driver's default, 0, has no priorities)."""
PAYLOAD_LIMIT = 4 * 1024 * 1024
"""The largest envelope the harness declares (the suite pushes up to it)."""
_URL_VAR = env_var(RabbitmqConfig, "url")
_PREFIX_VAR = env_var(RabbitmqConfig, "prefix")


def rabbitmqctl(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str] | None:
    """Run ``rabbitmqctl`` against the local node; None when it is not installed or cannot reach the node."""
    binary = shutil.which("rabbitmqctl")
    if binary is None:
        return None
    try:
        done = subprocess.run([binary, "-q", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done if done.returncode == 0 else None


class RabbitmqHarness(DriverHarness):
    """Runs the conformance suite against the driver; see the module docstring for where the broker comes from."""

    name = "rabbitmq"
    settings_class = RabbitmqConfig
    expected_failures: Mapping[str, str] = {}
    _capabilities: Capabilities | None

    @property
    def capabilities(self) -> Capabilities:
        """Everything but ``storage_restart``; ``priority`` only on classic queues (``NESTQ_RABBITMQ__QUEUE_TYPE``)."""
        if self._capabilities is not None:
            return self._capabilities
        return Capabilities(
            durability="durable",
            delivery="at-least-once",
            ordering="fifo",
            retries=True,
            max_attempts=RabbitmqConfig().max_attempts,
            backoff=True,
            dead_letters=True,
            visibility_timeout=True,
            delayed_jobs=True,
            priority=load_config().queue_type == "classic",
            cross_process=True,
            max_payload_bytes=PAYLOAD_LIMIT,
            max_concurrency=True,
            storage_restart=False,
        ).validate()

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self._capabilities = value

    def __init__(self) -> None:
        self._address: str | None = None
        self._origin = ""
        self._prefix: str | None = None
        self._vhost: str | None = None
        self._capabilities = None

    @property
    def address(self) -> str:
        """The broker URL the suite uses (with the session's virtual host once ``session_start`` made one)."""
        if self._address is None:
            url = os.environ.get(_URL_VAR)
            self._address = str(load_config().url if url else LOCAL_URL)
            self._origin = f"from {_URL_VAR}" if url else f"the local broker ({_URL_VAR} unset)"
            host = urlsplit(self._address).hostname or "localhost"
            if not _is_local(host) and os.environ.get("NESTQ_SUITE_ALLOW_REMOTE") != "1":
                raise RuntimeError(
                    f"the suite would write test jobs to {host!r} ({self._origin}), not on this machine; set "
                    "NESTQ_SUITE_ALLOW_REMOTE=1 if that storage is meant for tests"
                )
        return self._address

    @property
    def prefix(self) -> str:
        """The session's queue-name prefix (``NESTQ_RABBITMQ__PREFIX`` in a worker subprocess, else a fresh one)."""
        if self._prefix is None:
            self._prefix = os.environ.get(_PREFIX_VAR) or f"nqsuite-{uuid.uuid4().hex[:10]}"
        return self._prefix

    def describe(self) -> str:
        """The report header's line: the broker, the session's virtual host or prefix, and where they came from."""
        where = f"virtual host {self._vhost!r}" if self._vhost else "its own queue prefix"
        return f"rabbitmq: {redact(self.address, as_repr=False)} ({self._origin}); {where}, prefix {self.prefix}"

    def session_start(self) -> None:
        """Pick a fresh prefix; on a local broker ``rabbitmqctl`` administers, make a virtual host for the session."""
        self._prefix = f"nqsuite-{uuid.uuid4().hex[:10]}"
        base = self.address
        parts = urlsplit(base)
        if not _is_local(parts.hostname or "localhost"):
            return
        vhost = f"nqsuite-{uuid.uuid4().hex[:10]}"
        user = parts.username or "guest"
        if rabbitmqctl("add_vhost", vhost) is None:
            return
        if rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*") is None:
            rabbitmqctl("delete_vhost", vhost)
            return
        self._vhost = vhost
        self._address = urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))

    def session_end(self) -> None:
        """Delete the session's virtual host, or else the queues this process declared under its prefix."""
        if self._vhost is not None:
            rabbitmqctl("delete_vhost", self._vhost)
            self._vhost = None
            return
        names = sorted(n for n in DECLARED_NAMES if n.startswith(f"{self.prefix}."))
        if names:
            asyncio.run(_delete_queues(self.address, names))

    def _pinned(self, settings: SuiteSettings) -> dict[str, object]:
        return {
            "url": self.address,
            "prefix": self.prefix,
            "concurrency": settings.concurrency,
            "max_attempts": settings.max_attempts,
            "backoff_base": settings.backoff,
            "backoff_cap": max(settings.backoff_cap, settings.backoff),
            "shutdown_grace": settings.shutdown_grace,
            "reconnect_interval": max(0.05, settings.poll_interval),
            # Priorities are off by default (they cost throughput); the suite checks them on classic queues.
            "max_priority": SUITE_MAX_PRIORITY if load_config().queue_type == "classic" else 0,
        }

    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        """``RabbitmqQueueModule.for_root`` with the suite's settings."""
        return RabbitmqQueueModule.for_root(self._pinned(settings))

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        """``RabbitmqQueueWorkerModule`` (its settings come with the producer module)."""
        return RabbitmqQueueWorkerModule

    def configured_module(self, pinned: Mapping[str, object]) -> ModuleLike:
        """The producer module as an app boots it, only ``pinned`` pinned (everything else from env/defaults)."""
        return RabbitmqQueueModule.for_root(dict(pinned))

    def live_settings(self, container: Container) -> object:
        """The settings object the booted driver uses."""
        return container.get(RabbitmqConnection).config

    def subprocess_env(self) -> dict[str, str]:
        """What a worker in another process needs to reach the same broker, virtual host and prefix."""
        return {_URL_VAR: self.address, _PREFIX_VAR: self.prefix}

    # ------------------------------------------------------------------ probes and hooks

    async def dead_letters(self, container: Container, queue: str) -> list[DeadLetterInfo]:
        """Dead letters of ``queue``, oldest first, read without removing them."""
        letters = await RabbitmqAdmin(container.get(RabbitmqConnection)).dead_letters(queue, limit=10_000)
        return [DeadLetterInfo(d.data, d.error, d.attempts, d.job_id) for d in letters]

    async def queue_depth(self, container: Container, queue: str) -> int:
        """Ready + delayed jobs of ``queue`` on the broker, plus those held unacked by this process's workers."""
        return (await RabbitmqAdmin(container.get(RabbitmqConnection)).depth(queue)).pending

    async def push_delayed(self, container: Container, queue: str, payload: object, delay: float) -> None:
        """``push_json(..., delay=delay)``."""
        await container.get(RabbitmqConnection).push_json(queue, cast(JSONValue, payload), delay=delay)

    async def push_with_priority(self, container: Container, queue: str, payload: object, priority: int) -> None:
        """``push_json(..., priority=p)``, the suite's priority clamped into 0..max_priority."""
        connection = container.get(RabbitmqConnection)
        level = min(max(priority, 0), connection.config.max_priority)
        await connection.push_json(queue, cast(JSONValue, payload), priority=level)

    async def push_raw(self, container: Container, queue: str, data: bytes) -> None:
        """Store ``data`` as it is, bypassing the envelope: how the suite plants malformed envelopes."""
        await container.get(RabbitmqConnection).push_raw(queue, data)


async def _delete_queues(url: str, names: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
    finally:
        await connection.close()


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


harness = RabbitmqHarness()
"""The instance the ``rabbitmq`` entry point names."""
