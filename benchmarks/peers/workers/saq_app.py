"""saq worker: `saq saq_app.settings`."""

from __future__ import annotations

from typing import Any

from common import REDIS_URL, aincr
from saq import Queue

QUEUE_NAME = "peers"

queue = Queue.from_url(REDIS_URL, name=QUEUE_NAME)


async def noop(ctx: dict[str, Any]) -> None:
    await aincr()


settings = {
    "queue": queue,
    "functions": [noop],
    "concurrency": 10,
}
