#!/usr/bin/env python3
"""nestq-rabbitmq against dramatiq's RabbitmqBroker and taskiq-aio-pika, on one broker, in one run.

Per peer, in a virtual host of its own (made and deleted with ``rabbitmqctl``; else the URL's own vhost):

1. enqueue: N no-op jobs, one library call per job, each confirmed by the broker (nestq ``push_json``; dramatiq
   ``send()`` with ``confirm_delivery=True``; taskiq ``kiq()``, which aio-pika publishes with confirms);
2. batched enqueue: N jobs in one library call where there is one (nestq ``push_many_json``; taskiq: ``kiq()``
   calls gathered 500 at a time; dramatiq: none, ``n/a``);
3. end-to-end: ONE worker process at concurrency 10 (nestq ``concurrency=10``; dramatiq ``--processes 1
   --threads 10``; taskiq ``--workers 1 --max-async-tasks 10``) started on the jobs steps 1 and 2 left waiting
   (2N, or N without a batch push): jobs / (worker start -> last job done), start-up included; and the steady
   rate from the first job done to the last;
4. idle p50: the worker idle, 50 jobs pushed 50 ms apart; the median push-to-handler latency;
5. worker CPU per job: user + system CPU time of the worker process and its children (``/proc``, Linux) from the
   first job done to the last of step 3, per job. Wall-clock rates on a shared machine follow the load; this one
   much less (it still counts cache misses and the CPU's clock under load), so it is the figure to compare there.

Each job appends one line to a file; the bench polls its line count against a deadline. Peers are benchmark-only
dependencies, in a venv of their own:

    python3 -m venv /tmp/rmqbench
    /tmp/rmqbench/bin/pip install -e 'reference_drivers/nestq-rabbitmq[bench]'   # nestq comes with it
    /tmp/rmqbench/bin/python benchmarks/rabbitmq_bench.py [--n 2000] [--peers nestq,dramatiq,taskiq]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "rabbitmq"
BIN = Path(sys.executable).parent
BASE_URL = os.environ.get("NESTQ_RABBITMQ__URL", "amqp://guest:guest@127.0.0.1:5672/")


def ctl(*args: str) -> bool:
    """Run rabbitmqctl quietly; whether it worked."""
    binary = shutil.which("rabbitmqctl")
    if binary is None:
        return False
    return subprocess.run([binary, "-q", *args], capture_output=True, timeout=60, check=False).returncode == 0


def tree_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of process ``pid`` and its descendants so far; None without ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    try:
        while todo:
            current = todo.pop()
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    except (OSError, ValueError, IndexError):
        return None
    return total


def lines(path: Path) -> list[str]:
    """The result lines written so far."""
    return path.read_text().split() if path.exists() else []


class Peer:
    """One queue library: enqueue calls in this process, a worker command in another."""

    name = ""

    def __init__(self, url: str, queue: str) -> None:
        self.url, self.queue = url, queue

    async def enqueue(self, n: int) -> float:
        """Seconds N single pushes took."""
        raise NotImplementedError

    async def enqueue_batch(self, n: int) -> float | None:
        """Seconds N pushes in batches took, or None when the library has no batch push."""
        return None

    async def close(self) -> None:
        """Close the producer side."""

    def worker(self) -> list[str]:
        """The worker command."""
        raise NotImplementedError


class Nestq(Peer):
    name = "nestq"

    async def _conn(self) -> Any:
        from nestq_rabbitmq import RabbitmqConnection
        from nestq_rabbitmq.config import load_config

        if not hasattr(self, "conn"):
            self.conn = RabbitmqConnection(load_config({"url": self.url}))  # NESTQ_RABBITMQ__* as the worker
        return self.conn

    async def enqueue(self, n: int) -> float:
        conn = await self._conn()
        await conn.declare(self.queue)
        began = time.perf_counter()
        for _ in range(n):
            await conn.push_json(self.queue, {"t": time.time()})
        return time.perf_counter() - began

    async def enqueue_batch(self, n: int) -> float | None:
        conn = await self._conn()
        began = time.perf_counter()
        await conn.push_many_json(self.queue, [{"t": time.time()} for _ in range(n)])
        return time.perf_counter() - began

    async def push_one(self) -> None:
        await (await self._conn()).push_json(self.queue, {"t": time.time()})

    async def close(self) -> None:
        if hasattr(self, "conn"):
            await self.conn.aclose()

    def worker(self) -> list[str]:
        return [str(BIN / "nestq"), "run", "apps:NestqApp"]


class Dramatiq(Peer):
    name = "dramatiq"

    def _actor(self) -> Any:
        import apps

        return apps.noop

    async def enqueue(self, n: int) -> float:
        actor = self._actor()
        began = time.perf_counter()
        for _ in range(n):
            actor.send(time.time())
        return time.perf_counter() - began

    async def push_one(self) -> None:
        self._actor().send(time.time())

    async def close(self) -> None:
        import apps

        apps.dramatiq_broker.close()

    def worker(self) -> list[str]:
        return [str(BIN / "dramatiq"), "apps", "--processes", "1", "--threads", "10"]


class Taskiq(Peer):
    name = "taskiq"

    async def _task(self) -> Any:
        import apps

        if not getattr(self, "started", False):
            await apps.taskiq_broker.startup()
            self.started = True
        return apps.taskiq_noop

    async def enqueue(self, n: int) -> float:
        task = await self._task()
        began = time.perf_counter()
        for _ in range(n):
            await task.kiq(time.time())
        return time.perf_counter() - began

    async def enqueue_batch(self, n: int) -> float | None:
        task = await self._task()
        began = time.perf_counter()
        for start in range(0, n, 500):
            await asyncio.gather(*(task.kiq(time.time()) for _ in range(min(500, n - start))))
        return time.perf_counter() - began

    async def push_one(self) -> None:
        await (await self._task()).kiq(time.time())

    async def close(self) -> None:
        import apps

        if getattr(self, "started", False):
            await apps.taskiq_broker.shutdown()

    def worker(self) -> list[str]:
        return [str(BIN / "taskiq"), "worker", "apps:taskiq_broker", "--workers", "1", "--max-async-tasks", "10"]


class NestqPrefetch20(Nestq):
    """nestq with ``prefetch=20`` (twice the concurrency, like dramatiq's default) instead of the concurrency."""

    name = "nestq-p20"

    def worker(self) -> list[str]:
        os.environ["NQB_PREFETCH"] = "20"
        return super().worker()


PEERS = {p.name: p for p in (Nestq, NestqPrefetch20, Dramatiq, Taskiq)}


async def _until(path: Path, count: int, within: float, what: str) -> float:
    deadline = time.monotonic() + within
    while len(lines(path)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: {len(lines(path))} of {count} jobs done after {within:.0f}s")
        await asyncio.sleep(0.01)
    return time.perf_counter()


async def measure(name: str, n: int, url: str, folder: Path) -> dict[str, Any]:
    """Enqueue, batched enqueue, end-to-end and idle p50 of one peer."""
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    results = folder / f"{name}-{queue}.txt"
    os.environ.update(NQB_PEER=name, NQB_URL=url, NQB_QUEUE=queue, NQB_RESULTS=str(results))
    sys.path.insert(0, str(HERE))  # apps.py defines the peer NQB_PEER names (one peer per bench process)
    peer = PEERS[name](url, queue)
    out: dict[str, Any] = {"peer": name}
    proc: subprocess.Popen[bytes] | None = None
    try:
        out["enqueue"] = n / await peer.enqueue(n)
        batch = await peer.enqueue_batch(n)
        out["batched"] = n / batch if batch else None
        total = 2 * n if batch else n
        began = time.perf_counter()
        # Started once, on purpose inside the timed span: start-up is part of end-to-end.
        command = peer.worker()
        environ = dict(os.environ, PYTHONPATH=str(HERE))
        proc = subprocess.Popen(command, cwd=HERE, env=environ, stdout=subprocess.DEVNULL,  # noqa: ASYNC220
                                stderr=subprocess.DEVNULL)
        first = await _until(results, 1, 60, f"{name}: first job")
        cpu_first = tree_cpu(proc.pid)
        done = await _until(results, total, 300, f"{name}: end-to-end")
        cpu_done = tree_cpu(proc.pid)
        ran = len(lines(results)) - 1  # a job or two more may have finished since `first`
        out["cpu_us"] = (cpu_done - cpu_first) / ran * 1e6 if cpu_first is not None and cpu_done is not None else None
        out["end_to_end"] = total / (done - began)
        out["steady"] = (total - 1) / (done - first) if done > first else None
        latencies = []
        for i in range(50):
            await peer.push_one()
            await _until(results, total + i + 1, 30, f"{name}: idle job {i}")
            latencies.append(float(lines(results)[-1]))
            await asyncio.sleep(0.05)
        out["idle_p50_ms"] = statistics.median(latencies) * 1000
        out["load"] = os.getloadavg()[0]
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await peer.close()
    return out


def _fmt(value: float | None, unit: str = "/s") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}{unit}" if unit in ("/s", " us") else f"{value:.1f} ms"


def main() -> int:
    """Run every peer once, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="jobs per measurement (default 2000)")
    parser.add_argument("--peers", default="nestq,dramatiq,taskiq")
    parser.add_argument("--rounds", type=int, default=1, help="every peer once per round; each round is a row")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one peer in this process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(measure(args.one, args.n, args.url, Path(args.dir)))))
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="nqbench-") as tmp:
        for name in [p for _ in range(args.rounds) for p in args.peers.split(",")]:
            vhost = f"nqbench-{uuid.uuid4().hex[:8]}"
            url = BASE_URL
            if ctl("add_vhost", vhost) and ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"):
                url = BASE_URL.rstrip("/") + "/" + vhost
            try:
                # A process per measurement: each peer's app module is imported fresh, nothing shared.
                done = subprocess.run([sys.executable, __file__, "--one", name, "--n", str(args.n), "--url", url,
                                       "--dir", tmp], capture_output=True, text=True, timeout=900, check=False)
                if done.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            finally:
                ctl("delete_vhost", vhost)
            print(f"done: {rows[-1]}", file=sys.stderr)
    print(f"\nRabbitMQ at {BASE_URL.split('@')[-1]}, N={args.n}, one worker process at concurrency 10, "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print(f"{'peer':<10} {'enqueue':>10} {'batched':>10} {'end-to-end':>11} {'steady':>10} {'idle p50':>9} "
          f"{'CPU/job':>8} {'load':>5}")
    for r in rows:
        print(f"{r['peer']:<10} {_fmt(r['enqueue']):>10} {_fmt(r['batched']):>10} {_fmt(r['end_to_end']):>11} "
              f"{_fmt(r['steady']):>10} {_fmt(r['idle_p50_ms'], 'ms'):>9} {_fmt(r.get('cpu_us'), ' us'):>8} "
              f"{r.get('load', 0):>5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
