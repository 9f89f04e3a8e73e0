"""nestq-nats: a nestq queue driver for nats.

A producer-only app imports ``NatsQueueModule.for_root()``; a worker app imports it and
``NatsQueueWorkerModule``. Settings come from ``NESTQ_NATS__<KEY>`` or are
pinned in ``for_root(...)``.
"""

from .config import NatsConfig, load_config
from .connection import NatsConnection
from .module import (
    NatsQueueModule,
    NatsQueueSetup,
    NatsQueueWorkerModule,
)
from .worker import NatsWorker

__version__ = "0.1.0"

__all__ = [
    "NatsConfig",
    "NatsConnection",
    "NatsQueueModule",
    "NatsQueueSetup",
    "NatsQueueWorkerModule",
    "NatsWorker",
    "load_config",
]
