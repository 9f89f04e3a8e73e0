"""Scenario helpers for the conformance suite; driver authors may use them in their own tests too.

Everything here is synchronous at the edge (:func:`run`) and event-driven inside: a rule is a plain function that
builds a :class:`Scenario`, and runs one coroutine under a deadline. Inside, waits are :func:`eventually` (poll a
predicate against a deadline) or :func:`wait_for` (await an event against a deadline); when one runs out, its
``AssertionError`` names what was awaited and what was seen. :func:`stays` is the one helper that watches for a
while on purpose: it checks that something does *not* happen (a retry, a redelivery) during a quiet period.

Typical use::

    def test_something(nq: Scenario) -> None:
        async def scenario() -> None:
            queue = nq.queue()
            rec = nq.recorder()
            async with nq.worker(rec.processor(queue)) as worker:
                await worker.producer.push_json(queue, {"n": 1})
                await nq.eventually(lambda: rec.count(queue) == 1, "the job on " + queue, seen=rec.summary)

        nq.run(scenario)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DeadLetterInfo, DriverHarness, SuiteSettings
from nestq_spec import (
    Application,
    CancellationToken,
    Container,
    JobContext,
    JobProducer,
    ModuleLike,
    NoJobContextError,
    NonRetryableError,
    current_job,
    module,
    process,
    processor,
)

__all__ = [
    "Behaviour",
    "DeliberateFailure",
    "Delivery",
    "Gate",
    "ProbeError",
    "ProducerApp",
    "Recorder",
    "Scenario",
    "ServeTask",
    "Watched",
    "WorkerApp",
    "WorkerProcess",
    "duplicates",
    "eventually",
    "key_of",
    "look_alike_queues",
    "ordinal",
    "queue_name",
    "run",
    "stays",
    "wait_for",
]

T = TypeVar("T")

_SLUG = re.compile(r"[^a-z0-9]+")
_counter = itertools.count(1)


def queue_name(rule_id: str, suffix: str = "") -> str:
    """A queue name unique to one test and searchable in logs: ``nq-dlv-003-1a2b3c4d`` (``-suffix`` appended)."""
    base = f"nq-{_SLUG.sub('-', rule_id.lower()).strip('-') or 'x'}-{uuid.uuid4().hex[:8]}"
    if suffix:
        base += "-" + _SLUG.sub("-", suffix.lower()).strip("-")
    return base[:128]


def look_alike_queues(base: str) -> list[str]:
    """Queue names that differ from each other only by a separator (``. : - _``), by case, or by being a prefix.

    A storage that maps separators or case onto one key, or builds one queue's keys as a prefix of another's,
    mixes their jobs up; unrelated random names never show it.
    """
    return [
        base,
        f"{base}.x", f"{base}:x", f"{base}-x", f"{base}_x",
        f"{base}-X", base.upper(),
        f"{base}-xy", f"{base}x",
    ]  # fmt: skip


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``12th``, ``13th``, ``21st``... for messages."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _short(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 20] + f"... ({len(text)} chars)"


# ---------------------------------------------------------------------------------------------------------------
# Running a scenario and waiting inside it


def run(scenario: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run ``scenario`` in a fresh event loop and return its result; fail if it takes longer than ``timeout``.

    Unlike ``asyncio.run``, the loop is closed even when a driver leaves behind a task that ignores cancellation:
    such tasks get a short bounded wait, then are abandoned, so one misbehaving driver cannot hang the suite.
    """
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        task = loop.create_task(scenario)
        done, _ = loop.run_until_complete(asyncio.wait({task}, timeout=timeout))
        if not done:
            task.cancel()
            loop.run_until_complete(asyncio.wait({task}, timeout=2.0))
            raise AssertionError(
                f"the scenario did not finish within {timeout:.1f}s (the suite's own deadline for the whole rule); "
                "a wait without a deadline inside the driver, or a serve() that never returns, is the usual cause"
            )
        return task.result()
    finally:
        try:
            leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in leftovers:
                t.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.wait(leftovers, timeout=2.0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class _LogTail(logging.Handler):
    """The last warnings and errors logged while a rule ran: what the driver said when a job never arrived."""

    def __init__(self, keep: int = 4) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[str] = collections.deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                text += f" ({type(exc).__name__}: {exc})"
            self.records.append(f"{record.levelname} {record.name}: {_short(text, 400)}")
        except Exception:  # a record that cannot be formatted must not break the rule's own report
            self.handleError(record)

    def describe(self) -> str:
        if not self.records:
            return ""
        return "the driver logged meanwhile (last warnings and errors): " + " | ".join(self.records)


class ProbeError(AssertionError):
    """A harness probe or hook raised: the rule fails naming the probe, not the driver's worker."""


class Watched:
    """Something that may stop behind the scenario's back (a serving worker) and should end a wait at once."""

    def failure(self) -> str | None:
        """Why it stopped unexpectedly, or ``None`` while all is well."""
        raise NotImplementedError


async def eventually(
    predicate: Callable[[], bool],
    within: float,
    what: str,
    *,
    seen: Callable[[], object] | None = None,
    interval: float = 0.005,
    watch: Iterable[Watched] = (),
) -> None:
    """Poll ``predicate`` until it is true; after ``within`` seconds raise ``AssertionError`` naming ``what``.

    ``seen()`` describes the state for the message. A watched worker that stops while waiting ends the wait with
    an error saying so, instead of letting the deadline run out.
    """
    deadline = time.monotonic() + within
    watched = list(watch)
    while True:
        if predicate():
            return
        for item in watched:
            problem = item.failure()
            if problem is not None:
                raise AssertionError(f"while waiting for {what}: {problem}" + _seen_suffix(seen))
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:.2f}s waiting for {what}" + _seen_suffix(seen))
        await asyncio.sleep(interval)


