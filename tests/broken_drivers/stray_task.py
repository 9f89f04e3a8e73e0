"""Bug: serve() starts a background task (a depth reporter) and returns without cancelling or awaiting it."""

import asyncio

from nestq_spec import CancellationToken, Container

from ._base import BrokenWorker, broken_harness


class Stray(BrokenWorker):
    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        self.reporter = asyncio.create_task(self._report_depths())  # the bug: never cancelled nor awaited
        await super().serve(container, cancel)

    async def _report_depths(self) -> None:
        while True:
            await asyncio.sleep(0.05)


harness = broken_harness("stray_task", worker=Stray)
