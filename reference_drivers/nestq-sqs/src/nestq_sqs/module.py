"""The driver's two modules: the producer side (``SqsQueueModule.for_root(...)``) and the worker side.

    @module(imports=[SqsQueueModule.for_root(), SqsQueueWorkerModule, MailModule])
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

from .config import SqsConfig, load_config
from .connection import SqsConnection
from .worker import SqsWorker

__all__ = [
    "SqsQueueModule",
    "SqsQueueSetup",
    "SqsQueueWorkerModule",
]


_SETUP = "SqsQueueModule.for_root(...)"


class SqsQueueSetup(DynamicModule):
    """What ``for_root(config)`` returns: loads the settings at boot, provides the config and the connection."""

    def __init__(self, pinned: SqsConfig | Mapping[str, object] | None = None) -> None:
        self.pinned = pinned if pinned is None or isinstance(pinned, SqsConfig) else dict(pinned)

    def __repr__(self) -> str:
        return f"SqsQueueModule.for_root({redact(self.pinned)})"

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        """Provide the config, the connection (closed at app shutdown) and ``JobProducer`` bound to it."""
        config = load_config(self.pinned)
        builder.provide(SqsConfig, config)
        builder.provide(SqsConnection, factory=lambda _: SqsConnection(config))
        return builder.bind(JobProducer, SqsConnection)


class SqsQueueModule:
    """The producer side of the driver (``JobProducer``)."""

    @staticmethod
    def for_root(
        config: SqsConfig | Mapping[str, object] | None = None,
    ) -> SqsQueueSetup:
        """Configure the driver: a whole config, a mapping of some settings, or None (env, then defaults)."""
        return SqsQueueSetup(config)


def _build_worker(container: Container) -> SqsWorker:
    if not container.provides(SqsConnection):
        raise BootError(f"SqsQueueWorkerModule needs {_SETUP} in the same app")
    connection = container.get(SqsConnection)
    return SqsWorker(connection, container.get(SqsConfig))


class SqsQueueWorkerModule(Module):
    """The worker side: contributes the transport (its settings come with ``for_root``)."""

    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        """Contribute the transport."""
        return builder.provide_meta(TransportContribution("SqsWorker", _build_worker))