def _seen_suffix(seen: Callable[[], object] | None) -> str:
    if seen is None:
        return ""
    try:
        shown = seen()
    except Exception as exc:  # a broken description must not hide the real failure
        shown = f"(could not describe the state: {exc!r})"
    return f"; seen: {shown}"


async def wait_for(
    event: asyncio.Event,
    within: float,
    what: str,
    *,
    seen: Callable[[], object] | None = None,
    watch: Iterable[Watched] = (),
) -> None:
    """Await ``event`` for at most ``within`` seconds; on timeout raise ``AssertionError`` naming ``what``."""
    watched = list(watch)
    if not watched:
        try:
            await asyncio.wait_for(event.wait(), within)
        except TimeoutError:
            raise AssertionError(f"timed out after {within:.2f}s waiting for {what}" + _seen_suffix(seen)) from None
        return
    await eventually(event.is_set, within, what, seen=seen, watch=watched)


async def stays(
    predicate: Callable[[], bool],
    period: float,
    what: str,
    *,
    seen: Callable[[], object] | None = None,
    interval: float = 0.005,
    watch: Iterable[Watched] = (),
) -> None:
    """Check that ``predicate`` stays true for ``period`` seconds (a quiet period: proving something does not happen).

    This is the only helper that waits on purpose; rules use it sparingly, with periods derived from the settings
    the driver was given (a retry would have happened within its backoff).
    """
    deadline = time.monotonic() + period
    watched = list(watch)
    while True:
        if not predicate():
            raise AssertionError(f"expected {what} to hold for {period:.2f}s, but it stopped" + _seen_suffix(seen))
        for item in watched:
            problem = item.failure()
            if problem is not None:
                raise AssertionError(f"while checking that {what} holds: {problem}" + _seen_suffix(seen))
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)


# ---------------------------------------------------------------------------------------------------------------
# Recording processors


class Gate:
    """A latch a handler waits on, to hold a job in flight until the scenario opens it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def open(self) -> None:
        """Let every waiting (and future) handler through."""
        self._event.set()

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` was called."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Return once the gate is open."""
        await self._event.wait()


class DeliberateFailure(RuntimeError):
    """What a recorder's handler raises when told to fail; its text names the queue, payload and attempt."""


@dataclass
class Behaviour:
    """What a recorder's handler does besides recording; every field defaults to "succeed at once".

    Failures raise :class:`DeliberateFailure` (or ``NonRetryableError`` when ``non_retryable``), whose message
    contains the queue name, so a dead letter's error text can be matched to its rule.
    """

    fail_first: int = 0
    """Raise on attempts ``1..fail_first`` (as ``current_job().attempt`` reports them), then succeed."""
    fail_always: bool = False
    """Raise on every attempt."""
    non_retryable: bool = False
    """Raise ``NonRetryableError`` instead of a retryable error when failing."""
    fail_when: Callable[[Any], bool] | None = None
    """Raise (on every attempt) for payloads this predicate accepts."""
    raise_factory: Callable[[Delivery], BaseException] | None = None
    """Build the exception to raise instead of the default one (when failing)."""
    hold: Gate | None = None
    """Wait for this gate before finishing (after recording the start)."""
    hold_when: Callable[[Any], bool] | None = None
    """Only hold payloads this predicate accepts (all when ``None``)."""
    work: float = 0.0
    """Simulated work: seconds the handler spends (asleep) before finishing."""
    action: Callable[[Delivery], Awaitable[None]] | None = None
    """An extra coroutine the handler awaits after recording the start (push a follow-up job, say)."""


