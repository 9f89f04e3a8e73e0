"""Bug: a job given back at shutdown goes to the head of its queue, and the ready jobs behind it are thrown away."""

from nestq_memory import MemoryBroker, StoredJob

from ._base import broken_harness


class Truncating(MemoryBroker):
    def give_back(self, job: StoredJob) -> None:
        with self._lock:
            q = self._queues[job.queue]
            for level in q.levels:  # the bug: the queue is rebuilt from the given-back job alone
                q.size -= len(q.ready[level])
                q.ready[level].clear()
        super().give_back(job)


harness = broken_harness("give_back_drops_behind", broker=Truncating())
