"""Bug: the worker parses messages leniently and re-wraps them, so the fail-closed unwrap never sees what was stored.

Any JSON (or none) reaches the handlers: wrong versions, missing keys, text that is not JSON at all.
"""

import json
from collections.abc import Sequence

from nestq_memory import StoredJob

from nestq_spec import WIRE_FORMAT_VERSION, Container, JobMeta, JSONValue, ProcessMethod, dispatch

from ._base import BrokenWorker, broken_harness


class Lenient(BrokenWorker):
    async def dispatch_job(self, methods: Sequence[ProcessMethod], job: StoredJob, container: Container) -> None:
        try:
            parsed = json.loads(job.data)
        except ValueError:
            parsed = None
        payload: JSONValue = parsed.get("payload") if isinstance(parsed, dict) else parsed
        repaired = {"v": WIRE_FORMAT_VERSION, "payload": payload}  # the bug: the version is assumed, not checked
        await dispatch(methods, repaired, container, JobMeta(job.attempts, job.job_id))


harness = broken_harness("skip_version_check", worker=Lenient)
