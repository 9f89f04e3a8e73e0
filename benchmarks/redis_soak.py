"""Soak the Redis driver: N jobs through 4 worker processes while workers are SIGKILLed and restarted and the link
to Redis drops, then count what happened to every job.

Everything runs against a private ``redis-server`` (AOF, fsync always) on a free port. Workers and the producer
reach it through a TCP proxy that this script cuts (every open connection closed, new ones refused) for a short
while, again and again; workers record each completed run over a separate, direct connection. The producer
pushes batches with ``push_many_json`` and, on a ``PushBatchError``, retries with the error's batch id.

Printed: pushed / run (distinct jobs completed) / lost (pushed, never completed, not dead-lettered) / duplicated
(jobs completed more than once: the at-least-once cost of SIGKILLs) / dead-lettered, and the chaos applied.
Target (issue 13): 50,000 jobs end with 0 lost and 0 dead-lettered.

Run: ``.venv/bin/python benchmarks/redis_soak.py [--jobs 50000] [--push-rate 2000] [--kill-every 1.5]
[--drop-every 2.0] [--drop-for 0.3] [--work 0.001] [--timeout 600]``. Exit code 0 when nothing was lost or
dead-lettered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from nestq_redis import RedisConnection, load_config
from nestq_redis.server import LinkProxy, RedisServer
from nestq_redis.store import PushBatchError
from redis.exceptions import RedisError

HERE = Path(__file__).resolve().parent
WORKERS = 4
BATCH = 1000


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nestq_spec.cli", "run", "redis_soak_app:SoakApp", "--shutdown-timeout", "30"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=HERE,
        )


async def push_all(conn: RedisConnection, queue: str, jobs: int, work: float, rate: float,
                   stats: dict[str, int]) -> None:
    started = time.monotonic()
    for start in range(0, jobs, BATCH):
        # Paced (a timer, not a synchronisation), so that the link drops also hit the producer mid-batch.
        await asyncio.sleep(max(0.0, started + start / rate - time.monotonic()))
        payloads = [{"n": n, "work": work} for n in range(start, min(jobs, start + BATCH))]
        batch_id: str | None = None
        while True:
            try:
                await conn.push_many_json(queue, payloads, batch_id=batch_id)
                break
            except PushBatchError as exc:
                batch_id = exc.batch_id  # the same batch again: chunks already stored are not stored twice
                stats["push_retries"] += 1
            except (RedisError, OSError):
                stats["push_retries"] += 1  # failed before the batch got an id: nothing stored
            await asyncio.sleep(0.05)
        stats["pushed"] = min(jobs, start + BATCH)


async def soak(args: argparse.Namespace) -> int:
    queue = f"soak-{uuid.uuid4().hex[:6]}"
    prefix = f"soak-{uuid.uuid4().hex[:6]}"
    results = f"{prefix}:results"
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"nestq-soak-{prefix}"
    logs.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    stats = {"pushed": 0, "push_retries": 0, "kills": 0, "drops": 0}
    with RedisServer() as server:
        async with LinkProxy(server.port) as proxy:
            settings = {"url": proxy.url, "key_prefix": prefix, "visibility_timeout": 3.0, "poll_timeout": 0.5,
                        "concurrency": 16, "claim_batch": 16, "shutdown_grace": 2.0}
            env = dict(os.environ)
            env.update({f"NESTQ_REDIS__{k.upper()}": str(v) for k, v in settings.items()})
            env.update({"NESTQ_SOAK_QUEUE": queue, "NESTQ_SOAK_RESULTS": results,
                        "NESTQ_SOAK_RESULTS_URL": server.url,
                        "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)})
            workers = [spawn(env, logs / f"worker-{i}.log") for i in range(WORKERS)]
            producer = RedisConnection(load_config({"url": proxy.url, "key_prefix": prefix}, env={}))
            direct = RedisConnection(load_config({"url": server.url, "key_prefix": prefix}, env={}))
            started = time.monotonic()
            pushing = asyncio.create_task(push_all(producer, queue, args.jobs, args.work, args.push_rate, stats))
            next_kill = started + args.kill_every
            next_drop = started + args.drop_every / 2
            outcome = "timed out"
            try:
                while time.monotonic() - started < args.timeout:
                    await asyncio.sleep(0.05)
                    now = time.monotonic()
                    if now >= next_kill and args.kill_every > 0 and stats["kills"] < args.kills:
                        victim = rng.randrange(WORKERS)
                        workers[victim].send_signal(signal.SIGKILL)
                        workers[victim].wait()
                        workers[victim] = spawn(env, logs / f"worker-{victim}.log")
                        stats["kills"] += 1
                        next_kill = now + args.kill_every
                    if now >= next_drop and args.drop_every > 0 and stats["drops"] < args.drops:
                        proxy.cut()
                        stats["drops"] += 1
                        await asyncio.sleep(args.drop_for)
                        proxy.restore()
                        next_drop = time.monotonic() + args.drop_every
                    if pushing.done():
                        pushing.result()
                        depth = await direct.store.depth(queue)
                        if depth.ready == depth.delayed == depth.leased == 0:
                            outcome = "drained"
                            break
            finally:
                took = time.monotonic() - started
                for proc in workers:
                    proc.send_signal(signal.SIGTERM)
                for proc in workers:
                    try:
                        proc.wait(40)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                if not pushing.done():
                    pushing.cancel()
                    await asyncio.gather(pushing, return_exceptions=True)
            counts = {int(k): int(v) for k, v in (await direct.client.hgetall(results)).items()}
            depth = await direct.store.depth(queue)
            dead_ids = {d.id for d in await direct.admin.dead_letters(queue, limit=100_000)}
            await producer.aclose()
            await direct.aclose()
    pushed = stats["pushed"]
    ran = len(counts)
    duplicated = sum(1 for c in counts.values() if c > 1)
    lost = pushed - ran - len(dead_ids)
    print(f"redis soak: {args.jobs:,} jobs, {WORKERS} worker processes, {outcome} after {took:.1f}s")
    print(f"  chaos: {stats['kills']} SIGKILLs (each worker restarted), {stats['drops']} link drops of "
          f"{args.drop_for}s, {stats['push_retries']} producer retries")
    print(f"  pushed {pushed:,} / run {ran:,} / lost {lost:,} / duplicated {duplicated:,} / dead-lettered "
          f"{len(dead_ids):,}  (left pending: ready {depth.ready}, delayed {depth.delayed}, leased {depth.leased})")
    print(f"  worker logs: {logs}")
    return 0 if lost == 0 and not dead_ids and outcome == "drained" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--work", type=float, default=0.001, help="seconds each job sleeps")
    parser.add_argument("--push-rate", type=float, default=2000.0, help="jobs pushed per second (in batches of 1,000)")
    parser.add_argument("--kill-every", type=float, default=1.5, help="seconds between SIGKILLs of a worker")
    parser.add_argument("--kills", type=int, default=10, help="most SIGKILLs")
    parser.add_argument("--drop-every", type=float, default=2.0, help="seconds between link drops")
    parser.add_argument("--drops", type=int, default=10, help="most link drops")
    parser.add_argument("--drop-for", type=float, default=0.3, help="seconds the link stays down each time")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=13)
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
