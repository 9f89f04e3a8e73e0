"""Bug: the worker numbers attempts from 0 (it passes the attempts made *before* this one)."""

from collections.abc import Sequence

from nestq_memory import StoredJob

from nestq_spec import Container, JobMeta, ProcessMethod, dispatch

from ._base import BrokenWorker, broken_harness


class CountingFromZero(BrokenWorker):
    async def dispatch_job(self, methods: Sequence[ProcessMethod], job: StoredJob, container: Container) -> None:
        await dispatch(methods, job.data, container, JobMeta(job.attempts - 1, job.job_id))  # the bug: from 0


harness = broken_harness("attempt_zero", worker=CountingFromZero)
