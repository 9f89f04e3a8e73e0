"""Bug: the depth of a queue the storage has never seen is 1 (a default that should have been 0)."""

from nestq_memory import MemoryBroker, QueueStats

from ._base import broken_harness


class Phantom(MemoryBroker):
    def stats(self, queue: str) -> QueueStats:
        if queue not in self.queues():
            return QueueStats(1, 0, 0, 0)  # the bug
        return super().stats(queue)


harness = broken_harness("phantom_depth", broker=Phantom())
