"""Bug: a job given back at shutdown keeps the interrupted attempt counted (as a lease left to expire would).

Its next run sees attempt 2 although only the cut-off run happened, so an app with ``max_attempts`` spends its
budget on restarts and a job interrupted by a few deploys is dead-lettered without ever failing.
"""

from nestq_memory import MemoryBroker, StoredJob

from ._base import broken_harness


class Counting(MemoryBroker):
    def give_back(self, job: StoredJob) -> None:
        job.attempts += 1  # the bug: the broker's give_back refunds the attempt; this undoes the refund
        super().give_back(job)


harness = broken_harness("give_back_counts_attempt", broker=Counting())
