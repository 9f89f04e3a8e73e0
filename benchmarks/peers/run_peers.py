#!/usr/bin/env python3
"""Benchmark Python job queues on Redis against each other, in one run, on one fresh redis-server.

Peers: arq, dramatiq (Redis broker), taskiq-redis (RedisStreamBroker), saq and rq (SimpleWorker),
plus raw redis-py baselines (LPUSH / BRPOP). R interleaved rounds (every peer once per round,
medians reported); one measurement of one peer is:

1. FLUSHALL, then enqueue N no-op jobs, one library call per job: the enqueue rate.
2. Start ONE worker process (the peer's own CLI, or a small script under workers/) at
   concurrency 10 where the library has such a knob, and time until the N-th job is done.
   Each no-op job INCRs a counter in Redis; the harness polls it against a deadline and
   fails loudly, naming the peer, if the deadline passes. Two rates come out:
   * end-to-end: N / (worker process started -> last job done), worker start-up included;
   * steady: jobs done after the first one / (first job done -> last job done).

Run it from the benchmark's own venv (see README.md):

    benchmarks/peers/.venv/bin/python benchmarks/peers/run_peers.py [--n 5000] [--repeats 3]
        [--peers raw,arq,...] [--json results.json]

Adding a queue (nestq's own Redis driver, say) means one small PeerAdapter subclass: give it
`enqueue(n)` (returns the seconds the N calls took) and `worker_command()` (or override
`start_worker()` / `stop_worker()`), decorate it with @register, or pass it from another
file with `--adapter path/to/file.py:ClassName`. See README.md, "Adding nestq_redis".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

# Let external adapter files `from run_peers import PeerAdapter, register` get *this* module
# even when it runs as __main__.
sys.modules.setdefault("run_peers", sys.modules[__name__])

HERE = Path(__file__).resolve().parent
WORKERS_DIR = HERE / "workers"
BIN_DIR = Path(sys.executable).parent
COUNTER_KEY = "peers:done"
POLL_INTERVAL_S = 0.002
STOP_GRACE_S = 5.0

T = TypeVar("T")


class PeerFailed(RuntimeError):
    """A peer did not finish its jobs (deadline passed, worker died, or enqueue failed)."""


# --------------------------------------------------------------------------------------------
# Adapters
# --------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What every adapter gets: the benchmark server and where to put worker logs."""

    redis_url: str
    counter_key: str
    log_dir: Path

    def worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PEERS_REDIS_URL"] = self.redis_url
        env["PEERS_COUNTER_KEY"] = self.counter_key
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(WORKERS_DIR), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        return env