@dataclass
class Delivery:
    """One run of one handler method for one job, as the recorder saw it."""

    queue: str
    method: str
    payload: Any
    attempt: int
    job_id: str | None
    context: JobContext
    started: float
    """``time.monotonic()`` when the handler began."""
    running_at_start: int
    """Handler runs in flight (across the recorder) when this one began, itself included."""
    finished: float | None = None
    outcome: str = "running"
    """``running``, ``ok``, ``raised: <error>`` or ``cancelled``."""
    context_at_end: JobContext | None = None
    """``current_job()`` just before the handler returned (to check that it did not change under it)."""
    worker: str = ""
    """Which worker ran it: the process id and the asyncio task the driver ran the handler in."""
    at: float = 0.0
    """Seconds since the recorder was created when the handler began (a relative timestamp for messages)."""

    def brief(self) -> dict[str, object]:
        """A short description for failure messages: enough to tell a redelivery from a retry."""
        return {
            "queue": self.queue,
            "payload": self.payload,
            "job_id": self.job_id,
            "attempt": self.attempt,
            "worker": self.worker,
            "t": f"+{self.at:.3f}s",
            "outcome": self.outcome,
        }


class Recorder:
    """Builds ``@processor`` classes for one test and records every delivery they receive.

    Create it inside the scenario's event loop. Each :meth:`processor` call makes a new class (a unique name, one
    ``@process`` method per queue, or several with ``methods=n``), so rules never share handlers.
    """

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.running = 0
        self.max_running = 0
        self.changed = asyncio.Event()
        """Set whenever a delivery starts or finishes (clear it yourself to wait for the next change)."""
        self.t0 = time.monotonic()

    def processor(
        self,
        *queues: str,
        behaviour: Behaviour | None = None,
        methods: int = 1,
        name: str = "Recording",
    ) -> type[Any]:
        """Make and register a ``@processor`` class with ``methods`` handler(s) on each of ``queues``."""
        if not queues:
            raise ValueError("processor() needs at least one queue")
        how = behaviour or Behaviour()
        namespace: dict[str, Any] = {}
        for qi, queue in enumerate(queues):
            for mi in range(methods):
                namespace[f"handle_q{qi}_m{mi}"] = process(queue=queue)(self._handler(queue, how))
        cls_name = f"{name}{next(_counter)}"
        cls = type(cls_name, (), namespace)
        cls.__qualname__ = cls_name
        cls.__module__ = __name__
        return processor(cls)

    def _handler(self, queue: str, how: Behaviour) -> Callable[[Any, Any], Awaitable[None]]:
        recorder = self

        async def handle(self: object, job: Any) -> None:
            await recorder._deliver(queue, job, how)

        return handle

    async def _deliver(self, queue: str, job: Any, how: Behaviour) -> None:
        ctx = current_job()
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        now = time.monotonic()
        task = asyncio.current_task()
        delivery = Delivery(
            queue, ctx.method, job, ctx.attempt, ctx.job_id, ctx, now, self.running,
            worker=f"pid {os.getpid()} task {task.get_name() if task is not None else '?'}", at=now - self.t0,
        )
        self.deliveries.append(delivery)
        self.changed.set()
        try:
            if how.action is not None:
                await how.action(delivery)
            if how.work:
                await asyncio.sleep(how.work)
            if how.hold is not None and (how.hold_when is None or how.hold_when(job)):
                await how.hold.wait()
            failing = (
                how.fail_always
                or ctx.attempt <= how.fail_first
                or (how.fail_when is not None and how.fail_when(job))
            )
            try:
                delivery.context_at_end = current_job()
            except NoJobContextError:
                delivery.context_at_end = None
            if failing:
                if how.raise_factory is not None:
                    raise how.raise_factory(delivery)
                text = f"deliberate failure on {queue} of attempt {ctx.attempt} for {_short(job, 80)}"
                if how.non_retryable:
                    raise NonRetryableError(text)
                raise DeliberateFailure(text)
        except asyncio.CancelledError:
            delivery.outcome = "cancelled"
            raise
        except BaseException as exc:
            delivery.outcome = f"raised: {type(exc).__name__}"
            raise
        else:
            delivery.outcome = "ok"
        finally:
            delivery.finished = time.monotonic()
            self.running -= 1
            self.changed.set()

    # Queries -------------------------------------------------------------------------------------------------

    def of(self, queue: str | None = None) -> list[Delivery]:
        """Deliveries (of ``queue``, or all), in the order they started."""
        return [d for d in self.deliveries if queue is None or d.queue == queue]

    def payloads(self, queue: str | None = None) -> list[Any]:
        """Payloads delivered (of ``queue``, or all), in the order they started, repeats included."""
        return [d.payload for d in self.of(queue)]

    def count(self, queue: str | None = None, payload: Any = None, *, outcome: str | None = None) -> int:
        """How many deliveries match (``payload=None`` matches any payload; ``outcome`` e.g. ``"ok"``)."""
        return sum(
            1
            for d in self.of(queue)
            if (payload is None or d.payload == payload) and (outcome is None or d.outcome == outcome)
        )

    def attempts(self, payload: Any, queue: str | None = None) -> list[int]:
        """Attempt numbers of the deliveries of ``payload``, in the order they started."""
        return [d.attempt for d in self.of(queue) if d.payload == payload]

    def keys(self, queue: str | None = None, key: str = "n", *, outcome: str | None = None) -> list[Any]:
        """``payload[key]`` of each delivery whose payload is an object holding ``key`` (repeats included)."""
        return [
            d.payload[key]
            for d in self.of(queue)
            if isinstance(d.payload, dict) and key in d.payload and (outcome is None or d.outcome == outcome)
        ]

    def summary(self, queue: str | None = None, limit: int = 12) -> str:
        """A short description of what was delivered, for failure messages."""
        items = self.of(queue)
        head = f"{len(items)} deliveries" + (f" on {queue}" if queue else "")
        if not items:
            return head
        shown = ", ".join(_short(d.brief(), 260) for d in items[:limit])
        more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
        return f"{head}: {shown}{more}"


