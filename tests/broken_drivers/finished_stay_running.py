"""Bug: an acked job is never taken out of the running set, so the queue's depth never returns to 0."""

from nestq_memory import MemoryBroker, StoredJob

from ._base import broken_harness


class Sticky(MemoryBroker):
    def ack(self, job: StoredJob) -> None:
        pass  # the bug: the job stays counted as running


harness = broken_harness("finished_stay_running", broker=Sticky())
