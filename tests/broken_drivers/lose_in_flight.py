"""Bug: a job cut off at shutdown is dropped instead of going back to its queue."""

from nestq_memory import MemoryBroker, StoredJob

from ._base import broken_harness


class Forgetful(MemoryBroker):
    def give_back(self, job: StoredJob) -> None:
        self.ack(job)  # the bug: the unfinished job is forgotten


harness = broken_harness("lose_in_flight", broker=Forgetful())
