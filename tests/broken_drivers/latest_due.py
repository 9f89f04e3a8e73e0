"""Bug: an idle worker on several queues sets its timer for the latest due delayed job instead of the earliest."""

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from nestq_memory import MemoryBroker
from nestq_memory.broker import _resolve

from ._base import broken_harness


class LatestDue(MemoryBroker):
    async def wait(self, queues: Sequence[str], stop: asyncio.Future[Any]) -> str | None:
        # The reference wait, with max() where min() belongs.
        if stop.done():
            return None
        loop = asyncio.get_running_loop()
        with self._lock:
            if any(self._queues[name].size for name in queues if name in self._queues):
                return None
            due = max((self._queues[n].delayed[0][0] for n in queues if n in self._queues and self._queues[n].delayed),
                      default=None)  # the bug
            waiter: asyncio.Future[str | None] = loop.create_future()
            for name in queues:
                self._queue(name).waiters.append(waiter)
        timer = None if due is None else loop.call_later(max(0.0, due - time.monotonic()), _resolve, waiter, None)
        try:
            await asyncio.wait((waiter, stop), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self._forget(waiter, queues, pass_on=True)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return self._forget(waiter, queues, pass_on=stop.done())


harness = broken_harness("latest_due", broker=LatestDue())
