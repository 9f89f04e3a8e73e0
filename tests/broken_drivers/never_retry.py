"""Bug: declares retries, but dead-letters every failed job after its first attempt."""

from nestq_memory import StoredJob, describe_error

from ._base import BrokenWorker, broken_harness


class Impatient(BrokenWorker):
    def _failed(self, job: StoredJob, exc: BaseException) -> None:
        self.broker.dead_letter(job, describe_error(exc))  # the bug: no retry, whatever the budget says


harness = broken_harness("never_retry", worker=Impatient)
