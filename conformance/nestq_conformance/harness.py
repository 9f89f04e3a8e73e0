"""The driver's side of the contract: one ``DriverHarness`` the driver exposes through ``nestq.drivers``.

The suite asks the harness for the driver's producer and worker modules (built with the suite's short
timings), reads its capability manifest, and uses its optional probes and hooks.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace

from nestq_conformance.capabilities import Capabilities
from nestq_spec import Container, ModuleLike

__all__ = [
    "OPTIONAL_PROBES",
    "DeadLetterInfo",
    "DriverHarness",
    "SuiteSettings",
    "implemented_probes",
    "open_descriptors",
]


@dataclass(frozen=True, slots=True)
class SuiteSettings:
    """The timings and limits the suite asks a driver's modules to use (pinned in code, not read from env).

    Durations are seconds, already multiplied by the suite's timeout scale where they are deadlines.
    """

    concurrency: int = 4
    max_attempts: int = 3
    backoff: float = 0.05
    """Base delay before the first retry; later retries may grow it (exponential), capped by ``backoff_cap``."""
    backoff_cap: float = 0.2
    visibility_timeout: float = 1.0
    heartbeat_interval: float = 0.2
    shutdown_grace: float = 2.0
    poll_interval: float = 0.05
    """Longest a blocking wait on the storage may last, so cancellation and reconnects are prompt."""

    def with_(self, **changes: object) -> SuiteSettings:
        """Return a copy with some settings changed (a rule that needs, say, concurrency 1)."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """A dead letter as a probe reports it: the stored envelope (bytes or parsed), the error, the attempts."""

    envelope: object
    error: str
    attempts: int
    job_id: str | None = None


class DriverHarness(ABC):
    """What a driver gives the conformance suite. Subclass it once per driver and expose an instance.

    Only ``name``, ``capabilities`` and the two module factories are required. Probes and hooks raise
    ``NotImplementedError`` by default. A probe counts as implemented when the harness's class overrides the
    method (see :func:`implemented_probes`). Declaring a capability whose rules call a probe the harness does not
    implement is a manifest error (the run stops before any rule); a rule that needs no capability but calls a
    missing probe (``queue_depth``, ``push_raw``, ``live_settings``) is skipped, naming the probe.
    """

    name: str = "unnamed"
    """A short driver name for reports (``memory``, ``redis``)."""
    capabilities: Capabilities = Capabilities()
    """What the driver guarantees."""
    expected_failures: Mapping[str, str] = {}
    """Rule id -> reason, for rules the driver knowingly fails (strict: an unexpected pass is reported)."""
    settings_class: type | None = None
    """The driver's ``@settings`` class, checked by the dual-path config rules."""
    selected_requires: frozenset[str] | None = None
    """The capabilities that the rules selected for this run require, set before :meth:`session_start` when the
    plugin runs the suite (None: not known, e.g. a harness used outside a run). Lets a harness prepare, ahead of
    time and in the background, storage only some rules need (the RabbitMQ harness's private node)."""

    def describe(self) -> str:
        """One line for the report header: where the storage is, and how it was chosen.

        Called when the session is configured, also by runs that execute no rule (``--nestq-no-suite``,
        ``--collect-only``), where :meth:`session_end` never comes: it must not start storage. Name what
        :meth:`session_start` will start ("a private server, not started yet") instead.
        """
        return self.name

    def session_start(self) -> None:  # noqa: B027 - an optional hook; most drivers need nothing here
        """Called once before the suite runs (start a private server, say). Synchronous, outside any loop.

        Only the suite's own process calls it. A worker subprocess (the ``cross_process`` rules) builds its modules
        from a fresh harness without it, so whatever the session started must reach the child through
        :meth:`subprocess_env`.
        """

    def session_end(self) -> None:  # noqa: B027 - an optional hook, like session_start
        """Called once after the suite ran."""

    def rule_start(self, rule_id: str, requires: frozenset[str]) -> None:  # noqa: B027 - optional, like session_start
        """Called before each rule runs, with the capabilities it requires. Synchronous, outside any loop.

        For a harness whose storage differs between rules: the RabbitMQ harness runs the rules that require
        ``storage_restart`` on a private node it starts on the first such rule, and the others on the shared broker.
        What the modules and :meth:`subprocess_env` return after it is what that rule uses.
        """

    @abstractmethod
    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        """The producer-side module (binds ``JobProducer``), configured with ``settings``.

        Called once per app the suite boots, inside that test's event loop.
        """

    @abstractmethod
    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        """The worker-side module (contributes the ``Transport``), configured with ``settings``."""

    # Optional probes: raise NotImplementedError (the default) when the driver has none.

    async def dead_letters(self, container: Container, queue: str) -> list[DeadLetterInfo]:
        """The dead letters of ``queue``, oldest first (needs ``dead_letters``)."""
        raise NotImplementedError("dead_letters probe")

    async def queue_depth(self, container: Container, queue: str) -> int:
        """Jobs of ``queue`` accepted and not yet finished (ready, delayed or running)."""
        raise NotImplementedError("queue_depth probe")

    async def push_delayed(self, container: Container, queue: str, payload: object, delay: float) -> None:
        """Push ``payload`` through the driver's own API so it becomes due after ``delay`` seconds."""
        raise NotImplementedError("push_delayed hook")

    async def push_with_priority(self, container: Container, queue: str, payload: object, priority: int) -> None:
        """Push through the driver's own API with ``priority`` (higher runs first)."""
        raise NotImplementedError("push_with_priority hook")

    async def push_raw(self, container: Container, queue: str, data: bytes) -> None:
        """Store ``data`` as is on ``queue``, bypassing the producer: how the suite plants malformed envelopes."""
        raise NotImplementedError("push_raw hook")

    async def restart_storage(self) -> None:
        """Stop and start the storage the modules use; return once it accepts connections (``storage_restart``)."""
        raise NotImplementedError("restart_storage hook")

    async def storage_identity(self) -> str:
        """An identity of the running storage instance that changes when it restarts (``storage_restart``).

        A server's run id (Redis: ``run_id`` from ``INFO server``), a process id, a broker's start time. The rules
        that restart the storage read it before and after :meth:`restart_storage` and fail when it did not change,
        so a ``restart_storage`` that does nothing cannot pass them.
        """
        raise NotImplementedError("storage_identity probe")

    def configured_module(self, pinned: Mapping[str, object]) -> ModuleLike:
        """The producer module as an app boots it, with only ``pinned`` pinned in code (``Module.for_root(pinned)``).

        Every other setting comes from ``NESTQ_<NAMESPACE>__<KEY>`` and the defaults. The configuration rule boots
        it (without serving) with variables set, and reads :meth:`live_settings` of the booted container.
        """
        raise NotImplementedError("configured_module hook")

    def live_settings(self, container: Container) -> object:
        """The settings object the driver booted in ``container`` actually uses (an instance of ``settings_class``).

        The configuration rules boot the driver's own modules with ``NESTQ_<NAMESPACE>__<KEY>`` variables set, with
        and without values pinned in code, and compare what this returns with what should have won.
        """
        raise NotImplementedError("live_settings probe")

    async def open_resources(self) -> dict[str, list[str]]:
        """What this process holds open now, by kind (``socket``, ``file``, ``pipe``...), for LIF-009.

        LIF-009 compares it before a rule's apps start and after they are closed: whatever the driver opened must be
        closed again. The default lists the process's open file descriptors (``/proc/self/fd``), which sees every
        connection (TCP or Unix socket) and every file a driver opens, whatever its storage; a harness may override
        it with something closer to its storage (a client library's own count of open connections), or where there
        is no ``/proc``. Each item names one resource (``socket:[1234]``, a file path) for the failure message.
        """
        return open_descriptors()

    def subprocess_env(self) -> dict[str, str]:
        """Environment variables a worker subprocess needs to reach the same storage (``cross_process``)."""
        return {}