def key_of(payload: Any, key: str = "n") -> Any:
    """``payload[key]`` when the payload is an object holding ``key``, else ``None`` (a mangled payload)."""
    return payload.get(key) if isinstance(payload, dict) else None


def duplicates(values: Sequence[Any]) -> dict[str, int]:
    """Values seen more than once, as ``{repr(value): count}`` (for messages about duplicate deliveries)."""
    counts: dict[str, int] = {}
    for v in values:
        key = json.dumps(v, sort_keys=True, default=repr)
        counts[key] = counts.get(key, 0) + 1
    return {k: c for k, c in counts.items() if c > 1}


# ---------------------------------------------------------------------------------------------------------------
# Apps


def _producer(container: Container) -> JobProducer:
    found = container.get(JobProducer)
    if not isinstance(found, JobProducer):
        raise AssertionError(f"the container's JobProducer is {found!r}, which does not subclass JobProducer")
    return found


def _root_module(name: str, imports: Sequence[ModuleLike], providers: Sequence[type[Any]]) -> type[Any]:
    cls = type(f"{name}{next(_counter)}", (), {})
    return module(imports=list(imports), providers=list(providers))(cls)


@dataclass
class ProducerApp:
    """A producer-only app: the driver's producer module and nothing else."""

    app: Application
    container: Container
    producer: JobProducer


def _early_stop(task: asyncio.Task[None], cancel: CancellationToken, what: str) -> str | None:
    if cancel.is_cancelled or not task.done():
        return None
    if task.cancelled():
        return f"{what} was cancelled"
    exc = task.exception()
    if exc is None:
        return f"{what} returned before it was cancelled"
    return f"{what} raised {type(exc).__name__}: {_short(str(exc), 400)}"


class ServeTask(Watched):
    """A transport's ``serve()`` that a rule runs itself; it must keep serving until the rule cancels it."""

    def __init__(self, task: asyncio.Task[None], cancel: CancellationToken, label: str) -> None:
        self.task = task
        self.cancel = cancel
        self.label = label

    def failure(self) -> str | None:
        """Why this ``serve()`` ended before it was cancelled, or ``None``."""
        return _early_stop(self.task, self.cancel, f"serve() of {self.label}")


