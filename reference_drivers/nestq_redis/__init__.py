"""nestq_redis: the durable, at-least-once Redis driver for nestq (on ``redis.asyncio``).

Import :class:`RedisQueueModule` (producer side) and :class:`RedisQueueWorkerModule` (worker side) into an app;
settings read ``NESTQ_REDIS__*`` or are pinned in ``RedisQueueModule.for_root(...)``. See ``docs/drivers/redis.md``.
"""

from .admin import QueueInfo, RedisQueueAdmin
from .config import RedisConfig, display_url, load_config
from .connection import MAX_PRIORITY, RedisConnection, make_client
from .module import RedisQueueModule, RedisQueueSetup, RedisQueueWorkerModule
from .store import ClaimedJob, DeadLetter, QueueDepth, RedisQueueStore
from .worker import RedisWorker

__all__ = [
    "MAX_PRIORITY",
    "ClaimedJob",
    "DeadLetter",
    "QueueDepth",
    "QueueInfo",
    "RedisConfig",
    "RedisConnection",
    "RedisQueueAdmin",
    "RedisQueueModule",
    "RedisQueueSetup",
    "RedisQueueStore",
    "RedisQueueWorkerModule",
    "RedisWorker",
    "display_url",
    "load_config",
    "make_client",
]
