"""End-to-end throughput of the Redis driver on a Redis Cluster next to a single Redis, in the same run (issue 20).

Starts a private ``redis-server`` and a private 3-master + 3-replica cluster (both AOF, fsync always, on free
ports). Each round starts 2 worker processes (``redis_cluster_bench_app``: 8 queues, a no-op handler each),
warms them up with one job per queue, then pushes ``--jobs`` jobs spread evenly over the 8 queues (batch pushes
from this process, 8 producers at once) and times from the first push until every queue is drained (every job
acked). Configurations run interleaved (single, cluster, cluster with ``wait_replicas=1``, then again), so the
load of other processes on the machine falls on all of them alike; per-round figures, the medians and the ratios
to the single server are printed, with the load average before and after.

Run: ``.venv/bin/python benchmarks/redis_cluster_bench.py [--jobs 20000] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from nestq_redis import RedisConnection, load_config
from nestq_redis.server import PrivateRedisCluster, RedisServer

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from redis_cluster_bench_app import QUEUES  # noqa: E402

WORKERS = 2
CHUNK = 1000


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nestq_spec.cli", "run", "redis_cluster_bench_app:BenchApp", "--shutdown-timeout",
             "30"], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=HERE,
        )


async def drained(conn: RedisConnection, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        pending = [(await conn.admin.queue(q)).pending for q in QUEUES]
        if not any(pending):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within}s waiting for the queues to drain: pending {pending}")
        # A poll, not a synchronisation: 8 depth scripts every 50 ms weigh little next to the workers' traffic.
        await asyncio.sleep(0.05)


async def one_round(url: str, jobs: int, settings: dict[str, object], log: Path) -> float:
    prefix = f"nqbench-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update({"NESTQ_REDIS__URL": url, "NESTQ_REDIS__KEY_PREFIX": prefix,
                "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)})
    env.update({f"NESTQ_REDIS__{k.upper()}": str(v) for k, v in settings.items()})
    conn = RedisConnection(load_config({"url": url, "key_prefix": prefix, **settings}))
    workers = [spawn(env, log) for _ in range(WORKERS)]
    try:
        # Warm-up: both workers up, scripts loaded, one job per queue through.
        for queue in QUEUES:
            await conn.push_json(queue, {"warm": True})
        await drained(conn, 60)
        per_queue = jobs // len(QUEUES)

        async def produce(queue: str) -> None:
            for start in range(0, per_queue, CHUNK):
                await conn.push_many_json(queue, [{"n": n} for n in range(start, min(per_queue, start + CHUNK))])

        started = time.perf_counter()
        await asyncio.gather(*(produce(q) for q in QUEUES))
        await drained(conn, 600)
        elapsed = time.perf_counter() - started
        return per_queue * len(QUEUES) / elapsed
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(60)
        await conn.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per round, spread over the 8 queues")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration (interleaved)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    log = Path(f"/tmp/nestq-cluster-bench-{uuid.uuid4().hex[:6]}.log")
    with RedisServer() as single, PrivateRedisCluster() as cluster:
        configs = {
            "single redis-server": (single.url, {}),
            "cluster 3+3": (cluster.url, {}),
            "cluster 3+3, wait_replicas=1": (cluster.url, {"wait_replicas": 1}),
        }
        masters = {cluster.master_of(f"x:{{{q}}}:jobs").port for q in QUEUES}
        print(f"{args.jobs} jobs per round over {len(QUEUES)} queues ({len(masters)} cluster masters hold them), "
              f"{WORKERS} worker processes; load average before {load_before[0]:.2f} {load_before[1]:.2f}")
        figures: dict[str, list[float]] = {name: [] for name in configs}
        for rnd in range(args.rounds):
            for name, (url, settings) in configs.items():
                rate = await one_round(url, args.jobs, settings, log)
                figures[name].append(rate)
                print(f"round {rnd + 1}  {name:<30} {rate:8.0f} jobs/s  (load {os.getloadavg()[0]:.2f})",
                      flush=True)
    base = statistics.median(figures["single redis-server"])
    print(f"\n{'configuration':<30} {'per round (jobs/s)':<28} {'median':>8} {'ratio':>7}")
    for name, rates in figures.items():
        median = statistics.median(rates)
        shown = ", ".join(f"{r:.0f}" for r in rates)
        print(f"{name:<30} {shown:<28} {median:8.0f} {median / base:6.2f}x")
    load_after = os.getloadavg()
    print(f"load average after {load_after[0]:.2f} {load_after[1]:.2f}; worker logs in {log}")


if __name__ == "__main__":
    asyncio.run(main())
