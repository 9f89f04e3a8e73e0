"""Processors the worker subprocess runs: they append one JSON line per event to a record file.

Each line is written, flushed and fsynced before the handler goes on, so a parent that SIGKILLs the process right
after reading ``started`` knows the handler really began, and nothing written is lost with the process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from pathlib import Path
from typing import IO, Any

from nestq_spec import current_job, process, processor

__all__ = ["RecordFile", "recording_processor"]

_counter = itertools.count(1)


class RecordFile:
    """An append-only JSON-lines file, one fsynced line per event, each stamped with the pid and the time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        """Append ``{"event": event, "pid": ..., "t": ..., **fields}`` and make it durable."""
        line = json.dumps({"event": event, "pid": os.getpid(), "t": time.time(), **fields}, ensure_ascii=False)
        self._file.write(line + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def recording_processor(queues: list[str], record: RecordFile, hang_key: str | None = None) -> type[Any]:
    """A ``@processor`` class with one method per queue that records ``started``/``finished`` lines.

    With ``hang_key``, a payload that is an object with a true ``hang_key`` is recorded as started and then waits
    forever, holding the job in flight until the process is killed.
    """

    def make(queue: str) -> Any:
        async def handle(self: object, job: Any) -> None:
            ctx = current_job()
            fields = {"queue": queue, "payload": job, "attempt": ctx.attempt, "job_id": ctx.job_id}
            record.write("started", **fields)
            if hang_key and isinstance(job, dict) and job.get(hang_key):
                record.write("hanging", **fields)
                await asyncio.Event().wait()
            record.write("finished", **fields)

        return process(queue=queue)(handle)

    namespace = {f"handle_{i}": make(queue) for i, queue in enumerate(queues)}
    name = f"SubprocessRecorder{next(_counter)}"
    cls = type(name, (), namespace)
    cls.__qualname__ = name
    cls.__module__ = __name__
    return processor(cls)
