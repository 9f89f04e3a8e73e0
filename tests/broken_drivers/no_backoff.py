"""Bug: a failed job is retried at once, without waiting out the backoff."""

from nestq_memory import StoredJob, describe_error

from nestq_spec import is_retryable

from ._base import BrokenWorker, broken_harness


class Eager(BrokenWorker):
    def _failed(self, job: StoredJob, exc: BaseException) -> None:
        if is_retryable(exc) and job.attempts < self.config.max_attempts:
            self.broker.retry(job, 0.0, describe_error(exc))  # the bug: no backoff
            return
        super()._failed(job, exc)


harness = broken_harness("no_backoff", worker=Eager)
