"""The driver's two modules: the producer side (``RabbitmqQueueModule.for_root(...)``) and the worker side.

    @module(imports=[RabbitmqQueueModule.for_root(), RabbitmqQueueWorkerModule, MailModule])
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

from .config import RabbitmqConfig, load_config
from .connection import RabbitmqConnection
from .worker import RabbitmqWorker

__all__ = [
    "RabbitmqQueueModule",
    "RabbitmqQueueSetup",
    "RabbitmqQueueWorkerModule",
]


_SETUP = "RabbitmqQueueModule.for_root(...)"


class RabbitmqQueueSetup(DynamicModule):
    """What ``for_root(config)`` returns: loads the settings at boot, provides the config and the connection."""

    def __init__(self, pinned: RabbitmqConfig | Mapping[str, object] | None = None) -> None:
        self.pinned = pinned if pinned is None or isinstance(pinned, RabbitmqConfig) else dict(pinned)

    def __repr__(self) -> str:
        return f"RabbitmqQueueModule.for_root({redact(self.pinned)})"

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        """Provide the config, the connection (closed at app shutdown) and ``JobProducer`` bound to it."""
        config = load_config(self.pinned)
        builder.provide(RabbitmqConfig, config)
        builder.provide(RabbitmqConnection, factory=lambda _: RabbitmqConnection(config))
        return builder.bind(JobProducer, RabbitmqConnection)


class RabbitmqQueueModule:
    """The producer side of the driver (``JobProducer``)."""

    @staticmethod
    def for_root(
        config: RabbitmqConfig | Mapping[str, object] | None = None,
    ) -> RabbitmqQueueSetup:
        """Configure the driver: a whole config, a mapping of some settings, or None (env, then defaults)."""
        return RabbitmqQueueSetup(config)


def _build_worker(container: Container) -> RabbitmqWorker:
    if not container.provides(RabbitmqConnection):
        raise BootError(f"RabbitmqQueueWorkerModule needs {_SETUP} in the same app")
    connection = container.get(RabbitmqConnection)
    return RabbitmqWorker(connection, container.get(RabbitmqConfig))


class RabbitmqQueueWorkerModule(Module):
    """The worker side: contributes the transport (its settings come with ``for_root``)."""

    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        """Contribute the transport."""
        return builder.provide_meta(TransportContribution("RabbitmqWorker", _build_worker))
