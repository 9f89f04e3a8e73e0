#!/usr/bin/env python3
"""Benchmark nestq-nats against taskiq-nats and a raw nats-py loop, on one private nats-server -js, in one run.

Peers (each gets fresh streams of its own on the same server):
  nestq   nestq-nats: NatsConnection.push_json / push_many_json; worker ``nestq run`` at concurrency 10
  taskiq  taskiq-nats PullBasedJetStreamBroker: ``task.kiq()``; worker ``taskiq worker --max-async-tasks 10``
  raw     nats-py: ``js.publish`` per job; worker = one pull-fetch(batch 10) / handle / ack loop

Figures per peer:
  enqueue      N jobs, one library call per job, awaited one after the other (jobs/s)
  batched      N jobs with the publishes in flight together (nestq push_many_json, raw and taskiq asyncio.gather)
  end-to-end   N jobs already queued, ONE worker process started: N / (process start -> N-th job done) (jobs/s);
               "steady" = jobs after the first / (first done -> last done)
  idle p50     worker idle and connected; one job pushed, time until its handler ran; median of 50 (ms)

Each no-op job publishes one core-NATS message on a per-run subject; this script counts them (deadline: fails
loudly, naming the peer). ``--rounds R`` measures every peer R times, interleaved (A, B, C, A, B, C, ...: the load
of a shared machine drifts), each time on fresh streams, and prints each round and the medians, with the ratios
per round. ``--baseline-src DIR`` adds peer ``base``: nestq-nats with its worker run from DIR (``nestq_spec`` and
``nestq_nats`` of another revision, e.g. from ``git archive``), for a before/after in one run. Install the peers
with the driver's bench extra, in a venv of their own:

    python3 -m venv benchmarks/.venv-nats
    benchmarks/.venv-nats/bin/pip install -e 'reference_drivers/nestq-nats[bench]' && \
        benchmarks/.venv-nats/bin/pip install --no-deps -e .
    benchmarks/.venv-nats/bin/python benchmarks/nats_peers.py [--n 5000] [--peers nestq,taskiq,raw] \
        [--rounds 3] [--baseline-src DIR] [--url nats://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats

HERE = Path(__file__).resolve().parent
WORKERS = HERE / "nats_workers"
BIN = Path(sys.executable).parent


class Counter:
    """Counts completion messages on one subject, with the time of the first and the last."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.changed = asyncio.Event()

    async def on_message(self, msg: Any) -> None:
        now = time.perf_counter()
        self.count += 1
        if self.count == 1:
            self.first = now
        self.last = now
        self.changed.set()

    async def wait_for(self, target: int, within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while self.count < target:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"{what}: only {self.count} of {target} jobs done within {within:.0f}s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=left)


class Peer:
    """One queue library: how to push, and how to start its worker process."""

    name = ""

    def __init__(self, url: str, prefix: str, done: str) -> None:
        self.url, self.prefix, self.done = url, prefix, done

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"BENCH_URL": self.url, "BENCH_PREFIX": self.prefix, "BENCH_DONE_SUBJECT": self.done,
                    "PYTHONPATH": os.pathsep.join(p for p in (str(WORKERS), env.get("PYTHONPATH", "")) if p)})
        return env

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def push(self) -> None: raise NotImplementedError
    async def push_many(self, n: int) -> None: raise NotImplementedError
    def worker(self) -> list[str]: raise NotImplementedError


class Nestq(Peer):
    name = "nestq"

    async def open(self) -> None:
        from nestq_nats import NatsConnection, load_config

        self.conn = NatsConnection(load_config({"url": self.url, "stream_prefix": self.prefix}))
        await self.conn.client()

    async def close(self) -> None:
        await self.conn.aclose()

    async def push(self) -> None:
        await self.conn.push_json("bench", {"x": 1})

    async def push_many(self, n: int) -> None:
        await self.conn.push_many_json("bench", [{"x": 1}] * n)

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update({"NESTQ_NATS__URL": self.url, "NESTQ_NATS__STREAM_PREFIX": self.prefix,
                    "NESTQ_NATS__CONCURRENCY": "10", "BENCH_QUEUE": "bench"})
        return env

    def worker(self) -> list[str]:
        return [str(BIN / "nestq"), "run", "nestq_worker:WorkerApp"]


class NestqBaseline(Nestq):
    """nestq-nats with the worker process run from ``--baseline-src`` (pushes go through this checkout)."""

    name = "base"
    src = ""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PYTHONPATH"] = os.pathsep.join([self.src, env["PYTHONPATH"]])
        return env


class Taskiq(Peer):
    name = "taskiq"

    async def open(self) -> None:
        os.environ.update({"BENCH_URL": self.url, "BENCH_PREFIX": self.prefix, "BENCH_DONE_SUBJECT": self.done})
        sys.path.insert(0, str(WORKERS))
        import importlib

        import taskiq_worker

        self.module = importlib.reload(taskiq_worker)
        await self.module.broker.startup()

    async def close(self) -> None:
        await self.module.broker.shutdown()

    async def push(self) -> None:
        await self.module.noop.kiq()

    async def push_many(self, n: int) -> None:
        await asyncio.gather(*(self.module.noop.kiq() for _ in range(n)))

    def worker(self) -> list[str]:
        return [str(BIN / "taskiq"), "worker", "taskiq_worker:broker", "--workers", "1", "--max-async-tasks", "10"]


