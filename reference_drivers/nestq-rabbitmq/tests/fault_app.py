"""The worker app the fault tests run in subprocesses (``nestq run fault_app:FaultApp``).

Its handler appends the job's ``n`` to ``NESTQ_FAULT_RESULTS`` (one line per completed run, O_APPEND) after
sleeping ``work`` seconds; the driver's settings come from ``NESTQ_RABBITMQ__*``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from nestq_spec import module, process, processor

from nestq_rabbitmq import RabbitmqQueueModule, RabbitmqQueueWorkerModule

QUEUE = os.environ.get("NESTQ_FAULT_QUEUE", "faults")


@processor
class FaultRecorder:
    """Sleeps ``work`` seconds, then records the run of job ``n``."""

    @process(queue=QUEUE)
    async def handle(self, job: dict[str, Any]) -> None:
        """Handle one job."""
        if job.get("work"):
            await asyncio.sleep(float(job["work"]))
        fd = os.open(os.environ["NESTQ_FAULT_RESULTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{job['n']}\n".encode())
        finally:
            os.close(fd)


@module(imports=[RabbitmqQueueModule.for_root(), RabbitmqQueueWorkerModule], providers=[FaultRecorder])
class FaultApp:
    """A worker: the RabbitMQ driver (settings from the environment) and the recording processor."""
