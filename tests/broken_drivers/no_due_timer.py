"""Bug: an idle worker sets no timer for the earliest delayed job; it finds due jobs only when its 1 s wait ends.

Nothing is lost (the wait is bounded, as the toolkit's receive wait is), but a delayed job starts up to a second
after it fell due. The driver declares ``precise_delays``, as the memory driver does.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

from nestq_memory import MemoryBroker

from ._base import broken_harness

WAIT = 1.0


class NoTimer(MemoryBroker):
    async def wait(self, queues: Sequence[str], stop: asyncio.Future[Any]) -> str | None:
        # The reference wait without its due-time timer: a bounded wait instead.
        if stop.done():
            return None
        loop = asyncio.get_running_loop()
        with self._lock:
            if any(self._queues[name].size for name in queues if name in self._queues):
                return None
            waiter: asyncio.Future[str | None] = loop.create_future()
            for name in queues:
                self._queue(name).waiters.append(waiter)
        try:
            await asyncio.wait((waiter, stop), timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)  # the bug
        except BaseException:
            self._forget(waiter, queues, pass_on=True)
            raise
        return self._forget(waiter, queues, pass_on=stop.done())


harness = broken_harness("no_due_timer", broker=NoTimer())
