"""nestq_memory: the in-process reference driver of nestq (ephemeral: jobs live as long as the process).

Producer-only app::

    @module(imports=[MemoryQueueModule.for_root(), ApiModule])
    class Api: ...

Worker app (consumes too)::

    @module(imports=[MemoryQueueModule.for_root({"concurrency": 4}), MemoryQueueWorkerModule, MailModule])
    class Worker: ...

Every app of one process shares the queues of :func:`shared_broker`. Read ``docs/drivers/memory.md`` for what
the driver guarantees and what it does not. The conformance harness is ``nestq_memory.harness:harness``.
"""

from nestq_memory.broker import DeadLetter, MemoryBroker, QueueStats, StoredJob, shared_broker
from nestq_memory.config import MemoryConfig, load_config
from nestq_memory.connection import MemoryConnection
from nestq_memory.module import MemoryQueueModule, MemoryQueueSetup, MemoryQueueWorkerModule
from nestq_memory.worker import MemoryWorker, describe_error

__all__ = [
    "DeadLetter",
    "MemoryBroker",
    "MemoryConfig",
    "MemoryConnection",
    "MemoryQueueModule",
    "MemoryQueueSetup",
    "MemoryQueueWorkerModule",
    "MemoryWorker",
    "QueueStats",
    "StoredJob",
    "describe_error",
    "load_config",
    "shared_broker",
]
