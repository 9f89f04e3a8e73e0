{%- set P = cookiecutter.__class_prefix -%}
"""The driver's two modules: the producer side (``{{ P }}QueueModule.for_root(...)``) and the worker side.

    @module(imports=[{{ P }}QueueModule.for_root(), {{ P }}QueueWorkerModule, MailModule])
    class WorkerApp: ...

App code asks the container for ``JobProducer`` and never names the driver: swapping drivers is one line.
"""

from __future__ import annotations

from collections.abc import Mapping

from nestq_spec import (
    BootError,
    Container,
    ContainerBuilder,
    DynamicModule,
    JobProducer,
    Module,
    TransportContribution,
    redact,
)

from .config import {{ P }}Config, load_config
from .connection import {{ P }}Connection
from .worker import {{ P }}Worker

__all__ = [
    "{{ P }}QueueModule",
    "{{ P }}QueueSetup",
    "{{ P }}QueueWorkerModule",
]


_SETUP = "{{ P }}QueueModule.for_root(...)"


class {{ P }}QueueSetup(DynamicModule):
    """What ``for_root(config)`` returns: loads the settings at boot, provides the config and the connection."""

    def __init__(self, pinned: {{ P }}Config | Mapping[str, object] | None = None) -> None:
        self.pinned = pinned if pinned is None or isinstance(pinned, {{ P }}Config) else dict(pinned)

    def __repr__(self) -> str:
        return f"{{ P }}QueueModule.for_root({redact(self.pinned)})"

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        """Provide the config, the connection (closed at app shutdown) and ``JobProducer`` bound to it."""
        config = load_config(self.pinned)
        builder.provide({{ P }}Config, config)
        builder.provide({{ P }}Connection, factory=lambda _: {{ P }}Connection(config))
        return builder.bind(JobProducer, {{ P }}Connection)


class {{ P }}QueueModule:
    """The producer side of the driver (``JobProducer``)."""

    @staticmethod
    def for_root(
        config: {{ P }}Config | Mapping[str, object] | None = None,
    ) -> {{ P }}QueueSetup:
        """Configure the driver: a whole config, a mapping of some settings, or None (env, then defaults)."""
        return {{ P }}QueueSetup(config)


def _build_worker(container: Container) -> {{ P }}Worker:
    if not container.provides({{ P }}Connection):
        raise BootError(f"{{ P }}QueueWorkerModule needs {_SETUP} in the same app")
    connection = container.get({{ P }}Connection)
    return {{ P }}Worker(connection, container.get({{ P }}Config))


class {{ P }}QueueWorkerModule(Module):
    """The worker side: contributes the transport (its settings come with ``for_root``)."""

    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        """Contribute the transport."""
        return builder.provide_meta(TransportContribution("{{ P }}Worker", _build_worker))
