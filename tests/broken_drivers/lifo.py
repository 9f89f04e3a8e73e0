"""Bug: the storage hands out the newest ready job first (a stack), while the driver declares FIFO."""

from nestq_memory import MemoryBroker, StoredJob
from nestq_memory.broker import _Queue

from ._base import broken_harness


class _Stack(_Queue):
    def pop(self) -> StoredJob | None:
        for level in self.levels:
            fifo = self.ready[level]
            if fifo:
                self.size -= 1
                return fifo.pop()  # the bug: the tail, not the head
        return None


class Stacking(MemoryBroker):
    def _queue(self, name: str) -> _Queue:
        if name not in self._queues:
            self._queues[name] = _Stack()
        return self._queues[name]


harness = broken_harness("lifo", broker=Stacking())
