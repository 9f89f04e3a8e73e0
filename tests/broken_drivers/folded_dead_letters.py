"""Bug: dead letters are listed by a case-insensitive prefix match, so a queue shows its look-alikes' letters."""

from nestq_memory import DeadLetter, MemoryBroker

from ._base import broken_harness


class PrefixListing(MemoryBroker):
    def dead_letters(self, queue: str) -> list[DeadLetter]:
        with self._lock:
            found = []
            for name, q in self._queues.items():
                if name.lower().startswith(queue.lower()):  # the bug: a prefix match, case folded
                    found.extend(q.dead)
            return sorted(found, key=lambda d: d.failed_at)


harness = broken_harness("folded_dead_letters", broker=PrefixListing())
