"""The three worker apps of ``rabbitmq_bench.py``; each no-op job appends a line to ``NQB_RESULTS``.

A job carries ``t`` (the time.time() it was pushed); the line is ``<now - t>`` so the bench reads latencies too.
Run as: ``nestq run apps:NestqApp``, ``dramatiq apps --processes 1 --threads 10``,
``taskiq worker apps:taskiq_broker --workers 1 --max-async-tasks 10``.
"""

from __future__ import annotations

import os
import time
from typing import Any

PEER = os.environ.get("NQB_PEER", "")
URL = os.environ.get("NQB_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = os.environ.get("NQB_QUEUE", "bench")


def record(pushed: float) -> None:
    """Append this job's push-to-start latency to the results file (one write per job, O_APPEND)."""
    fd = os.open(os.environ["NQB_RESULTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{time.time() - pushed:.6f}\n".encode())
    finally:
        os.close(fd)


if PEER.startswith("nestq"):
    from nestq_rabbitmq import RabbitmqQueueModule, RabbitmqQueueWorkerModule

    from nestq_spec import module, process, processor

    @processor
    class Noop:
        """A no-op job."""

        @process(queue=QUEUE)
        async def handle(self, job: dict[str, Any]) -> None:
            """Record and return."""
            record(float(job["t"]))

    PREFETCH = int(os.environ.get("NQB_PREFETCH", "0"))
    SETTINGS: dict[str, object] = {"url": URL, "concurrency": 10, "prefetch": PREFETCH}
    if os.environ.get("NESTQ_RABBITMQ__MAX_PRIORITY"):  # the producer side reads it from the environment too
        SETTINGS["max_priority"] = int(os.environ["NESTQ_RABBITMQ__MAX_PRIORITY"])

    @module(imports=[RabbitmqQueueModule.for_root(SETTINGS),
                     RabbitmqQueueWorkerModule], providers=[Noop])
    class NestqApp:
        """nestq-rabbitmq at concurrency 10."""

if PEER == "dramatiq":
    import dramatiq
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    dramatiq_broker = RabbitmqBroker(url=URL, confirm_delivery=True)
    dramatiq.set_broker(dramatiq_broker)

    @dramatiq.actor(queue_name=QUEUE, max_retries=0)
    def noop(t: float) -> None:
        """Record and return."""
        record(t)

if PEER == "taskiq":
    from taskiq_aio_pika import AioPikaBroker

    taskiq_broker = AioPikaBroker(url=URL, queue_name=QUEUE)

    @taskiq_broker.task
    async def taskiq_noop(t: float) -> None:
        """Record and return."""
        record(t)
