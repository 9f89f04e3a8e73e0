"""nestq_redis worker: `python nestq_worker.py` boots a nestq app and serves it until SIGTERM.

One process, the Redis driver's RedisQueueWorkerModule at concurrency 10, every other setting the driver's
default (claim_batch 10, visibility_timeout 30 s, heartbeats, max_attempts 5). The no-op handler counts
itself done with one INCR, like every other peer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from common import REDIS_URL, aincr
from nestq_redis import RedisQueueModule, RedisQueueWorkerModule

from nestq_spec import Application, module, process, processor

QUEUE_NAME = "peers-nestq"
KEY_PREFIX = "peers-nestq"
CONCURRENCY = 10


@processor
class Noop:
    @process(queue=QUEUE_NAME)
    async def handle(self, job: Any) -> None:
        await aincr()


@module(
    imports=[
        RedisQueueModule.for_root({"url": REDIS_URL, "key_prefix": KEY_PREFIX, "concurrency": CONCURRENCY}),
        RedisQueueWorkerModule,
    ],
    providers=[Noop],
)
class PeersWorkerApp:
    pass


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    # Application.run serves until SIGINT/SIGTERM, then shuts down gracefully.
    asyncio.run(Application.create(PeersWorkerApp).run(shutdown_timeout=5.0))
