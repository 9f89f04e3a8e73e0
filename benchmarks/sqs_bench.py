#!/usr/bin/env python3
"""nestq-sqs against a raw aiobotocore send/receive/delete loop, on the same SQS-compatible server, side by side.

Four figures, each for both (medians of --rounds rounds, nestq and raw alternating within a round, which goes
first swapping from round to round; every round's figures and ratios are printed as they come):

* enqueue: N jobs, one call each (``push_json`` / ``SendMessage``);
* batched enqueue: N jobs in calls of 10 (``push_many_json`` / ``SendMessageBatch``);
* end-to-end: one worker at concurrency 10 drains N waiting no-op jobs (nestq: an app with ``SqsQueueWorkerModule``;
  raw: one loop that long-polls up to 10 messages, runs them as tasks and deletes them with ``DeleteMessageBatch``);
* idle p50: an idle worker, one job pushed at a time: push -> handler start, median of --idle samples.

Needs only the project's and the driver's ``dev`` extras (aiobotocore, moto[server]); no peer to install::

    .venv/bin/python benchmarks/sqs_bench.py                    # embedded moto server, N=500, 3 rounds
    .venv/bin/python benchmarks/sqs_bench.py --n 1000 --rounds 5 --endpoint http://127.0.0.1:4566

Both sides run in this one process against one server, so the machine's load hits both alike; moto is a Python
server, far slower than SQS itself: read the ratios, not the rates. The load average is printed at the start and
the end of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nestq_sqs import SqsConnection, SqsQueueModule, SqsQueueWorkerModule, load_config
from nestq_sqs.embedded import DUMMY_CREDENTIALS, EmbeddedSqs

from nestq_spec import Application, CancellationToken, module, process, processor

REGION = "us-east-1"


def _load() -> str:
    """The 1, 5 and 15 minute load averages, for the record (the machine is shared)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


async def _until(check: Callable[[], bool], what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.005)


class Bench:
    """One side's measurements; ``prefix`` keeps each run's queues apart."""

    def __init__(self, endpoint: str, n: int) -> None:
        self.endpoint = endpoint
        self.n = n
        self.prefix = f"b{uuid.uuid4().hex[:6]}-"
        self.config = load_config({"endpoint_url": endpoint, "region": REGION, "queue_prefix": self.prefix,
                                   "concurrency": 10, "receive_wait": 1}, env={})

    # ------------------------------------------------------------------------------------------------ nestq

    async def nestq_enqueue(self, queue: str, batched: bool) -> float:
        connection = SqsConnection(self.config)
        try:
            await connection.queue_urls(queue)
            started = time.perf_counter()
            if batched:
                await connection.push_many_json(queue, [{"n": i} for i in range(self.n)])
            else:
                for i in range(self.n):
                    await connection.push_json(queue, {"n": i})
            return time.perf_counter() - started
        finally:
            await connection.aclose()

    def _app(self, queue: str, done: list[float]) -> Application:
        @processor
        class Noop:
            @process(queue=queue)
            async def handle(self, job: dict[str, Any]) -> None:
                done.append(time.perf_counter())

        root = module(imports=[SqsQueueModule.for_root(self.config), SqsQueueWorkerModule], providers=[Noop])(
            type("BenchApp", (), {}))
        return Application.create(root)

    async def nestq_e2e(self, queue: str) -> float:
        await self.nestq_enqueue(queue, batched=True)
        done: list[float] = []
        async with self._app(queue, done) as app:
            cancel = CancellationToken()
            started = time.perf_counter()
            serving = asyncio.ensure_future(app.serve(cancel))
            await _until(lambda: len(done) >= self.n, f"nestq: {self.n} jobs", 600)
            elapsed = max(done) - started
            cancel.cancel()
            await serving
        return elapsed

    async def nestq_idle(self, queue: str, samples: int) -> list[float]:
        done: list[float] = []
        latencies: list[float] = []
        async with self._app(queue, done) as app:
            connection = app.container.get(SqsConnection)
            await connection.queue_urls(queue)
            cancel = CancellationToken()
            serving = asyncio.ensure_future(app.serve(cancel))
            await asyncio.sleep(1.5)  # let the worker go idle: a long poll is waiting when the job arrives
            for i in range(samples):
                pushed = time.perf_counter()
                await connection.push_json(queue, {"n": i})
                await _until(lambda i=i: len(done) > i, "nestq idle job", 30)  # type: ignore[misc]
                latencies.append(done[i] - pushed)
                await asyncio.sleep(0.2)
            cancel.cancel()
            await serving
        return latencies

    # ------------------------------------------------------------------------------------------------ raw

    async def _client(self) -> Any:
        from aiobotocore.session import get_session

        return get_session().create_client("sqs", region_name=REGION, endpoint_url=self.endpoint)

    async def raw_enqueue(self, queue: str, batched: bool) -> float:
        async with await self._client() as client:
            url = (await client.create_queue(QueueName=self.prefix + "raw-" + queue))["QueueUrl"]
            started = time.perf_counter()
            if batched:
                for start in range(0, self.n, 10):
                    entries = [{"Id": str(i), "MessageBody": f'{{"v": 1, "payload": {{"n": {start + i}}}}}'}
                               for i in range(min(10, self.n - start))]
                    await client.send_message_batch(QueueUrl=url, Entries=entries)
            else:
                for i in range(self.n):
                    await client.send_message(QueueUrl=url, MessageBody=f'{{"v": 1, "payload": {{"n": {i}}}}}')
            return time.perf_counter() - started

    async def _raw_consume(self, client: Any, url: str, done: list[float], stop: asyncio.Event) -> None:
        """Receive up to 10, run each as a task (at most 10 at once), delete each received batch in one call."""
        slots = asyncio.Semaphore(10)

        async def run(batch: list[dict[str, Any]]) -> None:
            for _ in batch:
                done.append(time.perf_counter())
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            await client.delete_message_batch(QueueUrl=url, Entries=entries)
            for _ in batch:
                slots.release()

        tasks: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            await slots.acquire()
            free = 1
            while free < 10 and not slots.locked():  # take every free slot for one receive
                await slots.acquire()
                free += 1
            got = await client.receive_message(QueueUrl=url, MaxNumberOfMessages=free, WaitTimeSeconds=1,
                                               AttributeNames=["ApproximateReceiveCount"])
            batch = got.get("Messages", [])
            for _ in range(free - len(batch)):
                slots.release()
            if batch:
                task = asyncio.ensure_future(run(batch))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)

    async def raw_e2e(self, queue: str) -> float:
        await self.raw_enqueue(queue, batched=True)
        async with await self._client() as client:
            url = (await client.create_queue(QueueName=self.prefix + "raw-" + queue))["QueueUrl"]
            done: list[float] = []
            stop = asyncio.Event()
            started = time.perf_counter()
            consumer = asyncio.ensure_future(self._raw_consume(client, url, done, stop))
            await _until(lambda: len(done) >= self.n, f"raw: {self.n} jobs", 600)
            elapsed = max(done) - started
            stop.set()
            await consumer
        return elapsed

    async def raw_idle(self, queue: str, samples: int) -> list[float]:
        async with await self._client() as client:
            url = (await client.create_queue(QueueName=self.prefix + "raw-" + queue))["QueueUrl"]
            done: list[float] = []
            stop = asyncio.Event()
            consumer = asyncio.ensure_future(self._raw_consume(client, url, done, stop))
            await asyncio.sleep(1.5)
            latencies = []
            for i in range(samples):
                pushed = time.perf_counter()
                await client.send_message(QueueUrl=url, MessageBody=f'{{"v": 1, "payload": {{"n": {i}}}}}')
                await _until(lambda i=i: len(done) > i, "raw idle job", 30)  # type: ignore[misc]
                latencies.append(done[i] - pushed)
                await asyncio.sleep(0.2)
            stop.set()
            await consumer
        return latencies


