"""taskiq-nats worker for benchmarks/nats_peers.py: ``taskiq worker taskiq_worker:broker --max-async-tasks 10``."""

from __future__ import annotations

import os

from nats.js.api import ConsumerConfig
from taskiq_nats import PullBasedJetStreamBroker

PREFIX = os.environ["BENCH_PREFIX"]
DONE = os.environ["BENCH_DONE_SUBJECT"]

broker = PullBasedJetStreamBroker(
    servers=os.environ["BENCH_URL"],
    subject=f"{PREFIX}.tasks",
    stream_name=f"{PREFIX}_taskiq",
    durable=f"{PREFIX}_durable",
    consumer_config=ConsumerConfig(durable_name=f"{PREFIX}_durable", ack_wait=30),
    pull_consume_batch=10,
    pull_consume_timeout=1.0,
)


@broker.task(task_name="noop")
async def noop() -> None:
    """A no-op job: signal completion."""
    await broker.client.publish(DONE, b"")