class WorkerApp(Watched):
    """A worker app being served in a task: producer module + worker module + the test's processors."""

    def __init__(self, app: Application, serve_timeout: float, label: str) -> None:
        self.app = app
        self.container = app.container
        self.producer: JobProducer = _producer(app.container)
        self.cancel = CancellationToken()
        self.label = label
        self.task: asyncio.Task[None] = asyncio.create_task(
            app.serve(self.cancel, shutdown_timeout=serve_timeout), name=f"nestq-suite-{label}"
        )
        self.stopped_at: float | None = None
        self.cancelled_at: float | None = None

    def failure(self) -> str | None:
        """Why this worker stopped before it was asked to (``None`` while it serves, or once asked to stop)."""
        return _early_stop(self.task, self.cancel, f"the worker app's serve() ({self.label})")

    async def stop(self, within: float) -> float:
        """Cancel and wait for ``serve`` to return; return the seconds it took.

        Raises ``AssertionError`` when ``serve`` takes longer than ``within`` or raises.
        """
        self.cancelled_at = time.monotonic()
        self.cancel.cancel()
        done, _ = await asyncio.wait({self.task}, timeout=within)
        took = time.monotonic() - self.cancelled_at
        if not done:
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=2.0)
            raise AssertionError(
                f"serve() did not return within {within:.2f}s of cancel ({self.label}); expected it to stop "
                "receiving, finish or return its in-flight jobs within the shutdown grace, and return"
            )
        self.stopped_at = time.monotonic()
        if self.task.cancelled():
            raise AssertionError(f"serve() ended cancelled instead of returning ({self.label})")
        exc = self.task.exception()
        if exc is not None:
            raise AssertionError(
                f"serve() raised {type(exc).__name__} after cancel ({self.label}): {_short(str(exc), 400)}"
            ) from exc
        return took


# ---------------------------------------------------------------------------------------------------------------
# Worker subprocesses


