"""A worker app for the fault tests, run in a subprocess with ``nestq run nats_fault_app:WorkerApp``.

Its handler appends the job's number to the file ``NESTQ_FAULT_RESULTS`` (one short ``O_APPEND`` write per
completion, so lines from several processes never interleave): the test counts completions and duplicates across
worker processes it kills. Settings come from ``NESTQ_NATS__*``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from nestq_spec import module, process, processor

from nestq_nats import NatsQueueModule, NatsQueueWorkerModule

QUEUE = os.environ.get("NESTQ_FAULT_QUEUE", "faults")
RESULTS = os.environ.get("NESTQ_FAULT_RESULTS", "nestq-fault-results.txt")


@processor
class FaultRecorder:
    """Records ``start:<n>``, sleeps ``work`` seconds, then records ``<n>`` (the completion) in the results file."""

    @process(queue=QUEUE)
    async def handle(self, job: dict[str, Any]) -> None:
        """Handle one job of the fault tests."""
        if job.get("work"):
            _record(f"start:{job['n']}")
            await asyncio.sleep(float(job["work"]))
        _record(str(job["n"]))


def _record(line: str) -> None:
    fd = os.open(RESULTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@module(imports=[NatsQueueModule.for_root(), NatsQueueWorkerModule], providers=[FaultRecorder])
class WorkerApp:
    """The worker: the NATS driver (settings from the environment) and the recording processor."""
