"""``nestq bench``'s engine: measure any driver through the same harness the conformance suite uses.

One run boots the driver's modules exactly as the suite does (``harness.producer_module`` and
``harness.worker_module`` via :class:`~nestq_conformance.kit.Scenario`), in one process and one event loop, and
measures four things:

1. **enqueue, one call per job**: ``N`` awaited ``producer.push_json`` calls, one after the other;
2. **enqueue, batched**: the same ``N`` payloads through the producer's batch method, when it has one
   (``push_many_json(queue, payloads)``, found by duck typing), ``batch_size`` payloads per call; else ``n/a``;
3. **end-to-end**: the ``N`` jobs of phase 1, already queued, drained by one worker app at ``concurrency``
   with a no-op handler; timed from the start of ``serve`` to the last distinct job's handler start (the
   *steady* rate leaves out the time before the first job);
4. **latency**: on an idle worker, push one job, wait for its handler to start, repeat; the time from just
   before the push call to the handler's first line, as p50 / p99 (nearest rank) over ``latency_samples``.

Completion is always an event set by the handlers, under a deadline; nothing waits a fixed time for work to
finish. The only fixed pause is ``latency_gap`` between two latency samples, so each push finds the worker idle.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import itertools
import json
import math
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from nestq_conformance.harness import DriverHarness, SuiteSettings
from nestq_conformance.kit import Scenario, WorkerApp
from nestq_conformance.redaction import redact_text
from nestq_spec import JobProducer, JSONValue, process, processor

__all__ = [
    "BATCH_METHOD",
    "BENCH_FILES",
    "PHASES",
    "BenchError",
    "BenchOptions",
    "BenchResult",
    "Progress",
    "batch_method",
    "bench_settings",
    "machine_info",
    "make_payload",
    "percentile",
    "render_markdown",
    "render_table",
    "run_bench",
    "write_bench_files",
]

PHASES: tuple[str, ...] = ("enqueue", "batch", "e2e", "latency")
"""The phases of a run, in the order they run; ``--phases`` picks a subset."""
BATCH_METHOD = "push_many_json"
"""The producer method the batch phase looks for: ``await producer.push_many_json(queue, payloads)``."""
BENCH_FILES = {"json": "nestq-bench.json", "markdown": "nestq-bench.md"}
"""What ``--report DIR`` writes, beside the conformance report files of ``nestq check --report DIR``."""
_SCHEMA_VERSION = 1
_counter = itertools.count(1)


class BenchError(RuntimeError):
    """A run could not finish: a phase ran past its deadline, the worker stopped, or the driver raised."""


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What one run measures and how hard; every figure in the result says which options produced it."""

    n: int = 5000
    """Jobs per throughput phase (enqueue, batch, end-to-end)."""
    concurrency: int = 10
    """The worker's concurrency (``SuiteSettings.concurrency``, which the harness maps onto the driver)."""
    payload_bytes: int = 64
    """Approximate size of each job's JSON payload, in bytes (the envelope adds its own few dozen)."""
    batch_size: int = 1000
    """Payloads per call of the batch method."""
    latency_samples: int = 500
    """Push-to-start samples on the idle worker (0 skips the phase)."""
    warmup: int = 20
    """Latency pushes made (and discarded) before the samples, so connections and caches are warm."""
    latency_gap: float = 0.002
    """Seconds between two latency samples: the worker settles back to idle before the next push."""
    phase_timeout: float = 300.0
    """Deadline for one phase, in seconds; past it the run fails naming the phase and what it saw."""
    phases: tuple[str, ...] = PHASES
    """Which phases run (``e2e`` needs ``enqueue``, which fills its backlog)."""

    def validate(self) -> BenchOptions:
        """Return ``self``; raise ``ValueError`` naming the option for a value out of range."""
        checks: list[tuple[bool, str]] = [
            (self.n >= 1, f"--n must be >= 1, got {self.n}"),
            (1 <= self.concurrency <= 10_000, f"--concurrency must be between 1 and 10000, got {self.concurrency}"),
            (
                0 <= self.payload_bytes <= 16 * 1024 * 1024,
                f"--payload-bytes must be between 0 and 16777216, got {self.payload_bytes}",
            ),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.latency_samples >= 0, f"--latency-samples must be >= 0, got {self.latency_samples}"),
            (self.warmup >= 0, f"--warmup must be >= 0, got {self.warmup}"),
            (
                math.isfinite(self.latency_gap) and 0 <= self.latency_gap <= 1,
                f"--latency-gap must be between 0 and 1 second, got {self.latency_gap}",
            ),
            (
                math.isfinite(self.phase_timeout) and self.phase_timeout > 0,
                f"--timeout must be > 0, got {self.phase_timeout}",
            ),
            (bool(self.phases), "--phases must name at least one phase"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        unknown = [p for p in self.phases if p not in PHASES]
        if unknown:
            raise ValueError(f"--phases: unknown phase(s) {', '.join(unknown)}; known: {', '.join(PHASES)}")
        if "e2e" in self.phases and "enqueue" not in self.phases:
            raise ValueError("--phases: e2e drains the jobs the enqueue phase pushed; add enqueue")
        return self


def bench_settings(concurrency: int) -> SuiteSettings:
    """The settings a bench run gives the harness: the chosen concurrency, and timings for a long run.

    The suite's own settings are tuned for short rules (one-second leases); a benchmark keeps leases long, so no
    heartbeat or sweep traffic is forced on the worker more often than a production-like setup would.
    """
    return SuiteSettings(
        concurrency=concurrency,
        max_attempts=3,
        backoff=0.05,
        backoff_cap=0.2,
        visibility_timeout=30.0,
        heartbeat_interval=5.0,
        shutdown_grace=5.0,
        poll_interval=0.5,
    )


def make_payload(index: int, size: int) -> dict[str, JSONValue]:
    """A job payload ``{"n": index, "pad": "xxx..."}`` whose compact JSON is about ``size`` bytes (never less)."""
    base = len(json.dumps({"n": index, "pad": ""}, separators=(",", ":")))
    return {"n": index, "pad": "x" * max(0, size - base)}


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of already sorted values (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# ---------------------------------------------------------------------------------------------------------------
# Progress


class Progress:
    """Progress lines on a stream (stderr): one line per phase, updated in place when the stream is a terminal."""

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self._phase = ""
        self._last = 0.0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (``nestq bench: ...``)."""
        if self.enabled:
            self._write(f"nestq bench: {text}\n")

    def start(self, phase: str) -> None:
        """A phase begins."""
        self._phase = phase
        self._last = 0.0
        if self.enabled:
            self._write(f"  {phase} ..." + ("" if self.live else "\n"))

    def update(self, done: int, total: int) -> None:
        """``done`` of ``total`` units of the current phase (shown at most ten times a second on a terminal)."""
        if not (self.enabled and self.live):
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        self._write(f"\r  {self._phase} ... {done:,}/{total:,}")

    def finish(self, summary: str) -> None:
        """The current phase ended; ``summary`` is its headline figure."""
        if self.enabled:
            prefix = "\r\x1b[K" if self.live else ""
            self._write(f"{prefix}  {self._phase}: {summary}\n")


# ---------------------------------------------------------------------------------------------------------------
# Results


@dataclass
class BenchResult:
    """Everything one run measured, with the options, the driver and the machine (``as_dict`` is the JSON)."""

    driver: dict[str, str]
    options: BenchOptions
    settings: SuiteSettings
    machine: dict[str, Any]
    started: str
    enqueue: dict[str, Any] | None = None
    batch: dict[str, Any] | None = None
    e2e: dict[str, Any] | None = None
    latency: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The run as JSON-ready data (``nestq-bench.json``); NaN and infinities become ``null``."""
        options = asdict(self.options)
        options["phases"] = list(self.options.phases)
        data = {
            "tool": "nestq bench",
            "schema_version": _SCHEMA_VERSION,
            "date": self.started,
            "driver": self.driver,
            "machine": self.machine,
            "options": options,
            "settings": asdict(self.settings),
            "results": {
                "enqueue_single": self.enqueue,
                "enqueue_batch": self.batch,
                "end_to_end": self.e2e,
                "latency": self.latency,
            },
            "notes": self.notes,
        }
        return _json_safe(data)  # type: ignore[no-any-return]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, Python, platform and the load average when the run started."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average_at_start": load,
    }


def _rate(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) or not math.isfinite(value) else f"{value:,.0f} jobs/s"


def _ms(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) or not math.isfinite(value) else f"{value:.3f} ms"


def _rows(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    opts = data["options"]
    res = data["results"]
    rows: list[tuple[str, str, str]] = []
    if "enqueue" in opts["phases"]:
        e = res["enqueue_single"] or {}
        rows.append(("enqueue, one call per job", _rate(e.get("jobs_per_s")),
                     f"{e.get('jobs', 0):,} push_json calls in {e.get('seconds', 0):.3f} s" if e else ""))
    if "batch" in opts["phases"]:
        b = res["enqueue_batch"]
        if b is None:
            rows.append(("enqueue, batched", "n/a", f"the producer has no {BATCH_METHOD}()"))
        else:
            rows.append((f"enqueue, batched ({b['method']})", _rate(b["jobs_per_s"]),
                         f"{b['jobs']:,} jobs, {b['batch_size']:,} per call, {b['seconds']:.3f} s"))
    if "e2e" in opts["phases"]:
        e2e = res["end_to_end"] or {}
        conc = opts["concurrency"]
        rows.append((f"end-to-end, 1 worker, concurrency {conc}", _rate(e2e.get("jobs_per_s")),
                     f"{e2e.get('jobs', 0):,} no-op jobs in {e2e.get('seconds', 0):.3f} s from serve start"
                     if e2e else ""))
        rows.append(("  steady (first job -> last)", _rate(e2e.get("steady_jobs_per_s")),
                     f"first job started {1000 * (e2e.get('first_job_s') or 0):.1f} ms after serve start"
                     if e2e else ""))
    if "latency" in opts["phases"]:
        lat = res["latency"]
        if lat is None:
            rows.append(("latency push -> handler start", "n/a", "--latency-samples 0"))
        else:
            detail = f"{lat['samples']:,} samples on an idle worker"
            rows.append(("latency push -> handler start, p50", _ms(lat["p50_ms"]), detail))
            rows.append(("latency push -> handler start, p99", _ms(lat["p99_ms"]),
                         f"min {_ms(lat['min_ms'])}, max {_ms(lat['max_ms'])}"))
    return rows


def _heading(data: dict[str, Any]) -> list[str]:
    opts = data["options"]
    machine = data["machine"]
    load = machine.get("load_average_at_start")
    return [
        f"nestq bench {data['driver']['name']}: {data['driver']['describe']}",
        f"N={opts['n']:,}, concurrency {opts['concurrency']}, payload ~{opts['payload_bytes']} B, "
        f"{machine['cores']} cores, Python {machine['python']}"
        + (f", load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start" if load else ""),
    ]


def render_table(data: dict[str, Any]) -> str:
    """The results (``BenchResult.as_dict()``) as a plain-text table for a terminal."""
    rows = _rows(data)
    headers = ("METRIC", "VALUE", "DETAIL")
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(3)]
    lines = [*_heading(data), ""]
    for i, row in enumerate([headers, *rows]):
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]}".rstrip())
        if i == 0:
            lines.append(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * widths[2]}")
    lines += [f"note: {n}" for n in data.get("notes", [])]
    return "\n".join(lines)


