"""The conformance harness, entry point ``sqs`` in ``nestq.drivers``.

``pytest`` in this project, or ``nestq check sqs``, runs the conformance suite against it.
The suite holds the driver to exactly the capabilities declared below; declare more only once the driver does
them (and say so in the README's Semantics). ``expected_failures`` lists rules you knowingly fail, with a reason.
The suite runs on the storage the settings name, and refuses one that is not on this machine unless
``NESTQ_SUITE_ALLOW_REMOTE=1``: a shell variable left pointing at production must not receive test jobs.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DriverHarness, SuiteSettings
from nestq_spec import Container, ModuleLike, env_var, redact

from .config import SqsConfig, load_config
from .connection import SqsConnection
from .module import SqsQueueModule, SqsQueueWorkerModule

__all__ = ["SqsHarness", "harness"]


class SqsHarness(DriverHarness):
    """Runs the conformance suite against the driver."""

    name = "sqs"
    settings_class = SqsConfig
    capabilities = Capabilities(durability="ephemeral", delivery="at-most-once", ordering="none")
    expected_failures: Mapping[str, str] = {}

    def __init__(self) -> None:
        self._address: str | None = None
        self._origin = ""

    @property
    def address(self) -> str:
        """The storage the suite uses, chosen once; see :meth:`describe` for where it came from."""
        if self._address is None:
            variable = env_var(SqsConfig, "url")
            self._address = str(load_config().url)
            self._origin = f"from {variable}" if os.environ.get(variable) else "the default"
            host = urlsplit(self._address).hostname or "localhost"
            if not _is_local(host) and os.environ.get("NESTQ_SUITE_ALLOW_REMOTE") != "1":
                raise RuntimeError(
                    f"the suite would write test jobs to {host!r} ({self._origin}), not on this machine; set "
                    "NESTQ_SUITE_ALLOW_REMOTE=1 if that storage is meant for tests"
                )
        return self._address

    def describe(self) -> str:
        """The report header's line: the storage the suite runs on, and where that choice came from."""
        return f"sqs: {redact(self.address)} ({self._origin})"

    def _pinned(self, settings: SuiteSettings) -> dict[str, object]:
        return {
            "url": self.address,
            "concurrency": settings.concurrency,
            "max_attempts": settings.max_attempts,
            "backoff_base": settings.backoff,
            "backoff_cap": max(settings.backoff_cap, settings.backoff),
            "shutdown_grace": settings.shutdown_grace,
            "visibility_timeout": settings.visibility_timeout,
            "heartbeat_interval": settings.heartbeat_interval,
        }

    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        """``SqsQueueModule.for_root`` with the suite's settings."""
        return SqsQueueModule.for_root(self._pinned(settings))

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        """``SqsQueueWorkerModule`` (its settings come with the producer module)."""
        return SqsQueueWorkerModule

    def live_settings(self, container: Container) -> object:
        """The settings object the booted driver uses."""
        return container.get(SqsConfig)

    def subprocess_env(self) -> dict[str, str]:
        """What a worker in another process needs to reach the same storage (``cross_process``)."""
        return {env_var(SqsConfig, "url"): self.address}

    async def push_raw(self, container: Container, queue: str, data: bytes) -> None:
        """Store ``data`` as it is, bypassing the envelope: how the suite plants malformed envelopes."""
        await container.get(SqsConnection).push_raw(queue, data)


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


harness = SqsHarness()
"""The instance the ``sqs`` entry point names."""