class WorkerProcess(Watched):
    """A worker in another process (``python -m nestq_conformance.worker_process``), recording to a file."""

    def __init__(self, popen: subprocess.Popen[bytes], record: Path, log: Path, label: str) -> None:
        self.popen = popen
        self.record = record
        self.log = log
        self.label = label
        self.expected_exit = False

    @property
    def pid(self) -> int:
        """The process id (the ``pid`` of its record lines)."""
        return self.popen.pid

    def events(self) -> list[dict[str, Any]]:
        """Every complete record line so far (``booted``, ``started``, ``finished``...), oldest first."""
        try:
            text = self.record.read_text("utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines(keepends=True):
            if line.endswith("\n"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def stderr_tail(self, limit: int = 1500) -> str:
        """The end of the process's output, for failure messages."""
        try:
            text = self.log.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return text[-limit:]

    def failure(self) -> str | None:
        """Why the process stopped unexpectedly (``None`` while it runs or after an expected exit)."""
        code = self.popen.poll()
        if code is None or self.expected_exit:
            return None
        return f"worker process {self.label} (pid {self.pid}) exited with code {code}; its output ends with:\n" + (
            self.stderr_tail() or "(nothing)"
        )

    async def wait_event(
        self, predicate: Callable[[dict[str, Any]], bool], within: float, what: str
    ) -> dict[str, Any]:
        """Wait for a record line that ``predicate`` accepts and return it."""
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [e for e in self.events() if predicate(e)]
            return bool(found)

        await eventually(
            check, within, what, seen=lambda: _short(self.events()[-8:], 800), interval=0.01, watch=[self]
        )
        return found[0]

    def kill(self) -> None:
        """SIGKILL the process (no cleanup, no shutdown: a crash)."""
        self.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM the process (a graceful stop)."""
        self.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    async def wait_exit(self, within: float) -> int:
        """Wait for the process to exit and return its code."""
        await eventually(lambda: self.popen.poll() is not None, within, f"worker process {self.label} to exit",
                         interval=0.01)
        code = self.popen.returncode
        assert code is not None
        return code


# ---------------------------------------------------------------------------------------------------------------
# The scenario


class Scenario:
    """Everything one rule needs: the harness, the settings, deadlines, unique queues, apps and worker processes.

    ``timeout`` (default 5 s, times the scale) bounds each wait; ``budget`` (default 30 s, times the scale)
    bounds the whole rule in :meth:`run`.
    """

    def __init__(
        self,
        harness: DriverHarness,
        settings: SuiteSettings,
        *,
        scale: float = 1.0,
        rule_id: str = "XXX-000",
        driver_spec: str | None = None,
    ) -> None:
        self.harness = harness
        self.settings = settings
        self.scale = scale
        self.rule_id = rule_id
        self.driver_spec = driver_spec
        self.timeout = 5.0 * scale
        self.budget = 30.0 * scale
        self._running: list[Watched] = []
        self._apps: list[Application] = []
        self._processes: list[WorkerProcess] = []
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def capabilities(self) -> Capabilities:
        """The driver's capability manifest."""
        return self.harness.capabilities

    def queue(self, suffix: str = "") -> str:
        """A new queue name unique to this rule (``nq-<rule>-<8 hex>[-suffix]``)."""
        return queue_name(self.rule_id, suffix)

    def seconds(self, base: float) -> float:
        """``base`` seconds stretched by the timeout scale."""
        return base * self.scale

    def recorder(self) -> Recorder:
        """A new :class:`Recorder` (call inside the scenario)."""
        return Recorder()

    def run(self, scenario: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None) -> T:
        """Run ``scenario()`` under the rule's budget, then stop whatever it left running."""

        async def main() -> T:
            try:
                return await scenario()
            finally:
                await self._cleanup()

        logs = _LogTail()
        root = logging.getLogger()
        root.addHandler(logs)
        try:
            return run(main(), timeout or self.budget)
        except AssertionError as exc:
            tail = logs.describe()
            if not tail:
                raise
            lead = ""
            if "attempts start at 1" in tail:
                lead = "attempt 0: the driver built a JobMeta with an attempt below 1 (attempts start at 1); "
            raise AssertionError(f"{lead}{exc}\n{tail}") from exc.__cause__
        finally:
            root.removeHandler(logs)
            self._end_processes()
            if self._workdir is not None:
                self._workdir.cleanup()
                self._workdir = None

    def _end_processes(self) -> None:
        """SIGTERM the worker processes still running, give them the stop deadline, then SIGKILL the rest."""
        alive = [p for p in self._processes if p.popen.poll() is None]
        for proc in alive:
            proc.terminate()
        deadline = time.monotonic() + self.stop_deadline()
        for proc in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
            if proc.popen.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.popen.wait(5)
        self._processes.clear()

    async def _cleanup(self) -> None:
        running, self._running = list(self._running), []
        for item in running:
            if isinstance(item, WorkerApp):
                await self._halt(item, self.stop_deadline())
        # Shut down every app the rule booted, so that no rule leaks its connections into the next one. A failing
        # close is not this rule's failure (LIF-009 judges closing), so it is only logged.
        apps, self._apps = list(reversed(self._apps)), []
        for app in apps:
            try:
                await asyncio.wait_for(app.close(), self.timeout)
            except Exception as exc:
                logging.getLogger("nestq.suite").warning("closing %s failed: %s: %s", app.root,
                                                         type(exc).__name__, exc)

    async def close_apps(self) -> None:
        """Close every app this scenario booted (newest first) now; raise what a close raised, or on a timeout."""
        apps, self._apps = list(reversed(self._apps)), []
        for app in apps:
            try:
                await asyncio.wait_for(app.close(), self.timeout)
            except TimeoutError:
                raise AssertionError(f"closing {app.root} did not finish within {self.timeout:.2f}s") from None

    # Waiting, watching every worker this scenario started ----------------------------------------------------

    async def eventually(
        self,
        predicate: Callable[[], bool],
        what: str,
        *,
        within: float | None = None,
        seen: Callable[[], object] | None = None,
    ) -> None:
        """:func:`eventually` with the scenario's default timeout, failing early if a worker stops."""
        await eventually(predicate, within or self.timeout, what, seen=seen, watch=list(self._running))

    async def wait_for(
        self, event: asyncio.Event, what: str, *, within: float | None = None, seen: Callable[[], object] | None = None
    ) -> None:
        """:func:`wait_for` with the scenario's default timeout, failing early if a worker stops."""
        await wait_for(event, within or self.timeout, what, seen=seen, watch=list(self._running))

    async def stays(
        self, predicate: Callable[[], bool], period: float, what: str, *, seen: Callable[[], object] | None = None
    ) -> None:
        """:func:`stays`, failing early if a worker stops."""
        await stays(predicate, period, what, seen=seen, watch=list(self._running))

    async def poll(
        self,
        probe: Callable[[], Awaitable[T]],
        accept: Callable[[T], bool],
        what: str,
        *,
        within: float | None = None,
        interval: float = 0.01,
    ) -> T:
        """Await ``probe()`` (a harness probe, say) until ``accept`` takes its result; return that result.

        On timeout the ``AssertionError`` names ``what`` and shows the last result.
        """
        limit = within or self.timeout
        deadline = time.monotonic() + limit
        while True:
            value = await probe()
            if accept(value):
                return value
            for item in list(self._running):
                problem = item.failure()
                if problem is not None:
                    raise AssertionError(f"while waiting for {what}: {problem}; last seen: {_short(value, 600)}")
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {limit:.2f}s waiting for {what}; last seen: {_short(value, 600)}"
                )
            await asyncio.sleep(interval)

    async def dead_letters(self, container: Container, queue: str, count: int = 1) -> list[DeadLetterInfo]:
        """Poll the harness's ``dead_letters`` probe until ``queue`` has at least ``count`` dead letters."""
        return await self.poll(
            lambda: self.probe("dead_letters", self.harness.dead_letters(container, queue)),
            lambda found: len(found) >= count,
            f"{count} dead letter(s) on {queue}",
        )

    async def restart_storage(self) -> None:
        """Restart the storage through the harness and check that it really restarted.

        ``storage_identity()`` is read before and after ``restart_storage()``; an identity that did not change
        means nothing restarted, and the rule fails saying so (a hook that does nothing cannot pass).
        """
        before = await self.probe("storage_identity", self.harness.storage_identity())
        await self.harness.restart_storage()
        after = await self.probe("storage_identity", self.harness.storage_identity())
        if before == after:
            raise AssertionError(
                f"restart_storage() returned but the storage did not restart: storage_identity() is {before!r} "
                "before and after (expected a new run id, process id or start time)"
            )

    async def probe(self, name: str, call: Awaitable[T]) -> T:
        """Await a harness probe; an error inside it is reported as the probe's, not blamed on the driver's worker."""
        try:
            return await call
        except (NotImplementedError, AssertionError):
            raise
        except Exception as exc:
            raise ProbeError(
                f"the harness's {name} probe raised {type(exc).__name__}: {_short(str(exc), 400)} (an error in the "
                "harness, not a behaviour of the worker: fix the probe)"
            ) from exc

    def quiet_period(self) -> float:
        """How long to watch for something that must not happen: long enough for a retry or a redelivery poll."""
        s = self.settings
        return max(2 * s.backoff_cap, 4 * s.poll_interval, self.seconds(0.1)) + s.backoff

    # Apps ------------------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def producer_app(self, settings: SuiteSettings | None = None) -> AsyncIterator[ProducerApp]:
        """Boot an app holding only the driver's producer module and yield its producer."""
        root = _root_module("SuiteProducerApp", [self.harness.producer_module(settings or self.settings)], [])
        app = Application.create(root)
        self._apps.append(app)
        yield ProducerApp(app, app.container, _producer(app.container))

    def worker_application(
        self, *processors: type[Any], settings: SuiteSettings | None = None, producer: ModuleLike | None = None
    ) -> Application:
        """Assemble (without serving) producer module + worker module + ``processors``; call inside the loop.

        ``producer``: another producer module than ``harness.producer_module(settings)`` (the configuration rules
        boot ``harness.configured_module(pinned)``).
        """
        chosen = settings or self.settings
        root = _root_module(
            "SuiteWorkerApp",
            [producer if producer is not None else self.harness.producer_module(chosen),
             self.harness.worker_module(chosen)],
            list(processors),
        )
        app = Application.create(root)
        self._apps.append(app)
        if not app.transports:
            raise AssertionError(
                "the worker app has no transport: harness.worker_module() must contribute a TransportContribution"
            )
        return app

    async def start_worker(
        self,
        *processors: type[Any],
        settings: SuiteSettings | None = None,
        label: str = "worker",
    ) -> WorkerApp:
        """Boot producer module + worker module + ``processors`` and serve it in a task; stop it with ``stop``."""
        chosen = settings or self.settings
        app = self.worker_application(*processors, settings=chosen)
        worker = WorkerApp(app, self.stop_deadline(chosen) + self.seconds(5.0), label)
        self._running.append(worker)
        return worker

    def stop_deadline(self, settings: SuiteSettings | None = None) -> float:
        """How long ``serve`` may take to return after cancel: the shutdown grace plus one (scaled) second."""
        return (settings or self.settings).shutdown_grace + self.seconds(1.0)

    async def stop_worker(self, worker: WorkerApp, within: float | None = None) -> float:
        """Stop ``worker`` (see :meth:`WorkerApp.stop`) and stop watching it."""
        try:
            return await worker.stop(within if within is not None else self.stop_deadline())
        finally:
            if worker in self._running:
                self._running.remove(worker)

    @contextlib.asynccontextmanager
    async def worker(
        self,
        *processors: type[Any],
        settings: SuiteSettings | None = None,
        label: str = "worker",
    ) -> AsyncIterator[WorkerApp]:
        """Serve a worker app for the duration of the block, then stop it.

        Leaving the block cancels the worker and waits up to :meth:`stop_deadline` for ``serve`` to return; a slow
        or failing shutdown is *not* an error here (the LIF rules judge shutdown with :meth:`stop_worker`), so
        one shutdown bug does not fail every rule. A worker that stopped on its own while the block ran is.
        """
        worker = await self.start_worker(*processors, settings=settings, label=label)
        try:
            yield worker
            problem = worker.failure()
            if problem is not None:
                raise AssertionError(problem)
        finally:
            if worker in self._running:
                self._running.remove(worker)
            await self._halt(worker, self.stop_deadline(settings))

    async def halt_worker(self, worker: WorkerApp, within: float | None = None) -> None:
        """Stop ``worker`` without judging its shutdown: cancel, wait up to ``within``, then interrupt it."""
        if worker in self._running:
            self._running.remove(worker)
        await self._halt(worker, self.stop_deadline() if within is None else within)

    async def _halt(self, worker: WorkerApp, within: float) -> None:
        worker.cancel.cancel()
        await asyncio.wait({worker.task}, timeout=within)
        if not worker.task.done():
            worker.task.cancel()
            await asyncio.wait({worker.task}, timeout=self.seconds(2.0))
        if worker.task.done() and not worker.task.cancelled():
            worker.task.exception()  # retrieved, so asyncio does not log it as never retrieved

    # Worker processes ------------------------------------------------------------------------------------------

    def workdir(self) -> Path:
        """A temporary folder for this rule's files, removed after the rule."""
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix=f"nestq-{self.rule_id.lower()}-")
        return Path(self._workdir.name)

    def spawn_worker(
        self,
        *queues: str,
        hang_key: str | None = None,
        settings: SuiteSettings | None = None,
        label: str | None = None,
    ) -> WorkerProcess:
        """Start a worker process serving ``queues`` with a recording processor.

        The child boots ``harness.producer_module`` + ``harness.worker_module`` with the same driver, in an
        environment extended by ``harness.subprocess_env()``. With ``hang_key``, a job whose payload is an object
        with a true ``hang_key`` is recorded as started and then never finishes (so the test can SIGKILL it).
        """
        if not self.driver_spec:
            raise AssertionError(
                "no driver spec to give the worker process: the plugin resolved the harness but did not say how "
                "(run with --nestq-driver=... or NESTQ_DRIVER)"
            )
        n = len(self._processes) + 1
        label = label or f"worker-process-{n}"
        folder = self.workdir()
        record = folder / f"{label}.jsonl"
        log = folder / f"{label}.log"
        chosen = settings or self.settings
        cmd = [
            sys.executable, "-m", "nestq_conformance.worker_process",
            "--driver", self.driver_spec,
            "--record", str(record),
            "--settings", json.dumps(dataclasses.asdict(chosen)),
        ]
        for queue in queues:
            cmd += ["--queue", queue]
        if hang_key:
            cmd += ["--hang-key", hang_key]
        env = dict(os.environ)
        env.update(self.harness.subprocess_env())
        # The child must import the driver exactly as this process did, even from an uninstalled checkout.
        paths = [p for p in sys.path if p and Path(p).exists()]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.pop("PYTEST_CURRENT_TEST", None)
        with log.open("wb") as out:
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        proc = WorkerProcess(popen, record, log, label)
        self._processes.append(proc)
        return proc

    def processes(self) -> list[WorkerProcess]:
        """Worker processes this rule started."""
        return list(self._processes)

