"""Bug: the concurrency bound is applied per queue, so a worker with several queues runs more jobs than allowed."""

import asyncio
from collections.abc import Sequence

from nestq_spec import Container, ProcessMethod

from ._base import BrokenWorker, broken_harness


class PerQueue(BrokenWorker):
    async def _receive_loop(
        self,
        by_queue: dict[str, tuple[ProcessMethod, ...]],
        queues: Sequence[str],
        container: Container,
        stop: asyncio.Future[None],
    ) -> None:
        # The bug: each slot serves every queue separately, so each queue gets `concurrency` slots of its own.
        await asyncio.gather(*(super(PerQueue, self)._receive_loop(by_queue, [q], container, stop) for q in queues))


harness = broken_harness("per_queue_bound", worker=PerQueue)
