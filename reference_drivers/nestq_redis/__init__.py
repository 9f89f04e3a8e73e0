"""nestq_redis: the durable, at-least-once Redis driver for nestq (on ``redis.asyncio``).

Import :class:`RedisQueueModule` (producer side) and :class:`RedisQueueWorkerModule` (worker side) into an app;
settings read ``NESTQ_REDIS__*`` or are pinned in ``RedisQueueModule.for_root(...)``. A ``redis+cluster://`` URL runs
it on a Redis Cluster (:class:`NestqRedisCluster`). See ``docs/drivers/redis.md``.
"""

from .admin import QueueInfo, RedisQueueAdmin
from .cluster import ClusterUnavailableError, NestqRedisCluster, NotAClusterError
from .config import RedisConfig, display_url, load_config
from .connection import MAX_PRIORITY, RedisConnection, make_client
from .module import RedisQueueModule, RedisQueueSetup, RedisQueueWorkerModule
from .store import ClaimedJob, DeadLetter, QueueDepth, RedisQueueStore
from .worker import RedisWorker

__all__ = [
    "MAX_PRIORITY",
    "ClaimedJob",
    "ClusterUnavailableError",
    "DeadLetter",
    "NestqRedisCluster",
    "NotAClusterError",
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
