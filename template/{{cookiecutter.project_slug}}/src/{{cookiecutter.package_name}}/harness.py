{%- set P = cookiecutter.__class_prefix -%}
"""The conformance harness of the driver (entry point ``{{ cookiecutter.__driver_name }}`` in ``nestq.drivers``).

``pytest`` in this project (or ``nestq check {{ cookiecutter.__driver_name }}``) runs the nestq conformance suite
against the modules this harness builds, holding the driver to exactly the capabilities declared below.

The declaration starts conservative: ephemeral, at-most-once, no ordering, nothing else. Declare more only once
the driver does it (and say so in the README's "Semantics" section): each capability switches on the rules that
check it, and a rule the driver then fails is a failed run. A rule you knowingly fail can be listed, with the
reason, in ``expected_failures`` (strict: it fails the run once it passes, so the list cannot go stale).
"""

from __future__ import annotations

from collections.abc import Mapping

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DriverHarness, SuiteSettings
from nestq_spec import Container, ModuleLike, env_var

from .config import {{ P }}Config, load_config
from .connection import {{ P }}Connection
from .module import {{ P }}QueueModule, {{ P }}QueueWorkerModule

__all__ = ["{{ P }}Harness", "harness"]


class {{ P }}Harness(DriverHarness):
    """Runs the conformance suite against the driver, on the storage its URL setting names."""

    name = "{{ cookiecutter.__driver_name }}"
    settings_class = {{ P }}Config
    capabilities = Capabilities(
        durability="ephemeral",  # "durable": accepted jobs survive the worker process (needs cross_process)
        delivery="at-most-once",  # "at-least-once": an accepted job is never lost; duplicates are allowed
        ordering="none",  # "fifo": one worker at concurrency 1 gets a queue's jobs in push order
        # Also: retries + max_attempts, backoff, dead_letters (with a dead_letters probe, see the end of the class),
        # visibility_timeout, delayed_jobs, priority, cross_process, max_concurrency, storage_restart,
        # max_payload_bytes. See nestq_conformance.capabilities.Capabilities for what each one promises.
    )
    expected_failures: Mapping[str, str] = {}

    def __init__(self) -> None:
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The storage the suite runs on: ``NESTQ_{{ cookiecutter.__namespace|upper }}__URL``, else the default."""
        if self._url is None:
            self._url = load_config().url
        return self._url

    def describe(self) -> str:
        """One line for the report header: where the storage is."""
        return f"{{ cookiecutter.__driver_name }}: {self.url}"

    def session_start(self) -> None:
        """Before the suite: start or clean a private storage for it here if yours needs one."""

    def session_end(self) -> None:
        """After the suite: stop what session_start started, delete what the suite left behind."""

    def _pinned(self, settings: SuiteSettings) -> dict[str, object]:
        """The suite's timings and limits, as this driver's settings."""
        return {
            "url": self.url,
            "concurrency": settings.concurrency,
            "max_attempts": settings.max_attempts,
            "backoff_base": settings.backoff,
            "backoff_cap": max(settings.backoff_cap, settings.backoff),
            "visibility_timeout": settings.visibility_timeout,
            "poll_interval": settings.poll_interval,
            "shutdown_grace": settings.shutdown_grace,
        }

    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        """``{{ P }}QueueModule.for_root`` with the suite's settings."""
        return {{ P }}QueueModule.for_root(self._pinned(settings))

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        """``{{ P }}QueueWorkerModule`` (its settings come with the producer module)."""
        return {{ P }}QueueWorkerModule

    def subprocess_env(self) -> dict[str, str]:
        """What a worker in another process needs to reach the same storage (for ``cross_process``)."""
        return {env_var({{ P }}Config, "url"): self.url}

    async def push_raw(self, container: Container, queue: str, data: bytes) -> None:
        """Store ``data`` as it is, bypassing the envelope: how the suite plants malformed envelopes."""
        await container.get({{ P }}Connection).push_raw(queue, data)

    # More probes unlock more rules once the driver supports them (see nestq_conformance.harness.DriverHarness):
    # dead_letters(container, queue), queue_depth(container, queue), push_delayed(...), push_with_priority(...),
    # restart_storage().


harness = {{ P }}Harness()
"""The instance the ``{{ cookiecutter.__driver_name }}`` entry point names."""
