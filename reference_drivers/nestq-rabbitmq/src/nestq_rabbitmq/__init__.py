"""nestq-rabbitmq: a nestq queue driver for RabbitMQ (aio-pika).

A producer-only app imports ``RabbitmqQueueModule.for_root()``; a worker app imports it and
``RabbitmqQueueWorkerModule``. Settings come from ``NESTQ_RABBITMQ__<KEY>`` or are
pinned in ``for_root(...)``.
"""

from .admin import DeadLetter, QueueDepth, RabbitmqAdmin
from .config import RabbitmqConfig, load_config
from .connection import RabbitmqConnection, RabbitmqUnavailableError, TopologyError
from .module import (
    RabbitmqQueueModule,
    RabbitmqQueueSetup,
    RabbitmqQueueWorkerModule,
)
from .worker import RabbitmqWorker

__version__ = "0.1.0"

__all__ = [
    "DeadLetter",
    "QueueDepth",
    "RabbitmqAdmin",
    "RabbitmqConfig",
    "RabbitmqConnection",
    "RabbitmqQueueModule",
    "RabbitmqQueueSetup",
    "RabbitmqQueueWorkerModule",
    "RabbitmqUnavailableError",
    "RabbitmqWorker",
    "TopologyError",
    "load_config",
]