class Raw(Peer):
    name = "raw"

    async def open(self) -> None:
        from nats.js.api import RetentionPolicy, StreamConfig

        self.nc = await nats.connect(self.url)
        self.js = self.nc.jetstream()
        await self.js.add_stream(StreamConfig(name=f"{self.prefix}_raw", subjects=[f"{self.prefix}.raw"],
                                              retention=RetentionPolicy.WORK_QUEUE))

    async def close(self) -> None:
        await self.nc.close()

    async def push(self) -> None:
        await self.js.publish(f"{self.prefix}.raw", b'{"x":1}')

    async def push_many(self, n: int) -> None:
        await asyncio.gather(*(self.js.publish(f"{self.prefix}.raw", b'{"x":1}') for _ in range(n)))

    def worker(self) -> list[str]:
        return [sys.executable, str(WORKERS / "raw_worker.py")]


PEERS: dict[str, type[Peer]] = {"nestq": Nestq, "taskiq": Taskiq, "raw": Raw, "base": NestqBaseline}


async def timed(action: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await action()
    return time.perf_counter() - start


async def measure(cls: type[Peer], url: str, n: int) -> dict[str, float]:
    client = await nats.connect(url)
    done = f"bench.done.{uuid.uuid4().hex[:8]}"
    counter = Counter()
    await client.subscribe(done, cb=counter.on_message)
    peer = cls(url, f"b{uuid.uuid4().hex[:8]}", done)
    await peer.open()
    figures: dict[str, float] = {}
    log = open(f"/tmp/nats-bench-{peer.name}.log", "ab")  # noqa: SIM115, ASYNC230 - closed in finally
    proc: subprocess.Popen[bytes] | None = None
    try:
        async def sequential() -> None:
            for _ in range(n):
                await peer.push()

        figures["enqueue"] = n / await timed(sequential)
        figures["batched"] = n / await timed(lambda: peer.push_many(n))
        total = 2 * n
        start = time.perf_counter()
        # The worker process (its start-up included) is what is measured.
        proc = subprocess.Popen(  # noqa: ASYNC220
            peer.worker(), env=peer.env(), cwd=WORKERS, stdout=log, stderr=subprocess.STDOUT
        )
        await counter.wait_for(total, 300, f"{peer.name} end-to-end")
        figures["end_to_end"] = total / (counter.last - start)
        figures["steady"] = (total - 1) / (counter.last - counter.first) if counter.last > counter.first else 0.0
        latencies = []
        for _ in range(50):
            target = counter.count + 1
            t0 = time.perf_counter()
            await peer.push()
            await counter.wait_for(target, 30, f"{peer.name} idle latency")
            latencies.append(counter.last - t0)
            await asyncio.sleep(0.02)  # let the worker go idle again (a blocking pull waiting for work)
        figures["idle_p50_ms"] = statistics.median(latencies) * 1000
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
        await peer.close()
        await client.close()
    return figures


COLUMNS = ("enqueue", "batched", "end_to_end", "steady", "idle_p50_ms")


def main() -> None:
    """Parse the options; measure every peer ``--rounds`` times, interleaved, on one server; print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="jobs per measurement (default 5000)")
    parser.add_argument("--peers", default="nestq,taskiq,raw")
    parser.add_argument("--rounds", type=int, default=1, help="measure every peer this many times, interleaved")
    parser.add_argument("--baseline-src", default=None, help="also measure peer 'base', run from this directory")
    parser.add_argument("--url", default=None, help="a NATS server to use (default: a private nats-server -js)")
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    if args.baseline_src:
        NestqBaseline.src = str(Path(args.baseline_src).resolve())
        if "base" not in peers:
            peers.insert(1 if "nestq" in peers else 0, "base")
    server = None
    url = args.url
    if url is None:
        from nestq_nats.server import NatsServer

        server = NatsServer().start()
        url = server.url
    rounds: list[dict[str, dict[str, float]]] = []
    try:
        for r in range(args.rounds):
            results = {}
            for name in peers:
                results[name] = asyncio.run(measure(PEERS[name], url, args.n))
                print(f"round {r + 1}: {name}: {results[name]}", file=sys.stderr)
            rounds.append(results)
    finally:
        if server is not None:
            server.close()
    print(f"\nnats-server on {url}, N={args.n} (end-to-end: 2N queued jobs, one worker process, concurrency 10)\n")
    print(f"{'peer':16}" + "".join(f"{c:>14}" for c in COLUMNS))
    for r, results in enumerate(rounds):
        for name, fig in results.items():
            print(f"{name + f' r{r + 1}':16}" + "".join(f"{fig[c]:>14.1f}" for c in COLUMNS))
    for name in peers:
        med = {c: statistics.median(res[name][c] for res in rounds) for c in COLUMNS}
        print(f"{name + ' median':16}" + "".join(f"{med[c]:>14.1f}" for c in COLUMNS))
    for mine in ("nestq", "base"):
        for other in ("taskiq", "raw", "base"):
            if mine == other or mine not in peers or other not in peers:
                continue
            ratios = [res[mine]["end_to_end"] / res[other]["end_to_end"] for res in rounds if res[other]["end_to_end"]]
            if ratios:
                print(f"{mine} end-to-end / {other}, per round: " + ", ".join(f"{x:.2f}x" for x in ratios)
                      + f"; median {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
