"""dramatiq worker: `dramatiq dramatiq_app --processes 1 --threads 10`."""

from __future__ import annotations

import dramatiq
from common import REDIS_URL, incr
from dramatiq.brokers.redis import RedisBroker

QUEUE_NAME = "peers"

broker = RedisBroker(url=REDIS_URL)  # type: ignore[no-untyped-call]  # default middleware, default namespace "dramatiq"
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE_NAME)
def noop() -> None:
    incr()
