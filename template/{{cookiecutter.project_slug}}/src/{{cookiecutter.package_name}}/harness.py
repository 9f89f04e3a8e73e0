{%- set P = cookiecutter.__class_prefix -%}
{%- set D = cookiecutter.__driver_name -%}
{%- set STYLE = cookiecutter.connection_style -%}
"""The conformance harness, entry point ``{{ D }}`` in ``nestq.drivers``.

``pytest`` in this project, or ``nestq check {{ D }}``, runs the conformance suite against it.
The suite holds the driver to exactly the capabilities declared below; declare more only once the driver does
them (and say so in the README's Semantics). ``expected_failures`` lists rules you knowingly fail, with a reason.
{%- if STYLE == "path" %}
The suite runs on a fresh file in a temporary folder, or on ``NESTQ_{{ cookiecutter.__namespace|upper }}__PATH`` when set.
{%- else %}
The suite runs on the storage the settings name, and refuses one that is not on this machine unless
``NESTQ_SUITE_ALLOW_REMOTE=1``: a shell variable left pointing at production must not receive test jobs.
{%- endif %}
"""

from __future__ import annotations

{% if STYLE == "path" %}import os
import shutil
import tempfile
{%- else %}import ipaddress
import os
{%- endif %}
from collections.abc import Mapping
{%- if STYLE == "url" %}
from urllib.parse import urlsplit
{%- endif %}

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DriverHarness, SuiteSettings
from nestq_spec import Container, ModuleLike, env_var{% if STYLE != "path" %}, redact{% endif %}

from .config import {{ P }}Config{% if STYLE != "path" %}, load_config{% endif %}
from .connection import {{ P }}Connection
from .module import {{ P }}QueueModule, {{ P }}QueueWorkerModule

__all__ = ["{{ P }}Harness", "harness"]

_MARK = "src/{{ cookiecutter.package_name }}/harness.py marker"
{%- set ADDRESS = {"url": "url", "path": "path", "host": "host"}[STYLE] %}


class {{ P }}Harness(DriverHarness):
    """Runs the conformance suite against the driver."""

    name = "{{ D }}"
    settings_class = {{ P }}Config
    capabilities = Capabilities(durability="ephemeral", delivery="at-most-once", ordering="none")
    expected_failures: Mapping[str, str] = {}

    def __init__(self) -> None:
        self._address: str | None = None
        self._origin = ""
{%- if STYLE == "path" %}
        self._folder: str | None = None
{%- endif %}

    @property
    def address(self) -> str:
        """The storage the suite uses, chosen once; see :meth:`describe` for where it came from."""
        if self._address is None:
            variable = env_var({{ P }}Config, "{{ ADDRESS }}")
{%- if STYLE == "path" %}
            if os.environ.get(variable):
                self._address, self._origin = os.environ[variable], f"from {variable}"
            else:
                self._folder = tempfile.mkdtemp(prefix="nestq-{{ D }}-suite-")
                self._address, self._origin = os.path.join(self._folder, "suite.db"), f"a fresh file ({variable} unset)"
{%- else %}
            self._address = str(load_config().{{ ADDRESS }})
            self._origin = f"from {variable}" if os.environ.get(variable) else "the default"
            host = {% if STYLE == "url" %}urlsplit(self._address).hostname or "localhost"{% else %}self._address{% endif %}
            if not _is_local(host) and os.environ.get("NESTQ_SUITE_ALLOW_REMOTE") != "1":
                raise RuntimeError(
                    f"the suite would write test jobs to {host!r} ({self._origin}), not on this machine; set "
                    "NESTQ_SUITE_ALLOW_REMOTE=1 if that storage is meant for tests"
                )
{%- endif %}
        return self._address

    def describe(self) -> str:
        """The report header's line: the storage the suite runs on, and where that choice came from."""
        return f"{{ D }}: {% raw %}{{% endraw %}{% if STYLE == "path" %}self.address{% else %}redact(self.address){% endif %}{% raw %}}{% endraw %} ({self._origin})"

{%- if STYLE == "path" %}

    def session_end(self) -> None:
        """Delete the suite's temporary file (never a path given in the environment)."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
{%- endif %}

    def _pinned(self, settings: SuiteSettings) -> dict[str, object]:
        return {
            "{{ ADDRESS }}": self.address,
            "concurrency": settings.concurrency,
            "max_attempts": settings.max_attempts,
            "backoff_base": settings.backoff,
            "backoff_cap": max(settings.backoff_cap, settings.backoff),
            "shutdown_grace": settings.shutdown_grace,
{%- if cookiecutter.storage_model == "leases" %}
            "visibility_timeout": settings.visibility_timeout,
            "heartbeat_interval": settings.heartbeat_interval,
{%- endif %}
{%- if cookiecutter.wakeups != "blocking" %}
            "poll_interval": settings.poll_interval,
{%- endif %}
        }

    def producer_module(self, settings: SuiteSettings) -> ModuleLike:
        """``{{ P }}QueueModule.for_root`` with the suite's settings."""
        return {{ P }}QueueModule.for_root(self._pinned(settings))

    def worker_module(self, settings: SuiteSettings) -> ModuleLike:
        """``{{ P }}QueueWorkerModule`` (its settings come with the producer module)."""
        return {{ P }}QueueWorkerModule

    async def queue_depth(self, container: Container, queue: str) -> int:
        """Jobs of ``queue`` accepted and not yet finished: ready, delayed or running (DLV-009, DLV-010)."""
        raise NotImplementedError(
            f"{_MARK} (9): count the jobs of `queue` your storage holds that are not finished (ready, delayed or "
            "running; dead letters excluded)"
        )

    def configured_module(self, pinned: Mapping[str, object]) -> ModuleLike:
        """The producer module with only ``pinned`` pinned; the rest from the environment and defaults (CFG-007)."""
        return {{ P }}QueueModule.for_root(dict(pinned))

    def live_settings(self, container: Container) -> object:
        """The settings object the booted driver uses (CFG-007)."""
        return container.get({{ P }}Config)

    def subprocess_env(self) -> dict[str, str]:
        """What a worker in another process needs to reach the same storage (``cross_process``)."""
        return {env_var({{ P }}Config, "{{ ADDRESS }}"): self.address}

    async def push_raw(self, container: Container, queue: str, data: bytes) -> None:
        """Store ``data`` as it is, bypassing the envelope: how the suite plants malformed envelopes."""
        await container.get({{ P }}Connection).push_raw(queue, data)
{%- if STYLE != "path" %}


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
{%- endif %}


harness = {{ P }}Harness()
"""The instance the ``{{ D }}`` entry point names."""
