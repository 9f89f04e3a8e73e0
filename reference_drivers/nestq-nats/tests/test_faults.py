"""Fault tests against a private nats-server: SIGKILLed worker processes, a server restart, a slow job."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nestq_nats import NatsConnection, load_config
from nestq_nats.admin import NatsAdmin
from nestq_nats.server import NatsServer, nats_server_binary

HERE = Path(__file__).resolve().parent

FAST = {
    "visibility_timeout": 1.0,
    "heartbeat_interval": 0.25,
    "backoff_base": 0.05,
    "backoff_cap": 0.5,
    "shutdown_grace": 2.0,
}


@pytest.fixture
def server() -> Iterator[NatsServer]:
    if nats_server_binary() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but there is no nats-server binary for the fault tests")
        pytest.skip("no nats-server binary for a private server")
    with NatsServer() as private:
        yield private


def worker_env(url: str, prefix: str, queue: str, results: Path, **settings: object) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "NESTQ_NATS__URL": url,
        "NESTQ_NATS__STREAM_PREFIX": prefix,
        "NESTQ_FAULT_QUEUE": queue,
        "NESTQ_FAULT_RESULTS": str(results),
        "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p),
    })
    for name, value in {**FAST, **settings}.items():
        env[f"NESTQ_NATS__{name.upper()}"] = str(value)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "nestq_spec.cli", "run", "nats_fault_app:WorkerApp", "--shutdown-timeout", "10"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=HERE,
        )


def completions(results: Path) -> collections.Counter[int]:
    try:
        text = results.read_text()
    except FileNotFoundError:
        return collections.Counter()
    return collections.Counter(int(line) for line in text.splitlines() if line.isdigit())


def starts(results: Path) -> collections.Counter[int]:
    try:
        text = results.read_text()
    except FileNotFoundError:
        return collections.Counter()
    return collections.Counter(int(line[6:]) for line in text.splitlines() if line.startswith("start:"))


async def until(check: Callable[[], bool], within: float, what: str, seen: Callable[[], object]) -> None:
    """Poll ``check`` until true; fail naming ``what`` and the state ``seen`` describes after ``within`` s."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; seen: {seen()}")
        await asyncio.sleep(0.05)


def test_sigkilled_worker_processes_lose_no_job(server: NatsServer, tmp_path: Path) -> None:
    """2,000 jobs, the worker process SIGKILLed five times mid-run: every job completes; duplicates are counted."""
    prefix, queue, results = f"kill-{uuid.uuid4().hex[:6]}", "kill.jobs", tmp_path / "results.txt"
    total, kills, concurrency = 2000, 5, 16
    env = worker_env(server.url, prefix, queue, results, concurrency=concurrency, max_attempts=50)
    log = tmp_path / "workers.log"

    async def scenario() -> None:
        conn = NatsConnection(load_config({"url": server.url, "stream_prefix": prefix}))
        await conn.push_many_json(queue, [{"n": i} for i in range(total)])
        workers = [spawn_worker(env, log)]
        try:
            for k in range(kills):
                # Kills spread over the run (1/6, 2/6, ... of the jobs done), so every kill lands mid-run however
                # fast the workers are.
                target = (k + 1) * total // (kills + 1)

                def reached(target: int = target) -> bool:
                    return len(completions(results)) >= target

                await until(reached, 60, f"{target} distinct completions before kill {k + 1}",
                            lambda: len(completions(results)))
                victim = workers[-1]
                victim.send_signal(signal.SIGKILL)
                assert victim.wait(10) == -signal.SIGKILL
                workers.append(spawn_worker(env, log))
            admin = NatsAdmin(conn)
            depth = 0

            def done() -> bool:
                return len(completions(results)) == total and depth == 0

            deadline = time.monotonic() + 90
            while not done():
                assert time.monotonic() < deadline, (
                    f"timed out: {len(completions(results))} of {total} completed, depth {depth}\n"
                    + log.read_text()[-3000:]
                )
                await asyncio.sleep(0.1)
                depth = await admin.depth(queue)
            counts = completions(results)
            assert sorted(counts) == list(range(total))
            extra = sum(c - 1 for c in counts.values())
            print(f"\n{total} jobs, worker SIGKILLed {kills} times: all completed, {extra} extra run(s)")
            assert await admin.dead_counts() == {}
            # Only jobs a killed worker held can run twice: at most its slots plus its unflushed acks, per kill.
            assert extra <= kills * 2 * concurrency, counts.most_common(5)
            last = workers[-1]
            last.send_signal(signal.SIGTERM)
            assert last.wait(15) == 0, log.read_text()[-3000:]
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
            await conn.aclose()

    asyncio.run(scenario())


def test_worker_resumes_after_the_server_restarts(server: NatsServer, tmp_path: Path) -> None:
    """The server (file storage) restarted twice while a worker runs: it resumes by itself, no accepted job lost."""
    prefix, queue, results = f"restart-{uuid.uuid4().hex[:6]}", "restart", tmp_path / "results.txt"
    env = worker_env(server.url, prefix, queue, results, concurrency=8, max_attempts=50)
    log = tmp_path / "worker.log"

    async def scenario() -> None:
        conn = NatsConnection(load_config({"url": server.url, "stream_prefix": prefix, "connect_timeout": 2.0}))
        worker = spawn_worker(env, log)
        accepted: set[int] = set()
        n = 0
        try:
            for batch in range(12):
                if batch in (4, 8):
                    await asyncio.to_thread(server.restart)
                numbers = range(n, n + 50)
                n += 50
                for _ in range(100):  # the producer's client reconnects by itself; a refused publish is retried
                    try:
                        await conn.push_many_json(queue, [{"n": i, "work": 0.005} for i in numbers])
                        accepted.update(numbers)
                        break
                    except Exception:
                        await asyncio.sleep(0.1)
                await asyncio.sleep(0.2)
            await until(lambda: accepted <= set(completions(results)), 60,
                        "every accepted job to complete after two restarts",
                        lambda: f"{len(accepted - set(completions(results)))} missing; "
                        + log.read_text()[-2000:])
            assert worker.poll() is None, "the worker process exited instead of reconnecting"
            print(f"\n{len(accepted)} accepted jobs, server restarted twice: all completed by the same worker")
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
            await conn.aclose()

    asyncio.run(scenario())


def test_a_slow_job_past_ack_wait_with_heartbeats_is_not_redelivered(server: NatsServer, tmp_path: Path) -> None:
    """A job running 4x the visibility timeout: the heartbeats (+WPI) keep it; it runs exactly once."""
    prefix, queue, results = f"slow-{uuid.uuid4().hex[:6]}", "slow", tmp_path / "results.txt"
    env = worker_env(server.url, prefix, queue, results, concurrency=4, max_attempts=5)
    log = tmp_path / "worker.log"

    async def scenario() -> None:
        conn = NatsConnection(load_config({"url": server.url, "stream_prefix": prefix}))
        worker = spawn_worker(env, log)
        try:
            await conn.push_json(queue, {"n": 1, "work": 4.0})
            await until(lambda: completions(results)[1] >= 1, 30, "the slow job to finish",
                        lambda: log.read_text()[-2000:])
            admin = NatsAdmin(conn)
            depth = await admin.depth(queue)
            deadline = time.monotonic() + 5
            while depth and time.monotonic() < deadline:  # the ack may still be on its way
                await asyncio.sleep(0.05)
                depth = await admin.depth(queue)
            assert depth == 0
            assert (starts(results)[1], completions(results)[1]) == (1, 1), (
                "the slow job was redelivered while it ran: its lease was not extended"
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(15)
            await conn.aclose()

    asyncio.run(scenario())
