"""Bug: priority 1 is stored as the default priority 0 (a ``priority > 1`` test where ``priority > 0`` was meant).

A rule that only pushes priorities 0, 5 and 10 cannot see it.
"""

from nestq_memory import MemoryBroker

from ._base import broken_harness


class FoldsOne(MemoryBroker):
    def push(self, queue: str, data: bytes, *, delay: float = 0.0, priority: int = 0) -> str:
        return super().push(queue, data, delay=delay, priority=priority if priority > 1 else 0)  # the bug


harness = broken_harness("skip_priority_one", broker=FoldsOne())
