"""End-to-end no-op jobs per second through the memory driver, next to a bare asyncio.Queue loop.

Both sides do the same JSON round trip per job: the memory driver pushes through ``push_json`` (validate the queue
name, wrap, encode to bytes), stores the bytes, claims them, and runs ``dispatch`` (parse, unwrap fail-closed,
decode, resolve the processor, set the job context, call the handler) then acks; the bare loop does
``json.dumps`` on push, ``json.loads`` on receive, and awaits a no-op coroutine.

Run: ``.venv/bin/python benchmarks/memory_bench.py [--jobs N] [--rounds R] [--profile]``. Each figure is the best
of R rounds (the least disturbed by the machine); the ratio is driver / bare. Target: ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import time
from collections.abc import Callable, Coroutine
from typing import Any

from nestq_memory import MemoryBroker, MemoryQueueModule, MemoryQueueWorkerModule

from nestq_spec import Application, CancellationToken, JobProducer, module, process, processor

QUEUE = "bench"


async def bare_loop(jobs: int) -> float:
    """Seconds to push ``jobs`` JSON messages through an asyncio.Queue and handle each with a no-op coroutine."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    done = asyncio.Event()
    count = 0

    async def handler(job: Any) -> None:
        nonlocal count
        count += 1
        if count == jobs:
            done.set()

    async def consume() -> None:
        while True:
            data = await queue.get()
            await handler(json.loads(data)["payload"])

    consumer = asyncio.create_task(consume())
    start = time.perf_counter()
    for i in range(jobs):
        queue.put_nowait(json.dumps({"v": 1, "payload": {"n": i}}))
    await done.wait()
    took = time.perf_counter() - start
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    return took


class _Run:
    """The current run's target and progress (the processor is registered once, for every run)."""

    jobs = 0
    count = 0
    done: asyncio.Event | None = None


@processor
class Noop:
    """The no-op handler: counts, and signals the end of the run."""

    @process(queue=QUEUE)
    async def handle(self, job: Any) -> None:
        """Count the job."""
        _Run.count += 1
        if _Run.count == _Run.jobs and _Run.done is not None:
            _Run.done.set()


def memory_driver(concurrency: int) -> Callable[[int], Coroutine[Any, Any, float]]:
    """A benchmark of the memory driver with ``concurrency`` receive loops."""

    async def run(jobs: int) -> float:
        _Run.jobs, _Run.count, _Run.done = jobs, 0, asyncio.Event()

        @module(imports=[MemoryQueueModule.for_root({"concurrency": concurrency}, broker=MemoryBroker()),
                         MemoryQueueWorkerModule], providers=[Noop])
        class BenchApp:
            pass

        app = Application.create(BenchApp)
        producer = app.container.get(JobProducer)
        cancel = CancellationToken()
        serving = asyncio.create_task(app.serve(cancel))
        await asyncio.sleep(0)  # let the worker start and go idle first, as a served app would be
        start = time.perf_counter()
        for i in range(jobs):
            await producer.push_json(QUEUE, {"n": i})
        await _Run.done.wait()
        took = time.perf_counter() - start
        cancel.cancel()
        await serving
        return took

    return run


def best_rate(bench: Callable[[int], Coroutine[Any, Any, float]], jobs: int, rounds: int) -> float:
    """Jobs per second of the fastest of ``rounds`` runs, each in a fresh event loop."""
    return max(jobs / asyncio.run(bench(jobs)) for _ in range(rounds))


def main() -> None:
    """Run every benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="profile one memory-driver run and print the top")
    args = parser.parse_args()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(memory_driver(10)(args.jobs))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    bare = best_rate(bare_loop, args.jobs, args.rounds)
    rows = [("bare asyncio.Queue + json round trip", bare)]
    for concurrency in (1, 10):
        rows.append((f"memory driver, concurrency {concurrency}", best_rate(memory_driver(concurrency), args.jobs,
                                                                           args.rounds)))
    print(f"{args.jobs} no-op jobs per run, best of {args.rounds} runs")
    print(f"{'':<40} {'jobs/s':>10} {'ratio':>7}")
    for name, rate in rows:
        print(f"{name:<40} {rate:>10,.0f} {rate / bare:>7.2f}")
    worst = min(rate for _, rate in rows[1:]) / bare
    print(f"target: memory driver >= 0.50 x bare loop: {'met' if worst >= 0.5 else 'MISSED'} (worst {worst:.2f})")


if __name__ == "__main__":
    main()
