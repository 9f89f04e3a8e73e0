"""Bug: a worker on several queues always reads them in the same order, so a busy first queue starves the others."""

from collections.abc import Sequence

from nestq_memory import MemoryBroker, StoredJob

from ._base import broken_harness


class FixedOrder(MemoryBroker):
    def claim(self, queues: Sequence[str], prefer: str | None = None) -> StoredJob | None:
        self._turn = -1  # the bug: every claim starts its round at the first queue
        return super().claim(queues, prefer)


harness = broken_harness("fixed_queue_order", broker=FixedOrder())
