"""Soak the Postgres driver: N jobs through worker processes that are SIGKILLed mid-job, while PostgreSQL restarts.

Runs against a private cluster (``initdb`` + ``pg_ctl``, a temp directory, a free port). Worker processes
(``nestq run soak_app:SoakApp``) record every completed run; the script SIGKILLs a random worker (and starts a new
one) ``--kills`` times, and restarts PostgreSQL (``pg_ctl stop -m immediate``, then start) ``--restarts`` times,
spread over the run. Then it counts: pushed / run (distinct jobs completed) / lost (pushed, never completed, not
dead-lettered) / duplicated (completed more than once: the at-least-once cost of kills) / dead-lettered.

Run: ``python benchmarks/soak.py [--jobs 2000] [--workers 3] [--kills 5] [--restarts 1] [--work 0.005]
[--timeout 300]`` from ``reference_drivers/nestq-postgres``. Exit code 0 when every job ran and none was lost
or dead-lettered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from nestq_postgres import PostgresConnection, load_config
from nestq_postgres.server import PostgresServer

HERE = Path(__file__).resolve().parent
SCHEMA = "soak"


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start one worker process (``nestq run soak_app:SoakApp``), its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nestq_spec.cli", "run", "soak_app:SoakApp", "--shutdown-timeout", "10"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=HERE,
        )


async def counts(dsn: str) -> tuple[int, int, int, int]:
    """(distinct jobs run, runs, jobs left in the table, dead letters)."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            f"SELECT (SELECT count(DISTINCT n) FROM {SCHEMA}.soak_runs) AS distinct_runs, "
            f"(SELECT count(*) FROM {SCHEMA}.soak_runs) AS runs, (SELECT count(*) FROM {SCHEMA}.jobs) AS left_, "
            f"(SELECT count(*) FROM {SCHEMA}.dead_letters) AS dead"
        )
        return int(row["distinct_runs"]), int(row["runs"]), int(row["left_"]), int(row["dead"])
    finally:
        await conn.close()


async def soak(args: argparse.Namespace, server: PostgresServer, logdir: Path) -> int:
    """Push, apply the chaos, wait for every job (bounded by ``--timeout``), print the counts; 0 when none lost."""
    env = dict(os.environ)
    env.update({
        "NESTQ_POSTGRES__DSN": server.dsn, "NESTQ_POSTGRES__SCHEMA": SCHEMA, "NESTQ_POSTGRES__CONCURRENCY": "10",
        "NESTQ_POSTGRES__VISIBILITY_TIMEOUT": "2", "NESTQ_POSTGRES__HEARTBEAT_INTERVAL": "0.5",
        "NESTQ_POSTGRES__MAX_ATTEMPTS": "20", "NESTQ_POSTGRES__BACKOFF_BASE": "0.05",
        "NESTQ_POSTGRES__BACKOFF_CAP": "1", "NESTQ_POSTGRES__POLL_INTERVAL": "0.2",
        "PYTHONPATH": os.pathsep.join(p for p in [str(HERE), env.get("PYTHONPATH", "")] if p),
    })
    conn = PostgresConnection(load_config({"dsn": server.dsn, "schema": SCHEMA, "migrate": True}, env={}))
    pool = await conn.client()
    await pool.execute(f"CREATE TABLE {SCHEMA}.soak_runs (n integer NOT NULL, pid integer NOT NULL)")
    await conn.aclose()
    workers = [spawn(env, logdir / f"worker-{i}.log") for i in range(args.workers)]
    pushed = 0
    started = time.monotonic()
    try:
        conn = PostgresConnection(load_config({"dsn": server.dsn, "schema": SCHEMA}, env={}))
        for start in range(0, args.jobs, 100):
            await conn.push_many("soak", [{"n": n, "work": args.work} for n in range(start, min(args.jobs,
                                                                                             start + 100))])
        pushed = args.jobs
        await conn.aclose()
        events = ["kill"] * args.kills + ["restart"] * args.restarts
        random.shuffle(events)
        for i, event in enumerate(events):
            # Spread the chaos over the run: wait until the next share of the jobs has been run.
            goal = args.jobs * (i + 1) // (len(events) + 1)
            deadline = time.monotonic() + args.timeout
            while (await counts(server.dsn))[0] < goal and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # polling the database with a deadline: no event to wait on
            if event == "kill":
                victim = random.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                workers[victim] = spawn(env, logdir / f"worker-{victim}.log")
                print(f"  SIGKILLed worker {victim} at ~{goal} jobs run", flush=True)
            else:
                await asyncio.to_thread(server.restart)
                print(f"  restarted PostgreSQL at ~{goal} jobs run", flush=True)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            try:
                distinct, runs, left, dead = await counts(server.dsn)
            except (OSError, asyncpg.PostgresError):
                await asyncio.sleep(0.2)
                continue
            if distinct + dead >= pushed and left == 0:
                break
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        distinct, runs, left, dead = await counts(server.dsn)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
    lost = pushed - distinct - dead
    print(f"pushed {pushed}, run {distinct}, lost {lost}, duplicated {runs - distinct}, dead-lettered {dead}, "
          f"left in table {left}; {args.kills} SIGKILLs, {args.restarts} PostgreSQL restarts; {elapsed:.1f}s")
    return 0 if lost == 0 and dead == 0 and distinct == pushed else 1


def main() -> int:
    """Parse the options, start the private cluster, soak, stop it."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--work", type=float, default=0.005, help="seconds each job sleeps")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    server = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="nestq-pg-soak-") as logdir:
            code = asyncio.run(soak(args, server, Path(logdir)))
            if code:
                for log in sorted(Path(logdir).glob("*.log")):
                    print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
            return code
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
