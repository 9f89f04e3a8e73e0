"""The two modules of the Redis driver, shaped like the seed's: producer side and worker side.

A producer-only app imports ``RedisQueueModule.for_root(...)``; a worker app imports it and
``RedisQueueWorkerModule``::

    @module(imports=[RedisQueueModule.for_root(), RedisQueueWorkerModule, MailModule])
    class WorkerApp: ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

from .config import RedisConfig, load_config
from .connection import RedisConnection
from .worker import RedisWorker

__all__ = ["RedisQueueModule", "RedisQueueSetup", "RedisQueueWorkerModule"]


class RedisQueueSetup(DynamicModule):
    """What ``RedisQueueModule.for_root(config)`` returns: the producer side, carrying its pinned settings.

    At boot it loads the configuration (pinned > ``NESTQ_REDIS__*`` > defaults; a bad value is a
    ``ConfigError`` naming the variable), provides :class:`RedisConfig` and :class:`RedisConnection`, and binds
    ``JobProducer`` to the connection.
    """

    def __init__(self, pinned: RedisConfig | Mapping[str, object] | None = None) -> None:
        self.pinned: RedisConfig | dict[str, object] | None = (
            pinned if pinned is None or isinstance(pinned, RedisConfig) else dict(pinned)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RedisQueueSetup) and self.pinned == other.pinned

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        if isinstance(self.pinned, dict):
            shown = {k: "***" if k == "password" else v for k, v in self.pinned.items()}
            return f"RedisQueueModule.for_root({redact(shown)})"
        return f"RedisQueueModule.for_root({self.pinned!r})"

    def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
        """Load and check the settings, then provide the config, the connection and ``JobProducer``."""
        config = load_config(self.pinned)

        def connect(_: Container) -> RedisConnection:
            # Built on first use, inside the event loop that will use its client.
            return RedisConnection(config)

        builder.provide(RedisConfig, config)
        builder.provide(RedisConnection, factory=connect)
        builder.bind(JobProducer, RedisConnection)
        return builder


class RedisQueueModule:
    """The producer side of the Redis driver (``JobProducer``); see :meth:`for_root`."""

    @staticmethod
    def for_root(config: RedisConfig | Mapping[str, Any] | None = None) -> RedisQueueSetup:
        """Configure the driver: a whole :class:`RedisConfig`, a mapping of some settings, or None (env/defaults)."""
        return RedisQueueSetup(config)


def _build_worker(container: Container) -> RedisWorker:
    if not container.provides(RedisConnection):
        raise BootError(
            "RedisQueueWorkerModule needs RedisQueueModule.for_root(...) in the same app (it carries the settings): "
            "@module(imports=[RedisQueueModule.for_root(), RedisQueueWorkerModule, ...])"
        )
    return RedisWorker(container.get(RedisConnection), container.get(RedisConfig))


class RedisQueueWorkerModule(Module):
    """The worker side: contributes the ``RedisWorker`` transport (needs ``RedisQueueModule.for_root``)."""

    @classmethod
    def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
        """Contribute the transport; its settings come from the producer module's configuration."""
        return builder.provide_meta(TransportContribution("RedisWorker", _build_worker))
