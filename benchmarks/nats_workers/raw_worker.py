"""The raw nats-py baseline for benchmarks/nats_peers.py: a pull-fetch (batch 10) / handle / ack loop."""

from __future__ import annotations

import asyncio
import os
import signal

import nats
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig

PREFIX = os.environ["BENCH_PREFIX"]
DONE = os.environ["BENCH_DONE_SUBJECT"]


async def main() -> None:
    nc = await nats.connect(os.environ["BENCH_URL"])
    js = nc.jetstream()
    await js.add_consumer(f"{PREFIX}_raw", ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT,
                                                          ack_wait=30))
    sub = await js.pull_subscribe_bind("raw", stream=f"{PREFIX}_raw")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        try:
            msgs = await sub.fetch(10, timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        for msg in msgs:
            await nc.publish(DONE, b"")  # the job: a no-op that signals completion
            await msg.ack()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
