"""nestq-postgres against procrastinate and pgqueuer, on one PostgreSQL server, in one run.

For each peer (its own database on the same private cluster, fsync on): single-call enqueue (jobs/s, one awaited
call per job), batched enqueue (batches of 100), end-to-end (one worker process at concurrency 10 already
idle; N jobs pushed in batches; the clock stops when every job has run), and idle latency (the worker idle, one
job pushed: the time from just before the push call to the start of its handler, p50 and p90 of ``--probes``
pushes; "pickup p50" is from the push call's return instead, which leaves out the push's own commit). The handler
reads the wall clock first thing (one machine, one clock) and only then reports it with a ``NOTIFY``, so the
report's own round trip is not in the figure. Workers run with their own CLIs: ``nestq run``, ``procrastinate
worker``, ``pgq run``. Handlers are no-ops.

``--rounds R`` measures every peer R times, interleaved (A, B, C, A, B, C, ...: the load of a shared machine
drifts), each round on fresh databases; it prints every round's figures and the median of each.

The peers are benchmark-only dependencies, in a venv of their own (never the project's ``.venv``)::

    python3 -m venv benchmarks/.venv-pg
    benchmarks/.venv-pg/bin/pip install 'reference_drivers/nestq-postgres[bench]'
    benchmarks/.venv-pg/bin/python benchmarks/postgres_peers.py [--n 3000] [--probes 30] \
        [--peers nestq,procrastinate,pgqueuer] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
from nestq_postgres import PostgresConnection, load_config
from nestq_postgres.server import PostgresServer

HERE = Path(__file__).resolve().parent / "postgres_peers"
BIN = Path(sys.executable).parent
BATCH = 100


class Peer:
    """One queue library: how to set it up, enqueue, start its worker, and count what is left."""

    name = ""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def setup(self) -> None: ...
    async def push(self, n: int, notify: bool = False) -> None: ...
    async def push_batch(self, ns: list[int]) -> None: ...
    async def remaining(self, conn: Any) -> int: return 0
    def worker_cmd(self) -> list[str]: return []
    def worker_env(self) -> dict[str, str]: return {}
    async def close(self) -> None: ...


class Nestq(Peer):
    name = "nestq-postgres"

    async def setup(self) -> None:
        self.conn = PostgresConnection(load_config({"dsn": self.dsn, "schema": "nestq", "migrate": True}, env={}))
        await self.conn.client()

    async def push(self, n: int, notify: bool = False) -> None:
        await self.conn.push_json("bench", {"n": n, "notify": notify})

    async def push_batch(self, ns: list[int]) -> None:
        await self.conn.push_many("bench", [{"n": n} for n in ns])

    async def remaining(self, conn: Any) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM nestq.jobs"))

    def worker_cmd(self) -> list[str]:
        return [str(BIN / "nestq"), "run", "nestq_app:App"]

    def worker_env(self) -> dict[str, str]:
        return {"NESTQ_POSTGRES__DSN": self.dsn, "NESTQ_POSTGRES__SCHEMA": "nestq",
                "NESTQ_POSTGRES__CONCURRENCY": "10"}

    async def close(self) -> None:
        await self.conn.aclose()


class NestqBaseline(Nestq):
    """nestq-postgres with its worker run from another source tree (``--baseline-src``): a before/after in one run.

    Only the worker process runs the baseline (``nestq_spec`` and ``nestq_postgres`` of that tree first on its
    path); pushes go through this checkout's producer, which writes the same rows.
    """

    name = "nestq-postgres@base"
    src = ""

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "PYTHONPATH": os.pathsep.join([self.src, str(HERE)])}


class Procrastinate(Peer):
    name = "procrastinate"

    async def setup(self) -> None:
        os.environ["BENCH_DSN"] = self.dsn
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        import importlib

        import procrastinate_app

        # Its App reads BENCH_DSN at import: reloaded, so that each round gets its own database.
        procrastinate_app = importlib.reload(procrastinate_app)
        self.app = procrastinate_app.app
        self.task = procrastinate_app.bench
        await self.app.open_async()
        await self.app.schema_manager.apply_schema_async()

    async def push(self, n: int, notify: bool = False) -> None:
        await self.task.defer_async(n=n, notify=notify)

    async def push_batch(self, ns: list[int]) -> None:
        await self.task.batch_defer_async(*({"n": n} for n in ns))

    async def remaining(self, conn: Any) -> int:
        return int(await conn.fetchval(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"))

    def worker_cmd(self) -> list[str]:
        return [str(BIN / "procrastinate"), "--app=procrastinate_app.app", "worker", "--concurrency", "10",
                "--queues", "bench"]

    async def close(self) -> None:
        await self.app.close_async()


class Pgqueuer(Peer):
    name = "pgqueuer"

    async def setup(self) -> None:
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        self.raw = await asyncpg.connect(self.dsn)
        self.queries = Queries(AsyncpgDriver(self.raw))
        await self.queries.install()

    async def push(self, n: int, notify: bool = False) -> None:
        await self.queries.enqueue("bench", json.dumps({"n": n, "notify": notify}).encode())

    async def push_batch(self, ns: list[int]) -> None:
        await self.queries.enqueue(["bench"] * len(ns), [json.dumps({"n": n}).encode() for n in ns], [0] * len(ns))

    async def remaining(self, conn: Any) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM pgqueuer"))

    def worker_cmd(self) -> list[str]:
        # pgq_cli.py is pgqueuer's `pgq` with a shim for its log-level option (see that file).
        return [sys.executable, "pgq_cli.py", "run", "pgqueuer_app:main", "--max-concurrent-tasks", "10",
                "--batch-size", "5", "--log-level", "WARNING"]  # pgq: max tasks >= 2 x batch

    async def close(self) -> None:
        await self.raw.close()


PEERS: dict[str, type[Peer]] = {"nestq": Nestq, "procrastinate": Procrastinate, "pgqueuer": Pgqueuer,
                                 "base": NestqBaseline}


async def rate(n: int, call: Callable[[int], Awaitable[None]]) -> float:
    """Jobs per second of ``n`` sequential calls."""
    started = time.perf_counter()
    for i in range(n):
        await call(i)
    return n / (time.perf_counter() - started)


async def wait_empty(peer: Peer, conn: Any, deadline: float, what: str) -> None:
    """Poll the peer's table until no job is left (a deadline, naming what was awaited)."""
    while await peer.remaining(conn) > 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{peer.name}: {what} not done before the deadline")
        await asyncio.sleep(0.01)


