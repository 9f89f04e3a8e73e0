"""nestq-sqs: a nestq queue driver for sqs.

A producer-only app imports ``SqsQueueModule.for_root()``; a worker app imports it and
``SqsQueueWorkerModule``. Settings come from ``NESTQ_SQS__<KEY>`` or are
pinned in ``for_root(...)``.
"""

from .config import SqsConfig, load_config
from .connection import SqsConnection
from .module import (
    SqsQueueModule,
    SqsQueueSetup,
    SqsQueueWorkerModule,
)
from .worker import SqsWorker

__version__ = "0.1.0"

__all__ = [
    "SqsConfig",
    "SqsConnection",
    "SqsQueueModule",
    "SqsQueueSetup",
    "SqsQueueWorkerModule",
    "SqsWorker",
    "load_config",
]
