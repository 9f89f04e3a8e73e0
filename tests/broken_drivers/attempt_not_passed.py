"""Bug: the worker counts attempts but tells handlers every delivery is attempt 1."""

from collections.abc import Sequence

from nestq_memory import StoredJob

from nestq_spec import Container, JobMeta, ProcessMethod, dispatch

from ._base import BrokenWorker, broken_harness


class Forgets(BrokenWorker):
    async def dispatch_job(self, methods: Sequence[ProcessMethod], job: StoredJob, container: Container) -> None:
        await dispatch(methods, job.data, container, JobMeta(1, job.job_id))  # the bug: attempt always 1


harness = broken_harness("attempt_not_passed", worker=Forgets)
