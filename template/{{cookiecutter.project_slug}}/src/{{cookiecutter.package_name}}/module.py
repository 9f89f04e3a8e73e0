{%- set P = cookiecutter.__class_prefix -%}
"""The driver's two modules, shaped like the seed's: the producer side and the worker side.

A producer-only app (an API that enqueues) imports ``{{ P }}QueueModule.for_root(...)``;
a worker app imports it and ``{{ P }}QueueWorkerModule``::

    @module(imports=[
        {{ P }}QueueModule.for_root(),
        {{ P }}QueueWorkerModule,
        MailModule,
    ])
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


class {{ P }}QueueSetup(DynamicModule):
    """What ``{{ P }}QueueModule.for_root(config)`` returns: the producer side, with its settings.

    At boot it loads the configuration (pinned > environment > defaults; a bad value is a ``ConfigError``
    naming the variable), provides :class:`{{ P }}Config` and
    :class:`{{ P }}Connection`, and binds ``JobProducer`` to the connection.
    """

    def __init__(self, pinned: {{ P }}Config | Mapping[str, object] | None = None) -> None:
        self.pinned: {{ P }}Config | dict[str, object] | None = (
            pinned if pinned is None or isinstance(pinned, {{ P }}Config) else dict(pinned)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, {{ P }}QueueSetup) and self.pinned == other.pinned

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{{ P }}QueueModule.for_root({redact(self.pinned)})"

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        """Load and check the settings, then provide the config, the connection and ``JobProducer``."""
        config = load_config(self.pinned)

        def connect(_: Container) -> {{ P }}Connection:
            # Built on first use, inside the event loop that will use its storage handle.
            return {{ P }}Connection(config)

        builder.provide({{ P }}Config, config)
        builder.provide({{ P }}Connection, factory=connect)
        builder.bind(JobProducer, {{ P }}Connection)
        return builder


class {{ P }}QueueModule:
    """The producer side of the driver (``JobProducer``); see :meth:`for_root`."""

    @staticmethod
    def for_root(
        config: {{ P }}Config | Mapping[str, object] | None = None,
    ) -> {{ P }}QueueSetup:
        """Configure the driver: a whole config, a mapping of some settings, or None (env, then defaults)."""
        return {{ P }}QueueSetup(config)


def _build_worker(container: Container) -> {{ P }}Worker:
    if not container.provides({{ P }}Connection):
        raise BootError(
            "{{ P }}QueueWorkerModule needs {{ P }}QueueModule.for_root(...) "
            "in the same app (it carries the settings): @module(imports=["
            "{{ P }}QueueModule.for_root(), {{ P }}QueueWorkerModule, ...])"
        )
    connection = container.get({{ P }}Connection)
    return {{ P }}Worker(connection, container.get({{ P }}Config))


class {{ P }}QueueWorkerModule(Module):
    """The worker side: contributes the ``{{ P }}Worker`` transport.

    It needs ``{{ P }}QueueModule.for_root(...)`` in the same app, which carries the settings.
    """

    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        """Contribute the transport; its settings come with the producer module's configuration."""
        return builder.provide_meta(TransportContribution("{{ P }}Worker", _build_worker))