async def measure(peer: Peer, dsn: str, n: int, probes: int, logdir: Path) -> dict[str, float]:
    """The four figures of one peer."""
    await peer.setup()
    conn = await asyncpg.connect(dsn)
    figures: dict[str, float] = {}
    figures["enqueue_single"] = await rate(n, lambda i: peer.push(i))
    figures["enqueue_batch"] = await rate(n // BATCH, lambda i: peer.push_batch(
        list(range(i * BATCH, (i + 1) * BATCH)))) * BATCH
    env = {**os.environ, "BENCH_DSN": dsn, "PYTHONPATH": str(HERE), **peer.worker_env()}
    log = (logdir / f"{peer.name}.log").open("wb")
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, before the clock runs
        peer.worker_cmd(), cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        # The worker drains the 2n jobs enqueued above: that is its warm-up, and it proves it is serving.
        await wait_empty(peer, conn, time.monotonic() + 300, "draining the enqueue-phase jobs")
        started = time.perf_counter()
        for i in range(n // BATCH):
            await peer.push_batch(list(range(i * BATCH, (i + 1) * BATCH)))
        await wait_empty(peer, conn, time.monotonic() + 300, "the end-to-end run")
        figures["end_to_end"] = (n // BATCH * BATCH) / (time.perf_counter() - started)
        seen: asyncio.Queue[str] = asyncio.Queue()
        await conn.add_listener("bench_done", lambda *a: seen.put_nowait(a[3]))
        latencies, pickups = [], []
        for k in range(probes):
            await asyncio.sleep(0.3)  # let the worker go idle (back to its wait) before each probe
            sent = time.time()
            await peer.push(1_000_000 + k, notify=True)
            pushed = time.time()
            while True:
                n, started = (await asyncio.wait_for(seen.get(), 30)).split()
                if n == str(1_000_000 + k):
                    break
            latencies.append((float(started) - sent) * 1000)
            pickups.append((float(started) - pushed) * 1000)
        figures["idle_p50_ms"] = statistics.median(latencies)
        figures["idle_p90_ms"] = statistics.quantiles(latencies, n=10)[-1]
        figures["pickup_p50_ms"] = statistics.median(pickups)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        await conn.close()
        await peer.close()
    return figures


FIGURES = ("enqueue_single", "enqueue_batch", "end_to_end", "idle_p50_ms", "idle_p90_ms", "pickup_p50_ms")


def _row(name: str, f: dict[str, float]) -> str:
    return (f"{name:<30}{f['enqueue_single']:>12.0f} j/s{f['enqueue_batch']:>12.0f} j/s"
            f"{f['end_to_end']:>10.0f} j/s{f['idle_p50_ms']:>8.1f} ms{f['idle_p90_ms']:>8.1f} ms"
            f"{f['pickup_p50_ms']:>8.1f} ms")


async def main_async(args: argparse.Namespace) -> int:
    server = PostgresServer(fsync=True).start()
    rounds: list[dict[str, dict[str, float]]] = []
    try:
        admin = await asyncpg.connect(server.dsn)
        server_version = await admin.fetchval("SHOW server_version")
        with tempfile.TemporaryDirectory(prefix="nestq-pg-bench-") as logdir:
            for r in range(args.rounds):
                results: dict[str, dict[str, float]] = {}
                for name in args.peers:
                    # A fresh database per peer and round: each round starts from empty tables.
                    await admin.execute(f"CREATE DATABASE bench_{name}_{r}")
                    dsn = server.dsn.rsplit("/", 1)[0] + f"/bench_{name}_{r}"
                    print(f"round {r + 1}/{args.rounds}: measuring {name} ...", flush=True)
                    try:
                        results[name] = await measure(PEERS[name](dsn), dsn, args.n, args.probes, Path(logdir))
                    except Exception:
                        for log in Path(logdir).glob("*.log"):  # noqa: ASYNC240 - after the run, on failure
                            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
                        raise
                rounds.append(results)
        await admin.close()
    finally:
        server.stop()
    versions = {"nestq": "nestq-postgres", "procrastinate": "procrastinate", "pgqueuer": "pgqueuer",
                "base": "nestq-postgres"}
    print(f"\nPostgreSQL {server_version} (private cluster, fsync on), N={args.n}, one worker process at "
          "concurrency 10, no-op jobs; " + ", ".join(f"{versions[p]} {version(versions[p])}" for p in args.peers))
    print(f"{'peer':<30}{'enqueue 1/call':>16}{'enqueue batch':>16}{'end-to-end':>14}{'idle p50':>11}{'idle p90':>11}"
          f"{'pickup p50':>11}")
    for r, results in enumerate(rounds):
        for name, f in results.items():
            print(_row(f"{PEERS[name].name} (round {r + 1})", f))
    medians = {name: {k: statistics.median(res[name][k] for res in rounds) for k in FIGURES} for name in args.peers}
    for name, f in medians.items():
        print(_row(f"{PEERS[name].name} (median)", f))
    if "nestq" in medians:
        ratios = []
        for results in rounds:
            others = [results[p]["end_to_end"] for p in results if p not in ("nestq", "base")]
            if others:
                ratios.append(results["nestq"]["end_to_end"] / max(others))
        if ratios:
            print("nestq-postgres end-to-end / best peer, per round: "
                  + ", ".join(f"{x:.2f}x" for x in ratios) + f"; median {statistics.median(ratios):.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": rounds, "median": medians}, indent=2))  # noqa: ASYNC240
    return 0


def main() -> int:
    """Parse the options and run the peers one after the other on one server."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="jobs per measurement (a multiple of 100)")
    parser.add_argument("--probes", type=int, default=30, help="idle latency probes per peer")
    parser.add_argument("--peers", default="nestq,procrastinate,pgqueuer")
    parser.add_argument("--rounds", type=int, default=1, help="measure every peer this many times, interleaved")
    parser.add_argument("--baseline-src", default=None,
                        help="also measure peer 'base': the worker run from this directory holding nestq_spec and "
                        "nestq_postgres of another revision (e.g. from git archive)")
    parser.add_argument("--json", default=None, help="also write the figures as JSON to this path")
    args = parser.parse_args()
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if args.baseline_src:
        NestqBaseline.src = str(Path(args.baseline_src).resolve())
        if "base" not in args.peers:
            args.peers.insert(1 if "nestq" in args.peers else 0, "base")
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peers {unknown}; known: {sorted(PEERS)}")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