OPTIONAL_PROBES: frozenset[str] = frozenset(
    {
        "dead_letters",
        "queue_depth",
        "push_delayed",
        "push_with_priority",
        "push_raw",
        "restart_storage",
        "storage_identity",
        "configured_module",
        "live_settings",
    }
)
"""The :class:`DriverHarness` methods whose default raises ``NotImplementedError`` (the optional probes and hooks)."""


def implemented_probes(harness: DriverHarness) -> frozenset[str]:
    """The optional probes ``harness`` implements: those its class overrides from :class:`DriverHarness`."""
    cls = type(harness)
    return frozenset(name for name in OPTIONAL_PROBES if getattr(cls, name, None) is not getattr(DriverHarness, name))


def open_descriptors() -> dict[str, list[str]]:
    """The open file descriptors of this process by kind, from ``/proc/self/fd`` (Linux).

    Raises ``NotImplementedError`` ("open_resources probe") where there is no ``/proc``, so LIF-009 is skipped there
    unless the harness overrides :meth:`DriverHarness.open_resources`.
    """
    base = "/proc/self/fd"
    try:
        names = os.listdir(base)
    except OSError:
        raise NotImplementedError("open_resources probe (no /proc/self/fd here)") from None
    found: dict[str, list[str]] = {}
    for name in names:
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue  # closed meanwhile (the descriptor listdir itself used, say)
        if target.startswith(("socket:", "pipe:")):
            kind = target.split(":", 1)[0]
        elif target.startswith("anon_inode:"):
            kind = "anon_inode"
        elif target.startswith("/"):
            kind = "file"
        else:
            kind = "other"
        found.setdefault(kind, []).append(f"fd {name} -> {target}")
    return found
