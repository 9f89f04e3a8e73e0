"""Bug: an idle worker's wait never hears a push; it only polls, once a second, so every idle job waits up to 1 s.

Nothing is lost and nothing is late by the suite's deadlines: only the idle latency shows it.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from nestq_memory import MemoryBroker

from ._base import broken_harness

POLL = 1.0


class Deaf(MemoryBroker):
    async def wait(self, queues: Sequence[str], stop: asyncio.Future[Any]) -> str | None:
        await asyncio.wait([stop], timeout=POLL)  # the bug: a sleep where a wake-up belongs
        return None


harness = broken_harness("deaf_idle_wait", broker=Deaf())
