"""nestq-postgres against procrastinate and pgqueuer, on one PostgreSQL server, in one run.

For each peer (its own database on the same private cluster, fsync on): single-call enqueue (jobs/s, one awaited
call per job), batched enqueue (batches of 100), end-to-end (one worker process at concurrency 10 already
idle; N jobs pushed in batches; the clock stops when every job has run), and idle latency (the worker idle, one
job pushed, the handler's ``NOTIFY`` seen: p50 and p90 of ``--probes`` pushes). Workers run with their own CLIs:
``nestq run``, ``procrastinate worker``, ``pgq run``. Handlers are no-ops.

The peers are benchmark-only dependencies, in a venv of their own (never the project's ``.venv``)::

    python3 -m venv benchmarks/.venv-pg
    benchmarks/.venv-pg/bin/pip install 'reference_drivers/nestq-postgres[bench]'
    benchmarks/.venv-pg/bin/python benchmarks/postgres_peers.py [--n 3000] [--probes 30] \
        [--peers nestq,procrastinate,pgqueuer]
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


class Procrastinate(Peer):
    name = "procrastinate"

    async def setup(self) -> None:
        os.environ["BENCH_DSN"] = self.dsn
        sys.path.insert(0, str(HERE))
        import procrastinate_app

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


PEERS: dict[str, type[Peer]] = {"nestq": Nestq, "procrastinate": Procrastinate, "pgqueuer": Pgqueuer}


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
    env = dict(os.environ, BENCH_DSN=dsn, PYTHONPATH=str(HERE), **peer.worker_env())
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
        latencies = []
        for k in range(probes):
            await asyncio.sleep(0.3)  # let the worker go idle (back to its wait) before each probe
            started = time.perf_counter()
            await peer.push(1_000_000 + k, notify=True)
            while (await asyncio.wait_for(seen.get(), 30)) != str(1_000_000 + k):
                pass
            latencies.append((time.perf_counter() - started) * 1000)
        figures["idle_p50_ms"] = statistics.median(latencies)
        figures["idle_p90_ms"] = statistics.quantiles(latencies, n=10)[-1]
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


async def main_async(args: argparse.Namespace) -> int:
    server = PostgresServer(fsync=True).start()
    try:
        admin = await asyncpg.connect(server.dsn)
        for name in args.peers:
            await admin.execute(f"CREATE DATABASE bench_{name}")
        server_version = await admin.fetchval("SHOW server_version")
        await admin.close()
        results: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory(prefix="nestq-pg-bench-") as logdir:
            for name in args.peers:
                dsn = server.dsn.rsplit("/", 1)[0] + f"/bench_{name}"
                print(f"measuring {name} ...", flush=True)
                try:
                    results[name] = await measure(PEERS[name](dsn), dsn, args.n, args.probes, Path(logdir))
                except Exception:
                    for log in Path(logdir).glob("*.log"):  # noqa: ASYNC240 - after the run, on failure
                        print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
                    raise
    finally:
        server.stop()
    versions = {"nestq": "nestq-postgres", "procrastinate": "procrastinate", "pgqueuer": "pgqueuer"}
    print(f"\nPostgreSQL {server_version} (private cluster, fsync on), N={args.n}, one worker process at "
          "concurrency 10, no-op jobs; " + ", ".join(f"{versions[p]} {version(versions[p])}" for p in args.peers))
    print(f"{'peer':<16}{'enqueue 1/call':>16}{'enqueue batch':>16}{'end-to-end':>14}{'idle p50':>11}{'idle p90':>11}")
    for name, f in results.items():
        print(f"{PEERS[name].name:<16}{f['enqueue_single']:>12.0f} j/s{f['enqueue_batch']:>12.0f} j/s"
              f"{f['end_to_end']:>10.0f} j/s{f['idle_p50_ms']:>8.1f} ms{f['idle_p90_ms']:>8.1f} ms")
    if "nestq" in results:
        others = [results[p]["end_to_end"] for p in results if p != "nestq"]
        if others:
            print(f"nestq-postgres end-to-end / best peer: {results['nestq']['end_to_end'] / max(others):.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))  # noqa: ASYNC240 - after the run
    return 0


def main() -> int:
    """Parse the options and run the peers one after the other on one server."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="jobs per measurement (a multiple of 100)")
    parser.add_argument("--probes", type=int, default=30, help="idle latency probes per peer")
    parser.add_argument("--peers", default="nestq,procrastinate,pgqueuer")
    parser.add_argument("--json", default=None, help="also write the figures as JSON to this path")
    args = parser.parse_args()
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peers {unknown}; known: {sorted(PEERS)}")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
