"""Cost per job of the memory driver and of the bare loop, counted in ways a loaded machine does not disturb.

``memory_bench.py`` measures wall-clock jobs per second, which swings by 2x when other processes share the cores.
This script counts instead, on the same workloads (``memory_bench``'s bare loop and memory driver, all jobs pushed
before the worker takes any), plus ``bare-idle`` and ``memory-idle``: one job at a time, each finding the consumer
idle and waiting (the latency-bound case, where the cost of an idle wait counts per job):

- ``--calls``: Python and built-in function calls per job (cProfile's call counts; dataclass ``__init__``s all
  come from ``<string>`` line 2 and are merged into one entry by ``pstats``, so they are undercounted);
- ``--instructions``: CPU instructions per job, counted by ``valgrind --tool=callgrind`` (each workload runs in
  its own process under valgrind, at two sizes; the difference divided by the difference in jobs leaves out the
  interpreter's start, the imports and the app's boot). Needs ``valgrind`` on the PATH; slow (about 60x).

Both are repeatable to within about 1% from run to run, loaded or not. The instruction ratio (bare / driver) is what
the wall-clock ratio would be if every instruction cost the same; it tracks the wall-clock ratio of a quiet machine
but is not the same figure (cache misses and branch mispredictions differ between the two loops).

Run: ``.venv/bin/python benchmarks/memory_cost.py [--calls] [--instructions] [--jobs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import memory_bench
from memory_bench import QUEUE, bare_loop, memory_driver
from nestq_memory import MemoryBroker, MemoryQueueModule, MemoryQueueWorkerModule

from nestq_spec import Application, CancellationToken, JobProducer, module


async def bare_idle(jobs: int) -> float:
    """The bare loop one job at a time: push one, wait until the consumer handled it, push the next."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    handled = asyncio.Event()

    async def consume() -> None:
        while True:
            json.loads(await queue.get())["payload"]
            handled.set()

    consumer = asyncio.create_task(consume())
    start = time.perf_counter()
    for i in range(jobs):
        handled.clear()
        queue.put_nowait(json.dumps({"v": 1, "payload": {"n": i}}))
        await handled.wait()
    took = time.perf_counter() - start
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    return took


async def memory_idle(jobs: int) -> float:
    """The memory driver one job at a time: every job finds the worker idle, waiting for a push (latency-bound)."""
    run = memory_bench._Run

    @module(imports=[MemoryQueueModule.for_root({"concurrency": 1}, broker=MemoryBroker()),
                     MemoryQueueWorkerModule], providers=[memory_bench.Noop])
    class IdleApp:
        pass

    app = Application.create(IdleApp)
    producer = app.container.get(JobProducer)
    cancel = CancellationToken()
    serving = asyncio.create_task(app.serve(cancel))
    await asyncio.sleep(0)
    run.count = 0
    start = time.perf_counter()
    for i in range(jobs):
        run.jobs, run.done = i + 1, asyncio.Event()
        await producer.push_json(QUEUE, {"n": i})
        await run.done.wait()
    took = time.perf_counter() - start
    cancel.cancel()
    await serving
    return took


WORKLOADS: dict[str, Callable[[int], Coroutine[Any, Any, float]]] = {
    "bare": bare_loop,
    "memory-c1": memory_driver(1),
    "memory-c10": memory_driver(10),
    "bare-idle": bare_idle,
    "memory-idle": memory_idle,
}


def run_once(name: str, jobs: int) -> None:
    """Run ``jobs`` jobs of one workload (after a small warm-up run, so that lazy set-up is not counted)."""
    asyncio.run(WORKLOADS[name](100))
    asyncio.run(WORKLOADS[name](jobs))


def calls_per_job(name: str, jobs: int) -> tuple[float, list[tuple[float, str]]]:
    """Function calls per job of one workload (two sizes, differenced), and the most called functions."""

    def count(n: int) -> pstats.Stats:
        asyncio.run(WORKLOADS[name](100))
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(WORKLOADS[name](n))
        profiler.disable()
        return pstats.Stats(profiler)

    small, large = count(jobs // 4), count(jobs)
    span = jobs - jobs // 4

    def calls(stats: pstats.Stats) -> dict[str, int]:
        return {f"{Path(f).name}:{line}({fn})": v[1] for (f, line, fn), v in stats.stats.items()}  # type: ignore[attr-defined]

    a, b = calls(small), calls(large)
    per = sorted(((b[k] - a.get(k, 0)) / span, k) for k in b)
    per = [(n, k) for n, k in per if n >= 0.01]
    return sum(n for n, _ in per), sorted(per, reverse=True)


def instructions(name: str, jobs: int) -> int:
    """Instructions callgrind counts for one process running ``jobs`` jobs of one workload."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", sys.executable, __file__,
             "--child", name, "--jobs", str(jobs)],
            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=True,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr}")
    return int(found.group(1))


def main() -> None:
    """Print the counts asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8000)
    parser.add_argument("--calls", action="store_true", help="function calls per job (cProfile)")
    parser.add_argument("--instructions", action="store_true", help="instructions per job (valgrind callgrind)")
    parser.add_argument("--top", type=int, default=0, help="with --calls: list the N most called functions")
    parser.add_argument("--only", nargs="+", choices=list(WORKLOADS), help="these workloads only (default: all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_once(args.child, args.jobs)
        return
    if not (args.calls or args.instructions):
        args.calls = args.instructions = True
    names = args.only or list(WORKLOADS)
    import nestq_memory

    import nestq_spec

    print(f"code under test: {Path(nestq_spec.__file__).parent}, {Path(nestq_memory.__file__).parent}")
    if args.calls:
        print(f"function calls per job ({args.jobs} jobs minus {args.jobs // 4}, cProfile)")
        for name in names:
            total, top = calls_per_job(name, args.jobs)
            print(f"  {name:<12} {total:8.1f}")
            for n, where in top[: args.top]:
                print(f"      {n:6.2f} {where}")
    if args.instructions:
        if shutil.which("valgrind") is None:
            sys.exit("--instructions needs valgrind on the PATH")
        small = args.jobs // 4
        print(f"instructions per job ({args.jobs} jobs minus {small}, valgrind --tool=callgrind)")
        per = {}
        for name in names:
            per[name] = (instructions(name, args.jobs) - instructions(name, small)) / (args.jobs - small)
            bare = "bare-idle" if name.endswith("-idle") else "bare"
            ratio = f"   {bare}/this {per[bare] / per[name]:5.2f}" if bare in per else ""
            print(f"  {name:<12} {per[name]:10,.0f}{ratio}", flush=True)


if __name__ == "__main__":
    main()
