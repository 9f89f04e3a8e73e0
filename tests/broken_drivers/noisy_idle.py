"""Bug: every idle wait raises inside the storage (an index into an empty heap), caught and logged as a warning.

Jobs still flow (the wait carries on after the warning): only what the driver logs in a healthy run shows it.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from nestq_memory import MemoryBroker

from ._base import broken_harness

log = logging.getLogger("broken_drivers.noisy_idle")


class Noisy(MemoryBroker):
    async def wait(self, queues: Sequence[str], stop: asyncio.Future[Any]) -> str | None:
        try:
            _ = self._queue(queues[0]).delayed[0]  # the bug: the earliest due job of a queue that may have none
        except IndexError as exc:
            log.warning("waiting on %s failed, carrying on: IndexError: %s", queues[0], exc)
        return await super().wait(queues, stop)


harness = broken_harness("noisy_idle", broker=Noisy())
