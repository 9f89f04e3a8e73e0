"""nestq-postgres: a nestq queue driver for postgres.

A producer-only app imports ``PostgresQueueModule.for_root()``; a worker app imports it and
``PostgresQueueWorkerModule``. Settings come from ``NESTQ_POSTGRES__<KEY>`` or are
pinned in ``for_root(...)``.
"""

from .config import PostgresConfig, load_config
from .connection import PostgresConnection
from .module import (
    PostgresQueueModule,
    PostgresQueueSetup,
    PostgresQueueWorkerModule,
)
from .worker import PostgresWorker

__version__ = "0.1.0"

__all__ = [
    "PostgresConfig",
    "PostgresConnection",
    "PostgresQueueModule",
    "PostgresQueueSetup",
    "PostgresQueueWorkerModule",
    "PostgresWorker",
    "load_config",
]
