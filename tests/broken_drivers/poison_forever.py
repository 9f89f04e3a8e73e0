"""Bug: a malformed envelope is retried like any failure, again and again, never dead-lettered."""

from nestq_memory import StoredJob, describe_error

from nestq_spec import EnvelopeError

from ._base import BrokenWorker, broken_harness


class Stubborn(BrokenWorker):
    def _failed(self, job: StoredJob, exc: BaseException) -> None:
        if isinstance(exc, EnvelopeError):  # the bug: no is_retryable() check, and no attempt limit for these
            self.broker.retry(job, self.config.backoff(job.attempts), describe_error(exc))
            return
        super()._failed(job, exc)


harness = broken_harness("poison_forever", worker=Stubborn)
