"""Bug: a job cut off at shutdown is handled as a failed attempt: it waits out a retry backoff (or is dead-lettered)."""

from nestq_memory import StoredJob

from ._base import BrokenWorker, broken_harness


class FailingCutOff(BrokenWorker):
    def cut_off(self, job: StoredJob, exc: BaseException) -> None:
        self._failed(job, exc)  # the bug: the attempt is spent and the retry policy applies


harness = broken_harness("cut_off_is_failure", worker=FailingCutOff)
