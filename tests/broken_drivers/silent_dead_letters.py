"""Bug: dead letters are kept without their error text."""

from nestq_memory import StoredJob

from nestq_spec import is_retryable

from ._base import BrokenWorker, broken_harness


class Mute(BrokenWorker):
    def _failed(self, job: StoredJob, exc: BaseException) -> None:
        if job.attempts >= self.config.max_attempts or not is_retryable(exc):
            self.broker.dead_letter(job, "")  # the bug: the error is not recorded
            return
        super()._failed(job, exc)


harness = broken_harness("silent_dead_letters", worker=Mute)
