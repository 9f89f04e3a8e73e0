"""rq job function; worker: `rq worker --worker-class rq.worker.SimpleWorker --quiet peers`."""

from __future__ import annotations

from common import incr

QUEUE_NAME = "peers"


def noop() -> None:
    incr()
