"""The two modules of the memory driver, shaped like the seed's: the producer side and the worker side.

A producer-only app imports ``MemoryQueueModule.for_root()``; a worker app imports it and
``MemoryQueueWorkerModule``::

    @module(imports=[MemoryQueueModule.for_root(), MemoryQueueWorkerModule, MailModule])
    class WorkerApp: ...
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
)

from .broker import MemoryBroker, shared_broker
from .config import MemoryConfig, load_config
from .connection import MemoryConnection
from .worker import MemoryWorker

__all__ = ["MemoryQueueModule", "MemoryQueueSetup", "MemoryQueueWorkerModule"]


class MemoryQueueSetup(DynamicModule):
    """What ``MemoryQueueModule.for_root(...)`` returns: the producer side, carrying its pinned settings.

    At boot it loads the settings (pinned > ``NESTQ_MEMORY__*`` > defaults; a bad value is a ``ConfigError``
    naming the variable), provides :class:`MemoryConfig` and :class:`MemoryConnection`, and binds ``JobProducer``
    to the connection.
    """

    def __init__(self, pinned: MemoryConfig | Mapping[str, object] | None, broker: MemoryBroker | None) -> None:
        self.pinned: MemoryConfig | dict[str, object] | None = (
            pinned if pinned is None or isinstance(pinned, MemoryConfig) else dict(pinned)
        )
        self.broker = broker

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemoryQueueSetup) and (self.pinned, self.broker) == (other.pinned, other.broker)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        extra = "" if self.broker is None else f", broker={self.broker!r}"
        return f"MemoryQueueModule.for_root({self.pinned!r}{extra})"

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        """Load the settings, then provide the config, the connection, and ``JobProducer`` bound to it."""
        config = load_config(self.pinned)
        connection = MemoryConnection(self.broker or shared_broker(), config)
        builder.provide(MemoryConfig, config)
        builder.provide(MemoryConnection, connection)
        builder.bind(JobProducer, MemoryConnection)
        return builder


class MemoryQueueModule:
    """The producer side of the memory driver (``JobProducer``); see :meth:`for_root`."""

    @staticmethod
    def for_root(
        config: MemoryConfig | Mapping[str, object] | None = None, *, broker: MemoryBroker | None = None
    ) -> MemoryQueueSetup:
        """Configure the driver: a whole :class:`MemoryConfig`, a mapping of some settings, or None (env/defaults).

        ``broker``: the storage to use; by default the process-wide :func:`shared_broker`, so that every app of
        the process (a producer-only one and a worker booted separately) sees the same queues.
        """
        return MemoryQueueSetup(config, broker)


def _build_worker(container: Container) -> MemoryWorker:
    if not container.provides(MemoryConnection):
        raise BootError(
            "MemoryQueueWorkerModule needs MemoryQueueModule.for_root(...) in the same app (it carries the settings "
            "and the broker): @module(imports=[MemoryQueueModule.for_root(), MemoryQueueWorkerModule, ...])"
        )
    return MemoryWorker(container.get(MemoryConnection).broker, container.get(MemoryConfig))


class MemoryQueueWorkerModule(Module):
    """The worker side: contributes the ``MemoryWorker`` transport (needs ``MemoryQueueModule.for_root``)."""

    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        """Contribute the transport; its settings and broker come from the producer module."""
        return builder.provide_meta(TransportContribution("MemoryWorker", _build_worker))
