"""taskiq worker: `taskiq worker taskiq_app:broker --workers 1 --max-async-tasks 10`."""

from __future__ import annotations

from common import REDIS_URL, aincr
from taskiq_redis import RedisStreamBroker

# Redis Streams + consumer group; acks after the task (taskiq's default ack type, when_saved).
broker = RedisStreamBroker(url=REDIS_URL, queue_name="peers:taskiq")


@broker.task(task_name="noop")
async def noop() -> None:
    await aincr()
