"""The driver's two modules: the producer side (``PostgresQueueModule.for_root(...)``) and the worker side.

    @module(imports=[PostgresQueueModule.for_root(), PostgresQueueWorkerModule, MailModule])
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

from .config import PostgresConfig, load_config
from .connection import PostgresConnection
from .worker import PostgresWorker

__all__ = [
    "PostgresQueueModule",
    "PostgresQueueSetup",
    "PostgresQueueWorkerModule",
]


_SETUP = "PostgresQueueModule.for_root(...)"


class PostgresQueueSetup(DynamicModule):
    """What ``for_root(config)`` returns: loads the settings at boot, provides the config and the connection."""

    def __init__(self, pinned: PostgresConfig | Mapping[str, object] | None = None) -> None:
        self.pinned = pinned if pinned is None or isinstance(pinned, PostgresConfig) else dict(pinned)

    def __repr__(self) -> str:
        return f"PostgresQueueModule.for_root({redact(self.pinned)})"

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        """Provide the config, the connection (closed at app shutdown) and ``JobProducer`` bound to it."""
        config = load_config(self.pinned)
        builder.provide(PostgresConfig, config)
        builder.provide(PostgresConnection, factory=lambda _: PostgresConnection(config))
        return builder.bind(JobProducer, PostgresConnection)


class PostgresQueueModule:
    """The producer side of the driver (``JobProducer``)."""

    @staticmethod
    def for_root(
        config: PostgresConfig | Mapping[str, object] | None = None,
    ) -> PostgresQueueSetup:
        """Configure the driver: a whole config, a mapping of some settings, or None (env, then defaults)."""
        return PostgresQueueSetup(config)


def _build_worker(container: Container) -> PostgresWorker:
    if not container.provides(PostgresConnection):
        raise BootError(f"PostgresQueueWorkerModule needs {_SETUP} in the same app")
    connection = container.get(PostgresConnection)
    return PostgresWorker(connection, container.get(PostgresConfig))


class PostgresQueueWorkerModule(Module):
    """The worker side: contributes the transport (its settings come with ``for_root``)."""

    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        """Contribute the transport."""
        return builder.provide_meta(TransportContribution("PostgresWorker", _build_worker))
