"""Bug: a job whose handler raised is acknowledged and forgotten: no retry, no dead letter."""

from nestq_memory import StoredJob

from ._base import BrokenWorker, broken_harness


class Dropping(BrokenWorker):
    def _failed(self, job: StoredJob, exc: BaseException) -> None:
        self.broker.ack(job)  # the bug: a failure is treated like a success


harness = broken_harness("drop_failed", worker=Dropping)