class PeerAdapter:
    """One queue library, as the harness drives it.

    Subclasses set the class attributes and implement `enqueue` and `worker_command`
    (or override `start_worker` / `stop_worker` when a command line is not enough).
    """

    name: ClassVar[str]
    #: "peer" (a third-party library), "baseline" (raw redis-py) or "subject" (nestq's driver).
    #: Ratios are taken against the best "peer".
    kind: ClassVar[str] = "peer"
    #: Distributions whose versions are printed.
    distributions: ClassVar[tuple[str, ...]] = ()
    #: "at-least-once" or "at-most-once", in the mode benchmarked.
    guarantee: ClassVar[str]
    #: Why, in one sentence, with the mechanism (source checked for the pinned version).
    guarantee_detail: ClassVar[str]
    #: What "concurrency 10" means for this peer (or why it is not 10).
    concurrency: str

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starts = 0

    # -- to implement -------------------------------------------------------------------------

    def enqueue(self, n: int) -> float:
        """Enqueue n no-op jobs, one library call per job; return the seconds those calls took.

        Connection set-up belongs outside the timed part.
        """
        raise NotImplementedError

    def worker_command(self) -> list[str]:
        """argv of ONE worker process at the benchmark's concurrency."""
        raise NotImplementedError

    # -- provided -----------------------------------------------------------------------------

    def version(self) -> str:
        parts = []
        for dist in self.distributions:
            try:
                parts.append(f"{dist} {importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                parts.append(f"{dist} (not installed)")
        return ", ".join(parts) or "-"

    @property
    def log_path(self) -> Path:
        return self.ctx.log_dir / f"{self.name}.worker.log"

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start the worker as its own process group (so its children can be stopped with it)."""
        if self.proc is not None:
            raise RuntimeError(f"{self.name}: worker already running")
        self._starts += 1
        cmd = self.worker_command()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self._starts}: {' '.join(cmd)}\n".encode())
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                cmd,
                cwd=WORKERS_DIR,
                env=self.ctx.worker_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        return self.proc

    def stop_worker(self) -> None:
        """SIGTERM the worker's process group; SIGKILL it if it is still there after a grace period."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_GRACE_S)
        # The leader may be gone while children (dramatiq/taskiq fork their workers) linger.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def run_async(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on this adapter's own event loop, kept across repeats.

        One loop for the adapter's life, so clients created on it stay usable.
        """
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(make())

    def close(self) -> None:
        """Release client resources (called once, after the last repeat)."""
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
            self._loop = None

    def bin(self, script: str) -> str:
        """A console script installed next to this interpreter (the peers venv)."""
        path = BIN_DIR / script
        if not path.exists():
            raise PeerFailed(f"{self.name}: console script {path} not found; install requirements.txt")
        return str(path)


ADAPTERS: dict[str, type[PeerAdapter]] = {}


def register(cls: type[PeerAdapter]) -> type[PeerAdapter]:
    ADAPTERS[cls.name] = cls
    return cls


def _import_worker_module(name: str) -> Any:
    if str(WORKERS_DIR) not in sys.path:
        sys.path.insert(0, str(WORKERS_DIR))
    return importlib.import_module(name)


RAW_PAYLOAD = b'{"task":"noop","args":[],"kwargs":{}}'


@register
class RawSyncAdapter(PeerAdapter):
    name = "raw"
    kind = "baseline"
    distributions = ("redis", "hiredis")
    guarantee = "at-most-once"
    guarantee_detail = (
        "BRPOP removes the job before it runs; a consumer killed mid-job loses it (no ack, no redelivery)."
    )
    concurrency = "10 asyncio tasks (BRPOP + INCR)"
    queue_key = "raw:queue"

    def enqueue(self, n: int) -> float:
        import redis

        client = redis.Redis.from_url(self.ctx.redis_url)
        client.ping()
        lpush, key, payload = client.lpush, self.queue_key, RAW_PAYLOAD
        start = time.perf_counter()
        for _ in range(n):
            lpush(key, payload)
        elapsed = time.perf_counter() - start
        client.close()
        return elapsed

    def worker_command(self) -> list[str]:
        return [sys.executable, str(WORKERS_DIR / "raw_worker.py"), self.queue_key, "10"]


@register
class RawAsyncAdapter(RawSyncAdapter):
    name = "raw-async"

    def enqueue(self, n: int) -> float:
        import redis.asyncio

        async def go() -> float:
            client = redis.asyncio.Redis.from_url(self.ctx.redis_url)
            await client.ping()
            lpush, key, payload = client.lpush, self.queue_key, RAW_PAYLOAD
            start = time.perf_counter()
            for _ in range(n):
                await lpush(key, payload)
            elapsed = time.perf_counter() - start
            await client.aclose()
            return elapsed

        return self.run_async(go)


@register
class ArqAdapter(PeerAdapter):
    name = "arq"
    distributions = ("arq",)
    guarantee = "at-least-once"
    guarantee_detail = (
        "'pessimistic execution': a job stays in the queue's sorted set until it finishes; an in-progress "
        "key (TTL = job timeout + 10 s) fences it while it runs, and a killed worker's job runs again once "
        "that key expires (up to max_tries=5). arq docs: 'Jobs may be called more than once!'"
    )
    concurrency = "max_jobs=10 (asyncio tasks); arq defaults otherwise"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        delay = os.environ.get("PEERS_ARQ_POLL_DELAY")
        self.concurrency += f" except poll_delay={delay} s" if delay else " (poll_delay 0.5 s)"

    def enqueue(self, n: int) -> float:
        from arq.connections import RedisSettings, create_pool

        app = _import_worker_module("arq_app")

        async def go() -> float:
            pool = await create_pool(RedisSettings.from_dsn(self.ctx.redis_url), default_queue_name=app.QUEUE_NAME)
            await pool.ping()
            enqueue_job = pool.enqueue_job
            start = time.perf_counter()
            for _ in range(n):
                await enqueue_job("noop")
            elapsed = time.perf_counter() - start
            await pool.aclose()
            return elapsed

        return self.run_async(go)

    def worker_command(self) -> list[str]:
        # arq's own CLI; the custom log dict only drops its two INFO lines per job.
        return [self.bin("arq"), "arq_app.WorkerSettings", "--custom-log-dict", "arq_app.LOG_CONFIG"]


@register
class DramatiqAdapter(PeerAdapter):
    name = "dramatiq"
    distributions = ("dramatiq",)
    guarantee = "at-least-once"
    guarantee_detail = (
        "RedisBroker moves a fetched message into the worker's ack set and acks it after the actor "
        "returns; unacked messages of a worker with no heartbeat for 60 s are requeued by maintenance."
    )
    concurrency = "--processes 1 --threads 10"

    def enqueue(self, n: int) -> float:
        app = _import_worker_module("dramatiq_app")
        app.broker.client.ping()
        send = app.noop.send
        start = time.perf_counter()
        for _ in range(n):
            send()
        return time.perf_counter() - start

    def worker_command(self) -> list[str]:
        return [self.bin("dramatiq"), "dramatiq_app", "--processes", "1", "--threads", "10"]

    def close(self) -> None:
        if "dramatiq_app" in sys.modules:
            sys.modules["dramatiq_app"].broker.close()
        super().close()


@register
class TaskiqAdapter(PeerAdapter):
    name = "taskiq"
    distributions = ("taskiq", "taskiq-redis")
    guarantee = "at-least-once"
    guarantee_detail = (
        "RedisStreamBroker reads with XREADGROUP and XACKs after the task (worker default "
        "--ack-type when_saved); entries left pending over idle_timeout (10 min) are XAUTOCLAIMed "
        "by a live worker."
    )
    concurrency = "--workers 1 --max-async-tasks 10"

    def enqueue(self, n: int) -> float:
        app = _import_worker_module("taskiq_app")

        async def go() -> float:
            # The stream broker's consumer group starts at "$": create it (startup) before adding
            # jobs, or a worker started later would skip them.
            await app.broker.startup()
            kiq = app.noop.kiq
            start = time.perf_counter()
            for _ in range(n):
                await kiq()
            return time.perf_counter() - start

        return self.run_async(go)

    def worker_command(self) -> list[str]:
        return [
            self.bin("taskiq"), "worker", "taskiq_app:broker",
            "--workers", "1", "--max-async-tasks", "10", "--log-level", "WARNING",
        ]  # fmt: skip

    def close(self) -> None:
        if "taskiq_app" in sys.modules and self._loop is not None:
            self.run_async(sys.modules["taskiq_app"].broker.shutdown)
        super().close()


@register
class SaqAdapter(PeerAdapter):
    name = "saq"
    distributions = ("saq",)
    guarantee = "at-most-once"
    guarantee_detail = (
        "with saq's default retries=1: a job whose worker dies stays ACTIVE until the sweep finds it "
        "past its timeout (10 s) and, attempts having reached retries, finishes it ABORTED, not rerun "
        "(retries>1 would make it at-least-once)."
    )
    concurrency = "Worker concurrency=10"

    def enqueue(self, n: int) -> float:
        app = _import_worker_module("saq_app")

        async def go() -> float:
            queue = app.queue
            await queue.connect()
            await queue.redis.ping()
            enqueue = queue.enqueue
            start = time.perf_counter()
            for _ in range(n):
                await enqueue("noop")
            return time.perf_counter() - start

        return self.run_async(go)

    def worker_command(self) -> list[str]:
        return [self.bin("saq"), "saq_app.settings"]

    def close(self) -> None:
        if "saq_app" in sys.modules and self._loop is not None:
            self.run_async(sys.modules["saq_app"].queue.disconnect)
        super().close()


@register
class RqAdapter(PeerAdapter):
    name = "rq"
    distributions = ("rq",)
    guarantee = "at-most-once"
    guarantee_detail = (
        "SimpleWorker runs the job in-process; if it is killed, the job's StartedJobRegistry entry "
        "expires and cleanup moves it to the FailedJobRegistry (AbandonedJobError), rerun only if "
        "enqueued with Retry (none here)."
    )
    concurrency = "1: SimpleWorker (no fork per job); rq has no in-process concurrency option"

    def enqueue(self, n: int) -> float:
        import redis
        from rq import Queue

        tasks = _import_worker_module("rq_tasks")
        client = redis.Redis.from_url(self.ctx.redis_url)
        client.ping()
        queue = Queue(tasks.QUEUE_NAME, connection=client)
        enqueue, noop = queue.enqueue, tasks.noop
        start = time.perf_counter()
        for _ in range(n):
            enqueue(noop)
        elapsed = time.perf_counter() - start
        client.close()
        return elapsed

    def worker_command(self) -> list[str]:
        return [
            self.bin("rq"), "worker", "--worker-class", "rq.worker.SimpleWorker",
            "--url", self.ctx.redis_url, "--quiet", "peers",
        ]  # fmt: skip


@register
class NestqRedisAdapter(PeerAdapter):
    name = "nestq_redis"
    kind = "subject"  # "x best" then reads directly as "times the best peer"
    distributions = ("nestq",)
    guarantee = "at-least-once"
    guarantee_detail = (
        "a claim leases the job (leases zset, deadline in Redis server time, attempt counted) in one Lua "
        "script; the job's data is deleted only by the ack after the handler returns; an expired lease "
        "(visibility_timeout 30 s, extended by heartbeats) is swept back to ready, up to max_attempts=5."
    )
    concurrency = "RedisQueueWorkerModule concurrency=10 (claim_batch 10); driver defaults otherwise"

    def enqueue(self, n: int) -> float:
        from nestq_redis import RedisConfig, RedisConnection

        worker = _import_worker_module("nestq_worker")

        async def go() -> float:
            conn = RedisConnection(RedisConfig(url=self.ctx.redis_url, key_prefix=worker.KEY_PREFIX))
            await conn.ping()
            # Set-up outside the clock, as for the others: connect, load the push script (one push to a
            # queue no worker serves).
            await conn.push_json("peers-nestq-warmup", {})
            push, queue = conn.push_json, worker.QUEUE_NAME
            start = time.perf_counter()
            for _ in range(n):
                await push(queue, {})
            elapsed = time.perf_counter() - start
            await conn.aclose()
            return elapsed

        return self.run_async(go)

    def worker_command(self) -> list[str]:
        return [sys.executable, str(WORKERS_DIR / "nestq_worker.py")]


DEFAULT_ORDER = ["raw", "raw-async", "nestq_redis", "arq", "dramatiq", "taskiq", "saq", "rq"]


def load_external_adapter(spec: str) -> type[PeerAdapter]:
    """`path/to/file.py:Class` or `package.module:Class`."""
    target, _, cls_name = spec.rpartition(":")
    if not target or not cls_name:
        raise SystemExit(f"--adapter wants FILE.py:Class or module:Class, got {spec!r}")
    if target.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        if module_spec is None or module_spec.loader is None:
            raise SystemExit(f"--adapter: cannot load {target}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    cls: type[PeerAdapter] = getattr(module, cls_name)
    ADAPTERS[cls.name] = cls
    return cls


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


def free_loopback_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != 6379:  # never the shared server's port
            return port


@dataclass
class RedisServer:
    binary: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    version: str = ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.port = free_loopback_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="nestq-peers-redis-"))
        self.proc = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                    raise SystemExit(f"redis-server on port {self.port} did not come up:\n{log}") from None
                time.sleep(0.02)
        info: dict[str, Any] = client.info("server")  # type: ignore[assignment]  # sync client: a dict
        self.version = str(info["redis_version"])
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def redis_benchmark(port: int, pipeline: int) -> dict[str, float]:
    """`redis-benchmark -t lpush,rpop -n 100000 -q` against our server: requests/s per command."""
    binary = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
    cmd = [binary, "-h", "127.0.0.1", "-p", str(port), "-t", "lpush,rpop", "-n", "100000", "-q"]
    if pipeline > 1:
        cmd += ["-P", str(pipeline)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    figures: dict[str, float] = {}
    for line in re.split(r"[\r\n]+", out):
        match = re.match(r"\s*(\w+):\s*([\d.]+) requests per second", line)
        if match:
            figures[match.group(1)] = float(match.group(2))
    return figures


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    enqueue_s: float
    enqueue_per_s: float
    e2e_s: float
    e2e_per_s: float
    steady_per_s: float
    first_done_s: float
    extra_executions: int


@dataclass
class PeerResult:
    name: str
    kind: str
    version: str
    guarantee: str
    guarantee_detail: str
    concurrency: str
    worker_command: list[str]
    runs: list[Run] = field(default_factory=list)
    error: str | None = None

    def median(self, attr: str) -> float:
        return float(statistics.median(float(getattr(r, attr)) for r in self.runs))


def wait_for_counter(adapter: PeerAdapter, client: Any, n: int, t0: float, timeout: float) -> tuple[float, int, float]:
    """Poll the done-counter until it reaches n; return (t_first, count_at_first, t_done)."""
    t_first: float | None = None
    at_first = 0
    key = adapter.ctx.counter_key
    proc = adapter.proc
    assert proc is not None
    while True:
        done = int(client.get(key) or 0)
        now = time.perf_counter()
        if done and t_first is None:
            t_first, at_first = now, done
        if done >= n:
            assert t_first is not None
            return t_first, at_first, now
        if proc.poll() is not None:
            raise PeerFailed(
                f"{adapter.name}: worker exited with code {proc.returncode} after {done}/{n} jobs "
                f"(log: {adapter.log_path})"
            )
        if now - t0 > timeout:
            raise PeerFailed(
                f"{adapter.name}: only {done}/{n} jobs done when the {timeout:g} s deadline passed "
                f"(log: {adapter.log_path})"
            )
        time.sleep(POLL_INTERVAL_S)


def measure_once(adapter: PeerAdapter, client: Any, n: int, timeout: float) -> Run:
    client.flushall()
    try:
        enqueue_s = adapter.enqueue(n)
    except PeerFailed:
        raise
    except Exception as exc:
        raise PeerFailed(f"{adapter.name}: enqueue failed: {type(exc).__name__}: {exc}") from exc
    if int(client.get(adapter.ctx.counter_key) or 0) != 0:
        raise PeerFailed(f"{adapter.name}: jobs ran before any worker started")
    t0 = time.perf_counter()
    adapter.start_worker()
    try:
        t_first, at_first, t_done = wait_for_counter(adapter, client, n, t0, timeout)
    finally:
        adapter.stop_worker()
    total = int(client.get(adapter.ctx.counter_key) or 0)
    e2e_s = t_done - t0
    steady_window = t_done - t_first
    steady = (n - at_first) / steady_window if steady_window > 0 and n > at_first else float("nan")
    return Run(
        enqueue_s=enqueue_s,
        enqueue_per_s=n / enqueue_s,
        e2e_s=e2e_s,
        e2e_per_s=n / e2e_s,
        steady_per_s=steady,
        first_done_s=t_first - t0,
        extra_executions=total - n,
    )


def new_result(adapter: PeerAdapter) -> PeerResult:
    cmd: list[str] = []
    error: str | None = None
    try:
        cmd = adapter.worker_command()
    except PeerFailed as exc:
        error = str(exc)
    return PeerResult(
        name=adapter.name,
        kind=adapter.kind,
        version=adapter.version(),
        guarantee=adapter.guarantee,
        guarantee_detail=adapter.guarantee_detail,
        concurrency=adapter.concurrency,
        worker_command=cmd,
        error=error,
    )


def bench_all(adapters: list[PeerAdapter], client: Any, n: int, repeats: int, timeout: float) -> list[PeerResult]:
    """Measure every peer `repeats` times, round-robin.

    Interleaved rounds (every peer once, then again) spread slow spells of a shared machine over
    all peers instead of landing on whichever peer happened to run then.
    """
    results = [new_result(a) for a in adapters]
    for r in results:
        if r.error:
            print(f"  !! {r.name} FAILED: {r.error}", file=sys.stderr, flush=True)
    try:
        for rep in range(1, repeats + 1):
            print(f"round {rep}/{repeats}", flush=True)
            for adapter, result in zip(adapters, results, strict=True):
                if result.error:
                    continue
                try:
                    run = measure_once(adapter, client, n, timeout)
                except PeerFailed as exc:
                    result.error = str(exc)
                    print(f"  !! {adapter.name} FAILED: {exc}", file=sys.stderr, flush=True)
                    continue
                finally:
                    client.flushall()
                result.runs.append(run)
                extra = f", {run.extra_executions} extra executions!" if run.extra_executions else ""
                print(
                    f"  {adapter.name:<10} enqueue {run.enqueue_per_s:>9,.0f}/s"
                    f" | end-to-end {run.e2e_per_s:>8,.0f}/s ({run.e2e_s:.2f} s, first job done at"
                    f" {run.first_done_s:.2f} s) | steady {_num(run.steady_per_s, '>8,.0f')}/s{extra}",
                    flush=True,
                )
    finally:
        for adapter in adapters:
            adapter.stop_worker()
            try:
                adapter.close()
            except Exception as exc:
                print(f"  ({adapter.name}: close failed: {exc})", file=sys.stderr)
    return results


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def machine_note() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _num(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def _json_safe(value: Any) -> Any:
    """NaN is not JSON: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def ratios(results: list[PeerResult], attr: str) -> dict[str, float | None]:
    """Each peer's median over the best third-party peer's (None when no third-party peer ran)."""
    ok = [r for r in results if r.runs and not r.error]
    best = max((r.median(attr) for r in ok if r.kind == "peer"), default=0.0)
    return {r.name: (r.median(attr) / best if best else None) for r in ok}


def print_table(results: list[PeerResult]) -> dict[str, dict[str, float | None]]:
    metrics = ("enqueue_per_s", "e2e_per_s", "steady_per_s")
    rel = {m: ratios(results, m) for m in metrics}
    headers = ["peer", "version", "guarantee", "enqueue jobs/s", "x best", "end-to-end jobs/s", "x best",
               "steady jobs/s", "x best"]  # fmt: skip
    rows = []
    for r in results:
        if r.error or not r.runs:
            rows.append([r.name, r.version, r.guarantee, "FAILED", "", "", "", "", ""])
            continue
        row = [r.name, r.version, r.guarantee]
        for m in metrics:
            ratio = rel[m][r.name]
            row += [_num(r.median(m), ",.0f"), "-" if ratio is None else f"{ratio:.2f}"]
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    right = {3, 4, 5, 6, 7, 8}

    def fmt(row: list[str]) -> str:
        return " | ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    print(fmt(headers))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(fmt(row))
    return rel


def subject_ratios(results: list[PeerResult]) -> dict[str, dict[str, Any]]:
    """For each subject (nestq's driver): its medians over the best third-party peer's and over each baseline's."""
    ok = [r for r in results if r.runs and not r.error]
    peers = [r for r in ok if r.kind == "peer"]
    out: dict[str, dict[str, Any]] = {}
    for subject in (r for r in ok if r.kind == "subject"):
        entry: dict[str, Any] = {}
        for metric in ("e2e_per_s", "steady_per_s", "enqueue_per_s"):
            best = max(peers, key=lambda r, m=metric: r.median(m), default=None)  # type: ignore[misc]
            if best is not None:
                entry[f"{metric}_x_best_peer"] = subject.median(metric) / best.median(metric)
                entry[f"{metric}_best_peer"] = best.name
        for base in (r for r in ok if r.kind == "baseline"):
            entry[f"enqueue_x_{base.name}"] = subject.median("enqueue_per_s") / base.median("enqueue_per_s")
            entry[f"e2e_x_{base.name}"] = subject.median("e2e_per_s") / base.median("e2e_per_s")
        out[subject.name] = entry
    return out


def print_subject_ratios(ratios_by_subject: dict[str, dict[str, Any]]) -> None:
    for name, entry in ratios_by_subject.items():
        print(f"\n{name} against the targets (ratios of medians from this run):")
        if "e2e_per_s_x_best_peer" in entry:
            ratio = entry["e2e_per_s_x_best_peer"]
            verdict = "met" if ratio >= 1.5 else "MISSED"
            best = entry["e2e_per_s_best_peer"]
            print(f"  end-to-end   {ratio:5.2f}x the best peer ({best}); target >= 1.5x: {verdict}")
            print(f"  steady       {entry['steady_per_s_x_best_peer']:5.2f}x the best peer "
                  f"({entry['steady_per_s_best_peer']})")
            print(f"  enqueue      {entry['enqueue_per_s_x_best_peer']:5.2f}x the best peer "
                  f"({entry['enqueue_per_s_best_peer']})")
        for key, value in entry.items():
            if key.startswith("enqueue_x_"):
                base = key.removeprefix("enqueue_x_")
                target = " (target >= 0.7x raw redis-py LPUSH: " + ("met)" if value >= 0.7 else "MISSED)")
                print(f"  enqueue      {value:5.2f}x {base} LPUSH, same process{target}")
            elif key.startswith("e2e_x_"):
                print(f"  end-to-end   {value:5.2f}x the {key.removeprefix('e2e_x_')} BRPOP+INCR consumer")


def enqueue_interleaved(
    adapters: list[PeerAdapter], client: Any, block: int, blocks: int
) -> dict[str, dict[str, float]]:
    """One-call-per-job enqueue of the baselines and subjects, in alternating blocks: median rate of each.

    The rounds above measure each peer's enqueue seconds apart; on a VM whose loopback round trip drifts
    over seconds that scatters the ratio. Blocks of `block` calls, each adapter in turn, `blocks` times,
    put the compared loops within milliseconds of each other.
    """
    chosen = [a for a in adapters if a.kind in ("baseline", "subject")]
    rates: dict[str, list[float]] = {a.name: [] for a in chosen}
    client.flushall()
    try:
        for _ in range(blocks):
            for adapter in chosen:
                rates[adapter.name].append(block / adapter.enqueue(block))
    finally:
        client.flushall()
        for adapter in chosen:
            adapter.close()
    return {
        name: {"median_per_s": statistics.median(values), "min_per_s": min(values), "max_per_s": max(values)}
        for name, values in rates.items()
    }


def print_interleaved(figures: dict[str, dict[str, float]], block: int, blocks: int) -> None:
    print(f"\nenqueue, one call per job, interleaved: {blocks} blocks of {block} calls per client, in turn (medians)")
    for name, f in figures.items():
        spread = f"blocks from {f['min_per_s']:,.0f} to {f['max_per_s']:,.0f}"
        print(f"  {name:<12} {f['median_per_s']:>9,.0f}/s  ({spread})")
    subjects = [n for n in figures if n not in ("raw", "raw-async")]
    for name in subjects:
        for base in ("raw-async", "raw"):
            if base in figures:
                ratio = figures[name]["median_per_s"] / figures[base]["median_per_s"]
                verdict = "met" if ratio >= 0.7 else "MISSED"
                print(f"  {name} / {base}: {ratio:.2f} (target >= 0.7: {verdict})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="jobs per measurement (default 5000)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per peer; the median is reported")
    parser.add_argument(
        "--peers", default=None, help=f"comma-separated subset/order (default: {','.join(DEFAULT_ORDER)})"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this path")
    parser.add_argument("--timeout", type=float, default=120.0, help="deadline (s) for one worker run to finish N jobs")
    parser.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="FILE.py:Class",
        help="load an extra adapter (repeatable); it runs after the defaults unless --peers says otherwise",
    )
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    parser.add_argument("--skip-redis-benchmark", action="store_true")
    parser.add_argument(
        "--interleaved-blocks",
        type=int,
        default=20,
        metavar="B",
        help="after the rounds, enqueue of the baselines and nestq in B alternating blocks of 500 calls (0: skip)",
    )
    parser.add_argument("--list", action="store_true", help="list the adapters and exit")
    args = parser.parse_args(argv)  # fmt: skip

    extra = [load_external_adapter(spec).name for spec in args.adapter]
    order = (
        [p.strip() for p in args.peers.split(",") if p.strip()]
        if args.peers
        else DEFAULT_ORDER + [name for name in [*ADAPTERS, *extra] if name not in DEFAULT_ORDER]
    )
    order = list(dict.fromkeys(order))
    unknown = [p for p in order if p not in ADAPTERS]
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; known: {', '.join(ADAPTERS)}")
    if args.list:
        for name, cls in ADAPTERS.items():
            print(f"{name:<10} {cls.kind:<8} {cls.guarantee:<14} {cls.concurrency}")
        return 0
    if args.n < 1 or args.repeats < 1:
        parser.error("--n and --repeats must be >= 1")

    try:
        import redis
    except ImportError:
        raise SystemExit(
            "redis-py is missing: run this with benchmarks/peers/.venv/bin/python (see benchmarks/peers/README.md)"
        ) from None

    def on_sigterm(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)

    started = dt.datetime.now(dt.UTC)
    log_dir = HERE / ".logs" / started.strftime("%Y%m%dT%H%M%SZ")
    log_dir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(args.redis_server)
    results: list[PeerResult] = []
    by_subject: dict[str, dict[str, Any]] = {}
    interleaved: dict[str, dict[str, float]] = {}
    bench: dict[str, dict[str, float]] = {}
    machine = machine_note()
    try:
        server.start()
        client = redis.Redis(host="127.0.0.1", port=server.port)
        os.environ["PEERS_REDIS_URL"] = server.url  # for the worker modules imported in-process
        os.environ["PEERS_COUNTER_KEY"] = COUNTER_KEY
        print(f"nestq peers benchmark, {started:%Y-%m-%d %H:%M} UTC")
        print(
            f"machine: {machine['cores']} cores, {machine['cpu'] or '?'}; Python {machine['python']}; "
            f"redis-py {importlib.metadata.version('redis')}; load average {machine['load_average_at_start']}"
        )
        print(f"redis-server {server.version} on 127.0.0.1:{server.port} (--save '' --appendonly no)")
        print(f"N={args.n} jobs, {args.repeats} repeats (median), worker logs in {log_dir}")
        if not args.skip_redis_benchmark:
            print("\nredis-benchmark -t lpush,rpop -n 100000 -q (the physical reference):")
            for pipeline in (1, 16):
                figures = redis_benchmark(server.port, pipeline)
                bench[f"P{pipeline}"] = figures
                label = "no pipelining" if pipeline == 1 else f"-P {pipeline}"
                print(f"  {label:<14} " + "  ".join(f"{k} {v:,.0f}/s" for k, v in figures.items()))
            client.flushall()

        print("\nversions, delivery guarantee (mode benchmarked) and concurrency:")
        for name in order:
            info = ADAPTERS[name](Context(server.url, COUNTER_KEY, log_dir))
            print(f"  {name:<10} {info.version()}")
            print(f"  {'':<10} {info.guarantee}: {info.guarantee_detail}")
            print(f"  {'':<10} concurrency: {info.concurrency}")

        print()
        adapters = [ADAPTERS[name](Context(server.url, COUNTER_KEY, log_dir)) for name in order]
        results = bench_all(adapters, client, args.n, args.repeats, args.timeout)

        print(f"\nmedians of {args.repeats} runs, N={args.n}; 'x best' = ratio to the best third-party peer")
        rel = print_table(results)
        by_subject = subject_ratios(results)
        print_subject_ratios(by_subject)
        if args.interleaved_blocks > 0 and any(a.kind == "subject" for a in adapters):
            interleaved = enqueue_interleaved(adapters, client, 500, args.interleaved_blocks)
            print_interleaved(interleaved, 500, args.interleaved_blocks)
        print(
            "\nenqueue: one library call per job, client in this process. end-to-end: worker process start"
            " -> last job done. steady: first job done -> last job done."
        )
        client.close()
    finally:
        server.stop()  # each adapter already stopped its own worker

    failed = [r for r in results if r.error]
    if args.json and results:
        payload = {
            "date": started.isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "machine": machine,
            "redis_server": server.version,
            "redis_py": importlib.metadata.version("redis"),
            "n": args.n,
            "repeats": args.repeats,
            "redis_benchmark": bench,
            "ratio_basis": "best third-party peer (kind == 'peer')",
            "subject_ratios": by_subject,
            "enqueue_interleaved": {"block": 500, "blocks": args.interleaved_blocks, "figures": interleaved},
            "peers": [
                {
                    "name": r.name,
                    "kind": r.kind,
                    "version": r.version,
                    "guarantee": r.guarantee,
                    "guarantee_detail": r.guarantee_detail,
                    "concurrency": r.concurrency,
                    "worker_command": r.worker_command,
                    "error": r.error,
                    "runs": [vars(run) for run in r.runs],
                    "median": None
                    if r.error or not r.runs
                    else {m: r.median(m) for m in ("enqueue_per_s", "e2e_per_s", "steady_per_s")},
                    "x_best": None if r.error or not r.runs else {m: rel[m][r.name] for m in rel},
                }
                for r in results
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_json_safe(payload), indent=2, allow_nan=False) + "\n")
        print(f"results written to {args.json}")
    if failed:
        print(f"\nFAILED: {', '.join(r.name for r in failed)}", file=sys.stderr)
        for r in failed:
            print(f"  {r.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
