"""Bug: every job a worker claims goes to the handlers of its first queue, whatever queue it came from."""

from collections.abc import Sequence

from nestq_memory import StoredJob

from nestq_spec import Container, JobMeta, ProcessMethod, dispatch

from ._base import BrokenWorker, broken_harness


class Misrouting(BrokenWorker):
    async def dispatch_job(self, methods: Sequence[ProcessMethod], job: StoredJob, container: Container) -> None:
        first = next(iter(self.routes(container).values()))  # the bug: the first queue's handlers, always
        await dispatch(first, job.data, container, JobMeta(job.attempts, job.job_id))


harness = broken_harness("wrong_queue", worker=Misrouting)
