"""Bug: the receive loops never watch the cancel; only the hard stop after the shutdown grace ends them."""

import asyncio

from ._base import BrokenWorker, broken_harness


class Deaf(BrokenWorker):
    def stop_signal(self, stop: asyncio.Future[None]) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()  # the bug: a stop signal nobody ever sets


harness = broken_harness("ignore_cancel", worker=Deaf)