def render_markdown(data: dict[str, Any]) -> str:
    """The results as a Markdown section (``nestq-bench.md``), to sit beside the conformance report."""
    lines = [f"# nestq bench: {data['driver']['name']}", "", *(f"{h}  " for h in _heading(data)),
             f"{data['date']}", "", "| metric | value | detail |", "| --- | ---: | --- |"]
    lines += [f"| {m.strip()} | {v} | {d} |" for m, v, d in _rows(data)]
    lines += [""] + [f"- {n}" for n in data.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"


def write_bench_files(directory: Path, data: dict[str, Any]) -> dict[str, Path]:
    """Write ``nestq-bench.json`` and ``nestq-bench.md`` into ``directory`` (created); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / name for kind, name in BENCH_FILES.items()}
    paths["json"].write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(data), encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------------------------------------------
# The run


class _Tally:
    """What the no-op handlers report: distinct jobs started, executions, and when the first and last started."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.seen: set[int] = set()
        self.executions = 0
        self.first: float | None = None
        self.last: float | None = None
        self.started_at: float = math.nan
        self.done = asyncio.Event()

    def hit(self, payload: Any) -> None:
        now = time.perf_counter()
        self.executions += 1
        if self.first is None:
            self.first = now
        self.started_at = now
        key = payload.get("n") if isinstance(payload, dict) else None
        if isinstance(key, int):
            self.seen.add(key)
        if len(self.seen) >= self.target and not self.done.is_set():
            self.last = now
            self.done.set()


def _noop_processor(queue: str, tally: _Tally) -> type[Any]:
    """A ``@processor`` class with one no-op handler on ``queue`` that reports to ``tally``."""
    hit = tally.hit

    async def handle(self: object, job: Any) -> None:
        hit(job)

    name = f"BenchNoop{next(_counter)}"
    cls = type(name, (), {"handle": process(queue=queue)(handle)})
    cls.__qualname__ = name
    cls.__module__ = __name__
    return processor(cls)


def batch_method(producer: object) -> Callable[[str, list[JSONValue]], Awaitable[Any]] | None:
    """The producer's batch push (``push_many_json``), when it has an async one; else ``None``."""
    method = getattr(producer, BATCH_METHOD, None)
    if method is None or not callable(method):
        return None
    target = getattr(method, "__func__", method)
    if not (inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(method)):
        return None
    return method  # type: ignore[no-any-return]


class _Runner:
    def __init__(self, scenario: Scenario, options: BenchOptions, progress: Progress, result: BenchResult) -> None:
        self.nq = scenario
        self.opts = options
        self.progress = progress
        self.result = result
        self.settings = result.settings
        self.payloads: list[JSONValue] = [make_payload(i, options.payload_bytes) for i in range(options.n)]

    async def run(self) -> None:
        phases = self.opts.phases
        backlog = self.nq.queue("e2e")
        if "enqueue" in phases:
            await self._enqueue(backlog)
        if "batch" in phases:
            await self._batch(self.nq.queue("batch"))
        if "e2e" in phases:
            await self._e2e(backlog)
        if "latency" in phases:
            await self._latency(self.nq.queue("latency"))

    async def _enqueue(self, queue: str) -> None:
        n = self.opts.n
        self.progress.start("enqueue, one push_json call per job")
        async with self.nq.producer_app(self.settings) as app:
            push = app.producer.push_json
            # One push outside the clock: connecting and loading scripts are set-up, not enqueue rate. Its job is
            # the backlog's first.
            await push(queue, self.payloads[0])
            step = max(1, n // 50)
            start = time.perf_counter()
            for i in range(1, n):
                await push(queue, self.payloads[i])
                if i % step == 0:
                    self.progress.update(i, n)
            elapsed = time.perf_counter() - start
        timed = n - 1
        rate = timed / elapsed if timed and elapsed > 0 else math.nan
        self.result.enqueue = {"jobs": n, "timed_calls": timed, "seconds": elapsed, "jobs_per_s": rate}
        self.progress.finish(_rate(rate))

    async def _batch(self, queue: str) -> None:
        n, size = self.opts.n, self.opts.batch_size
        async with self.nq.producer_app(self.settings) as app:
            push_many = batch_method(app.producer)
            self.progress.start(f"enqueue, batched ({BATCH_METHOD})")
            if push_many is None:
                self.result.batch = None
                self.progress.finish(f"n/a (the producer has no async {BATCH_METHOD})")
                return
            # Warm-up call outside the clock, on a queue of its own (connection, script load, queue registration).
            await push_many(self.nq.queue("batch-warmup"), [self.payloads[0]])
            chunks = [self.payloads[i : i + size] for i in range(0, n, size)]
            done = 0
            start = time.perf_counter()
            for chunk in chunks:
                await push_many(queue, chunk)
                done += len(chunk)
                self.progress.update(done, n)
            elapsed = time.perf_counter() - start
        rate = n / elapsed if elapsed > 0 else math.nan
        self.result.batch = {"method": BATCH_METHOD, "jobs": n, "batch_size": size, "calls": len(chunks),
                             "seconds": elapsed, "jobs_per_s": rate}
        self.progress.finish(_rate(rate))

    def _worker(self, processor_cls: type[Any], label: str) -> tuple[WorkerApp, JobProducer]:
        app = self.nq.worker_application(processor_cls, settings=self.settings)
        worker = WorkerApp(app, self.nq.stop_deadline(self.settings), label)
        return worker, worker.producer

    async def _watch(self, worker: WorkerApp, tally: _Tally, what: str) -> None:
        """Wait for ``tally.done`` under the phase deadline, failing at once if the worker stops."""
        deadline = time.monotonic() + self.opts.phase_timeout
        finished = asyncio.ensure_future(tally.done.wait())
        try:
            while not finished.done():
                problem = worker.failure()
                if problem is not None:
                    raise BenchError(f"while waiting for {what}: {problem}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(
                        f"timed out after {self.opts.phase_timeout:g} s waiting for {what}; "
                        f"{len(tally.seen):,} of {tally.target:,} jobs had started"
                    )
                # Woken by the last job, by the worker stopping, or every 0.1 s for the progress line; never per job.
                await asyncio.wait({finished, worker.task}, timeout=min(left, 0.1), return_when="FIRST_COMPLETED")
                if tally.target > 1:
                    self.progress.update(len(tally.seen), tally.target)
        finally:
            finished.cancel()

    async def _e2e(self, queue: str) -> None:
        n = self.opts.n
        tally = _Tally(n)
        self.progress.start(f"end-to-end, {n:,} queued no-op jobs, 1 worker, concurrency {self.opts.concurrency}")
        app = self.nq.worker_application(_noop_processor(queue, tally), settings=self.settings)
        t0 = time.perf_counter()
        worker = WorkerApp(app, self.nq.stop_deadline(self.settings), "bench-e2e")
        try:
            await self._watch(worker, tally, f"{n:,} jobs on {queue} to start")
        finally:
            await self.nq.halt_worker(worker)
        assert tally.last is not None
        assert tally.first is not None
        elapsed = tally.last - t0
        window = tally.last - tally.first
        steady = (n - 1) / window if n > 1 and window > 0 else math.nan
        self.result.e2e = {
            "jobs": n,
            "seconds": elapsed,
            "jobs_per_s": n / elapsed if elapsed > 0 else math.nan,
            "steady_jobs_per_s": steady,
            "first_job_s": tally.first - t0,
            "extra_executions": tally.executions - n,
        }
        if tally.executions > n:
            self.result.notes.append(
                f"end-to-end: {tally.executions - n} job(s) ran more than once (at-least-once redelivery)"
            )
        self.progress.finish(f"{_rate(n / elapsed if elapsed > 0 else math.nan)} (steady {_rate(steady)})")

    async def _latency(self, queue: str) -> None:
        samples, warmup = self.opts.latency_samples, self.opts.warmup
        self.progress.start(f"latency, push -> handler start, {samples:,} samples on an idle worker")
        if samples == 0:
            self.result.latency = None
            self.progress.finish("skipped (--latency-samples 0)")
            return
        tally = _Tally(1)
        worker, producer = self._worker(_noop_processor(queue, tally), "bench-latency")
        payload = self.payloads[0]
        measured: list[float] = []
        try:
            for i in range(warmup + samples):
                if self.opts.latency_gap:
                    await asyncio.sleep(self.opts.latency_gap)
                tally.done.clear()
                tally.seen.clear()
                start = time.perf_counter()
                await producer.push_json(queue, payload)
                await self._watch(worker, tally, f"latency sample {i + 1} on {queue} to start")
                if i >= warmup:
                    measured.append(tally.started_at - start)
                    self.progress.update(len(measured), samples)
        finally:
            await self.nq.halt_worker(worker)
        ordered = sorted(measured)
        ms = [1000 * x for x in ordered]
        self.result.latency = {
            "samples": len(ms),
            "warmup": warmup,
            "gap_s": self.opts.latency_gap,
            "p50_ms": percentile(ms, 50),
            "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99),
            "min_ms": ms[0],
            "max_ms": ms[-1],
            "mean_ms": sum(ms) / len(ms),
        }
        self.progress.finish(f"p50 {_ms(percentile(ms, 50))}, p99 {_ms(percentile(ms, 99))}")


def run_bench(
    harness: DriverHarness,
    options: BenchOptions,
    *,
    spec: str | None = None,
    origin: str = "",
    progress: Progress | None = None,
) -> BenchResult:
    """Run the chosen phases against ``harness``'s driver and return the figures.

    Calls the harness's ``session_start`` / ``session_end`` around the run, as a suite session does. Raises
    :class:`BenchError` when a phase fails or runs past its deadline.
    """
    options.validate()
    shown = progress if progress is not None else Progress(enabled=False)
    settings = bench_settings(options.concurrency)
    limit = harness.capabilities.max_payload_bytes
    largest = len(json.dumps(make_payload(options.n, options.payload_bytes), separators=(",", ":")))
    if limit is not None and largest + 256 > limit:
        raise ValueError(
            f"--payload-bytes {options.payload_bytes} is above what the driver declares it accepts "
            f"(capabilities.max_payload_bytes={limit}, the envelope included)"
        )
    machine = machine_info()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    harness.session_start()
    try:
        name = getattr(harness, "name", "") or ""
        result = BenchResult(
            driver={
                "spec": spec or name,
                "name": name if name and name != "unnamed" else (spec or "unnamed"),
                "origin": origin,
                "describe": redact_text(harness.describe()),
            },
            options=options,
            settings=settings,
            machine=machine,
            started=started,
        )
        shown.note(f"driver {result.driver['name']}: {result.driver['describe']}")
        scenario = Scenario(harness, settings, rule_id="BENCH", driver_spec=spec)
        runner = _Runner(scenario, options, shown, result)
        budget = options.phase_timeout * (len(options.phases) + 1)
        try:
            scenario.run(runner.run, timeout=budget)
        except AssertionError as exc:  # the kit's own deadlines and checks speak in AssertionError
            raise BenchError(redact_text(str(exc))) from exc
        return result
    finally:
        harness.session_end()