async def main(args: argparse.Namespace) -> None:
    bench = Bench(args.endpoint, args.n)
    results: dict[str, dict[str, list[float]]] = {"nestq": {}, "raw": {}}

    def add(side: str, name: str, value: float) -> None:
        results[side].setdefault(name, []).append(value)

    steps: list[tuple[str, Callable[[Bench, str], Awaitable[float]], Callable[[Bench, str], Awaitable[float]]]] = [
        ("enqueue", lambda b, q: b.nestq_enqueue(q, False), lambda b, q: b.raw_enqueue(q, False)),
        ("batched enqueue", lambda b, q: b.nestq_enqueue(q, True), lambda b, q: b.raw_enqueue(q, True)),
        ("end-to-end", Bench.nestq_e2e, Bench.raw_e2e),
    ]
    print(f"load average at start: {_load()}", flush=True)
    for round_ in range(args.rounds):
        for name, ours, raw in steps:
            pairs = [("nestq", ours), ("raw", raw)] if round_ % 2 == 0 else [("raw", raw), ("nestq", ours)]
            for side, run in pairs:
                seconds = await run(bench, f"{name.replace(' ', '-')}-{round_}")
                add(side, name, args.n / seconds)
                print(f"round {round_ + 1}: {side:5} {name:16} {args.n / seconds:8.1f} jobs/s", flush=True)
            print(f"round {round_ + 1}: ratio {name:16} {results['nestq'][name][-1] / results['raw'][name][-1]:8.2f}x",
                  flush=True)
        idle = [("nestq", bench.nestq_idle), ("raw", bench.raw_idle)]
        for side, run_idle in idle if round_ % 2 == 0 else idle[::-1]:
            latencies = await run_idle(f"idle-{round_}", args.idle)
            add(side, "idle p50 (ms)", statistics.median(latencies) * 1000)
            print(f"round {round_ + 1}: {side:5} idle p50          {statistics.median(latencies) * 1000:8.1f} ms",
                  flush=True)
    print(f"load average at end: {_load()}")
    print(f"\nnestq-sqs vs raw aiobotocore, N={args.n}, {args.rounds} round(s), medians, endpoint {args.endpoint}")
    print(f"{'measure':18} {'nestq':>10} {'raw':>10} {'nestq/raw':>10} {'per-round ratios':>20}")
    for name in [s[0] for s in steps] + ["idle p50 (ms)"]:
        mine, theirs = statistics.median(results["nestq"][name]), statistics.median(results["raw"][name])
        per_round = " ".join(f"{a / b:.2f}" for a, b in zip(results["nestq"][name], results["raw"][name], strict=True))
        unit = " (latency: lower is better)" if "ms" in name else " (rates: higher is better)"
        print(f"{name:18} {mine:10.1f} {theirs:10.1f} {mine / theirs:9.2f}x  {per_round}{unit}")


def cli() -> None:
    """Parse arguments, start the embedded server unless --endpoint is given, run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="jobs per measurement (default 500)")
    parser.add_argument("--rounds", "--repeats", type=int, default=3,
                        help="interleaved rounds; every round is printed, and the medians (default 3)")
    parser.add_argument("--idle", type=int, default=15, help="idle latency samples per round (default 15)")
    parser.add_argument("--endpoint", default="", help="an SQS-compatible endpoint (default: embedded moto)")
    args = parser.parse_args()
    for key, value in DUMMY_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    if args.endpoint:
        asyncio.run(main(args))
        return
    with EmbeddedSqs() as server:
        args.endpoint = server.url
        asyncio.run(main(args))


if __name__ == "__main__":
    cli()
