"""The conformance harness, entry point ``rabbitmq`` in ``nestq.drivers``.

``pytest`` in this project, or ``nestq check rabbitmq``, runs the conformance suite against it.

Where the broker comes from: ``NESTQ_RABBITMQ__URL`` when set, else the local broker at 127.0.0.1:5672
(guest/guest). Every session keeps to itself: when ``rabbitmqctl`` can administer the broker (the local one), the
session runs in a virtual host of its own that it deletes at the end; otherwise it uses a unique queue-name prefix
and deletes the queues it declared. The suite refuses a broker that is not on this machine unless
``NESTQ_SUITE_ALLOW_REMOTE=1``: a shell variable left pointing at production must not receive test jobs.

The shared broker is never restarted. The rules that require ``storage_restart`` (DUR-005) run on a private node
instead (:class:`~nestq_rabbitmq.server.RabbitmqNode`: ``rabbitmq-server`` on free ports with its own epmd, cookie
and data folder), which the harness starts on the first such rule (:meth:`RabbitmqHarness.rule_start`), restarts
for :meth:`RabbitmqHarness.restart_storage` and deletes at the end; the other rules stay on the broker above.
``storage_restart`` is declared only when ``rabbitmq-server`` is installed (``NESTQ_RABBITMQ_SERVER_BIN`` names
another one; set empty, none), and with ``CI=true`` a missing one is an error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
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
from .server import RabbitmqNode, rabbitmq_server_binary

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
        """Everything; ``storage_restart`` with a private node; ``priority`` only on classic queues.

        The queue type is ``NESTQ_RABBITMQ__QUEUE_TYPE``; see :meth:`node_plan` for the private node.
        """
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
            storage_restart=self.node_plan()[0],
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
        self._node: RabbitmqNode | None = None
        self._starting: concurrent.futures.Future[RabbitmqNode] | None = None
        self._on_node = False

    def node_plan(self) -> tuple[bool, str]:
        """Whether the ``storage_restart`` rules can run on a private node, and why (for the report header).

        Raises with ``CI=true`` when ``rabbitmq-server`` is missing: CI must run every rule.
        """
        binary = rabbitmq_server_binary()
        if binary is not None:
            return True, f"storage_restart rules on a private node ({binary}, booted with a session that runs one)"
        why = ("storage_restart is not declared: no rabbitmq-server to run a private node (install the Debian "
               "package rabbitmq-server, or set NESTQ_RABBITMQ_SERVER_BIN)")
        if os.environ.get("CI", "").lower() == "true":
            raise RuntimeError(f"CI=true but {why}")
        return False, why

    @property
    def address(self) -> str:
        """The broker URL the current rule uses: the private node's, or the broker's (with the session's vhost)."""
        if self._on_node and self._node is not None:
            return self._node.url
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
        shared = self._address if self._address is not None else self.address
        return (f"rabbitmq: {redact(shared, as_repr=False)} ({self._origin}); {where}, prefix {self.prefix}; "
                f"{self.node_plan()[1]}")

    def session_start(self) -> None:
        """Pick a fresh prefix; on a local broker ``rabbitmqctl`` administers, make a virtual host for the session.

        When the selected rules include one that requires ``storage_restart``, the private node starts now, in a
        thread, while the other rules run on the shared broker: its 5-15 s boot is then mostly off the run's time.
        """
        self._prefix = f"nqsuite-{uuid.uuid4().hex[:10]}"
        if "storage_restart" in (self.selected_requires or ()) and self.node_plan()[0]:
            starter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nestq-rabbitmq-node")
            self._starting = starter.submit(lambda: RabbitmqNode().start())
            starter.shutdown(wait=False)
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

    def rule_start(self, rule_id: str, requires: frozenset[str]) -> None:
        """Point the rule at the private node if it requires ``storage_restart`` (the first time, start it).

        Every other rule runs on the broker of :attr:`address`.
        """
        self._on_node = "storage_restart" in requires and self.node_plan()[0]
        if self._on_node and self._node is None:
            self._node = self._take_started() or RabbitmqNode().start()

    def _take_started(self) -> RabbitmqNode | None:
        # The node session_start began in the background (waiting for its boot; its error, if it failed).
        starting, self._starting = self._starting, None
        return starting.result() if starting is not None else None

    def session_end(self) -> None:
        """Delete the private node; delete the session's virtual host, or else the queues it declared there."""
        self._on_node = False
        if self._node is None:
            with contextlib.suppress(Exception):  # a boot that failed in the background, for rules that never came
                self._node = self._take_started()
        if self._node is not None:
            self._node.close()
            self._node = None
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
            # Prompt reconnects, as the suite's short timings ask (the default cap, 30 s, suits production).
            "reconnect_cap": 1.0,
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

    async def restart_storage(self) -> None:
        """Kill the private node (SIGKILL, a crash) and start it again on its ports and data; return once ready."""
        if not self._on_node or self._node is None:
            raise NotImplementedError("restart_storage hook: only the private node the harness started can restart")
        await asyncio.to_thread(self._node.restart)

    async def storage_identity(self) -> str:
        """The private node's ``beam.smp`` process id, from the pid file the node writes at boot."""
        if not self._on_node or self._node is None:
            raise NotImplementedError("storage_identity probe: only for the private node the harness started")
        return f"{self._node.nodename} beam.smp pid {self._node.pid()}"


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
