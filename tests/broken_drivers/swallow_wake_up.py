"""Bug: an idle worker woken for a push just as it stops leaves without passing the wake-up on.

The job stays ready, but every other idle worker keeps sleeping: this storage never polls, so nothing runs it
until the next push.
"""

import asyncio
from collections.abc import Sequence

from nestq_memory import MemoryBroker

from ._base import broken_harness


class Swallowing(MemoryBroker):
    def _forget(self, waiter: asyncio.Future[str | None], queues: Sequence[str], *, pass_on: bool) -> str | None:
        return super()._forget(waiter, queues, pass_on=False)  # the bug: a leaving claimer keeps its wake-up


harness = broken_harness("swallow_wake_up", broker=Swallowing())
