"""nestq-postgres worker for ``postgres_peers.py``: ``nestq run nestq_app:App`` (settings from NESTQ_POSTGRES__*)."""

from __future__ import annotations

from typing import Any

from common import done
from nestq_postgres import PostgresQueueModule, PostgresQueueWorkerModule

from nestq_spec import module, process, processor


@processor
class Bench:
    """A no-op job; reports its start when asked (latency runs)."""

    @process(queue="bench")
    async def handle(self, job: dict[str, Any]) -> None:
        """Run one benchmark job."""
        await done(job)


@module(imports=[PostgresQueueModule.for_root(), PostgresQueueWorkerModule], providers=[Bench])
class App:
    """The benchmark worker app."""
