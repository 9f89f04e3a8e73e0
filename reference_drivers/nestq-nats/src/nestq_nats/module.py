"""The driver's two modules: the producer side (``NatsQueueModule.for_root(...)``) and the worker side.

    @module(imports=[NatsQueueModule.for_root(), NatsQueueWorkerModule, MailModule])
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

from .config import NatsConfig, load_config
from .connection import NatsConnection
from .worker import NatsWorker

__all__ = [
    "NatsQueueModule",
    "NatsQueueSetup",
    "NatsQueueWorkerModule",
]


_SETUP = "NatsQueueModule.for_root(...)"


class NatsQueueSetup(DynamicModule):
    """What ``for_root(config)`` returns: loads the settings at boot, provides the config and the connection."""

    def __init__(self, pinned: NatsConfig | Mapping[str, object] | None = None) -> None:
        self.pinned = pinned if pinned is None or isinstance(pinned, NatsConfig) else dict(pinned)

    def __repr__(self) -> str:
        return f"NatsQueueModule.for_root({redact(self.pinned)})"

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        """Provide the config, the connection (closed at app shutdown) and ``JobProducer`` bound to it."""
        config = load_config(self.pinned)
        builder.provide(NatsConfig, config)
        builder.provide(NatsConnection, factory=lambda _: NatsConnection(config))
        return builder.bind(JobProducer, NatsConnection)


class NatsQueueModule:
    """The producer side of the driver (``JobProducer``)."""

    @staticmethod
    def for_root(
        config: NatsConfig | Mapping[str, object] | None = None,
    ) -> NatsQueueSetup:
        """Configure the driver: a whole config, a mapping of some settings, or None (env, then defaults)."""
        return NatsQueueSetup(config)


def _build_worker(container: Container) -> NatsWorker:
    if not container.provides(NatsConnection):
        raise BootError(f"NatsQueueWorkerModule needs {_SETUP} in the same app")
    connection = container.get(NatsConnection)
    return NatsWorker(connection, container.get(NatsConfig))


class NatsQueueWorkerModule(Module):
    """The worker side: contributes the transport (its settings come with ``for_root``)."""

    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        """Contribute the transport."""
        return builder.provide_meta(TransportContribution("NatsWorker", _build_worker))
