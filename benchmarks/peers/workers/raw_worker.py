"""Raw redis-py baseline consumer: 10 asyncio tasks, each BRPOP then INCR.

`python raw_worker.py QUEUE_KEY [CONCURRENCY]`. No library, no envelope, no ack:
the floor any Python Redis queue pays per job.
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio
from common import COUNTER_KEY, REDIS_URL


async def main(queue_key: str, concurrency: int) -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL, max_connections=concurrency + 1)

    async def consume() -> None:
        while True:
            item = await client.brpop([queue_key], timeout=1)
            if item is None:
                continue
            await client.incr(COUNTER_KEY)

    await asyncio.gather(*(consume() for _ in range(concurrency)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10))
