"""The consumer side of the Redis driver: :class:`RedisWorker`, the ``Transport`` the worker module contributes.

It follows the seed's five numbered places: (1) the reachable ``@process`` methods, (2) grouped by queue,
(3) one claim loop per queue, (4) ``dispatch`` of each envelope, (5) the retry / dead-letter policy.

Shape of one worker, all in one event loop:

- a claim loop per queue leases up to ``min(claim_batch, free slots)`` jobs in one round trip, and when the
  queue is empty blocks on the queue's wake-up list for at most ``poll_timeout`` (always finite);
- ``concurrency`` runner tasks take claimed jobs from a local buffer and dispatch them (a fixed pool: cheaper
  than a task per job, and it bounds concurrency by construction);
- a flusher writes outcomes: acks of many jobs in one call, failures one by one (retry through the delayed set
  with exponential backoff and jitter, or dead letter);
- a heartbeat extends the leases of every job in hand (buffered, running, or awaiting its ack);
- a maintenance task sweeps expired leases and due delayed jobs, and trims old dead letters.

Every storage call is guarded: a lost connection or a restarting Redis is logged, backed off (bounded) and
retried; the serve loop never ends on a storage error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.exceptions import RedisError

from nestq_spec import (
    CancellationToken,
    Container,
    JobMeta,
    ProcessMethod,
    Transport,
    dispatch,
    is_retryable,
    routes,
)

from .config import RedisConfig, display_url
from .connection import RedisConnection, check_access
from .store import ClaimedJob, RedisQueueStore

__all__ = ["STORAGE_ERRORS", "RedisWorker", "error_text"]

log = logging.getLogger("nestq.redis")

T = TypeVar("T")

STORAGE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)
"""Errors that mean "the storage is unreachable or unwell": logged, backed off and retried, never fatal."""

# What a bounded storage call may raise while the worker stops: its own timeout or a storage error.
_STOP_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *STORAGE_ERRORS)
_MAX_ERROR_TEXT = 4000
# How long a cancelled task may take to unwind at shutdown before it is abandoned.
_UNWIND_SECONDS = 0.5
# Dead letters older than the retention are trimmed this often (and at start).
_TRIM_EVERY = 60.0
# A dead-letter retention of 0 means "keep": trim with an age no letter reaches.
_FOREVER = 100 * 365 * 86400.0


def error_text(exc: BaseException) -> str:
    """``"Type: message"`` for a dead letter, built defensively: ``str(exc)`` may raise or be huge."""
    try:
        message = str(exc)
    except Exception as inner:
        message = f"<str() of the exception failed: {type(inner).__name__}>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if len(text) > _MAX_ERROR_TEXT:
        suffix = f" ... ({len(text)} chars, truncated)"
        text = text[: _MAX_ERROR_TEXT - len(suffix)] + suffix
    return text


# A persistent storage error is reported at WARNING on every failure, at most this often per task and queue
# (never silenced): the loops back off to about this pace anyway, so in practice each failure is logged.
_REPORT_EVERY = 1.0


class _Backoff:
    """Bounded exponential backoff for storage errors, logging failures at WARNING (rate-limited) and recovery.

    Issue 13 (item 7): a persistent error (WRONGTYPE, OOM, an outage) keeps being reported at WARNING, at most
    once per ``_REPORT_EVERY`` seconds per task and queue, with the count since the last report.
    """

    def __init__(self, what: str, cap: float = 1.0) -> None:
        self.what = what
        self.cap = cap
        self.failures = 0
        self.unreported = 0
        self.next_report = 0.0

    def failed(self, exc: BaseException) -> float:
        self.failures += 1
        self.unreported += 1
        delay = min(self.cap, 0.05 * 2.0 ** min(self.failures - 1, 10))
        now = time.monotonic()
        if now >= self.next_report:
            more = f" ({self.unreported} failure(s) since the last report)" if self.failures > 1 else ""
            log.warning("redis error during %s (%s: %s)%s; retrying in %.2fs", self.what, type(exc).__name__,
                        exc, more, delay)
            self.unreported = 0
            self.next_report = now + _REPORT_EVERY
        else:
            log.debug("redis error during %s (%s: %s); retrying in %.2fs", self.what, type(exc).__name__, exc,
                      delay)
        return delay

    def ok(self) -> None:
        if self.failures:
            log.info("redis reachable again for %s after %d failed attempt(s)", self.what, self.failures)
            self.failures = 0
            self.unreported = 0
            self.next_report = 0.0


@dataclass(eq=False, slots=True)
class _Held:
    """A job this worker holds a lease on: buffered, running, or finished and waiting for its outcome to land."""

    queue: _Queue
    job: ClaimedJob
    started: bool = False
    finished: bool = False
    lost: bool = False


@dataclass(eq=False)
class _Queue:
    name: str
    methods: tuple[ProcessMethod, ...]
    held: dict[str, _Held] = field(default_factory=dict)
    acks: list[_Held] = field(default_factory=list)
    fails: list[tuple[_Held, str, float | None]] = field(default_factory=list)
    # Issue 13 (item 2): each queue's heartbeat, outcome flush and upkeep fail and back off on their own, so
    # one broken queue (WRONGTYPE, say) never stops the others' leases from being extended or acks recorded.
    heartbeat_backoff: _Backoff = field(init=False)
    flush_backoff: _Backoff = field(init=False)
    upkeep_backoff: _Backoff = field(init=False)

    def __post_init__(self) -> None:
        self.heartbeat_backoff = _Backoff(f"heartbeat on {self.name}")
        self.flush_backoff = _Backoff(f"recording job outcomes on {self.name}")
        self.upkeep_backoff = _Backoff(f"sweep on {self.name}")


async def _until(awaitable: Awaitable[T], stop: asyncio.Event) -> tuple[bool, T | None]:
    """Await ``awaitable`` unless ``stop`` is set first (then cancel it); return (completed, result)."""
    if stop.is_set():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        return False, None
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return True, task.result()
    task.cancel()
    # An abandoned call's error is of no interest; retrieve it so asyncio does not report it as never retrieved.
    task.add_done_callback(_retrieve)
    # Bounded: the cancel may be swallowed by the client (see _Run._settle); the call then ends by its own timeout.
    await asyncio.wait({task}, timeout=_UNWIND_SECONDS)
    return False, None


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class RedisWorker(Transport):
    """Consumes every queue that has a reachable ``@process`` handler, at-least-once, with leases.

    Built by ``RedisQueueWorkerModule`` from the app's :class:`RedisConnection` (its settings included).
    """

    def __init__(self, connection: RedisConnection, config: RedisConfig | None = None) -> None:
        self.connection = connection
        self.config = config if config is not None else connection.config
        self.shutdown_grace = self.config.shutdown_grace

    def __repr__(self) -> str:
        return f"RedisWorker(url={display_url(self.config.url)!r}, key_prefix={self.config.key_prefix!r})"

    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """Claim, run and settle jobs until ``cancel``; then stop claiming, return unstarted jobs and wait.

        Running jobs get up to ``shutdown_grace`` seconds; any still running then are interrupted and keep their
        lease, so they are redelivered once it expires: never lost.
        """
        # (1) + (2): the reachable @process methods, grouped by queue name.
        table = routes(container)
        if not table:
            log.warning("RedisWorker: no reachable @process handler, so no queue to consume; idle until stopped")
            await cancel.wait()
            return
        # resend=False: a claim whose reply was lost must not be re-sent by the client (issue 13, item 4).
        client = self.connection.new_client(resend=False)
        try:
            store = RedisQueueStore(client, prefix=self.config.key_prefix,
                                    dead_letter_max=self.config.dead_letter_max,
                                    max_job_bytes=self.config.max_payload_bytes)
            # Issue 13 (item 7): a wrong password or a missing ACL permission fails the boot (ConfigError).
            await check_access(store, self.config, list(table))
            run = _Run(self.config, store, container, table)
            await run.serve(cancel)
        finally:
            with contextlib.suppress(*STORAGE_ERRORS, RuntimeError):
                await client.aclose()


class _Run:
    """One serve() call: the loops and the state they share."""

    def __init__(
        self,
        config: RedisConfig,
        store: RedisQueueStore,
        container: Container,
        table: dict[str, tuple[ProcessMethod, ...]],
    ) -> None:
        self.config = config
        self.store = store
        self.container = container
        self.queues = [_Queue(name, methods) for name, methods in table.items()]
        self.free = config.concurrency
        self.slot_freed = asyncio.Event()
        self.buffer: asyncio.Queue[_Held | None] = asyncio.Queue()
        self.stop = asyncio.Event()
        """Set when shutdown begins: stop claiming."""
        self.closing = asyncio.Event()
        """Set when shutdown ends: the flusher, heartbeat and maintenance loops exit."""
        self.outcome = asyncio.Event()
        self.flush_lock = asyncio.Lock()
        self.flush_retry_in = 1.0
        self.rng = random.Random()

    async def serve(self, cancel: CancellationToken) -> None:
        names = ", ".join(q.name for q in self.queues)
        log.info("RedisWorker serving %s on %s (prefix %s, concurrency %d)", names, display_url(self.config.url),
                 self.config.key_prefix, self.config.concurrency)
        # (3): one claim loop per queue, a fixed pool of runners, and the settling / upkeep loops.
        claimers = [asyncio.create_task(self._claim_loop(q), name=f"nestq-redis-claim-{q.name}") for q in self.queues]
        runners = [asyncio.create_task(self._runner(), name=f"nestq-redis-run-{i}")
                   for i in range(self.config.concurrency)]
        upkeep = [
            asyncio.create_task(self._flush_loop(), name="nestq-redis-flush"),
            asyncio.create_task(self._heartbeat_loop(), name="nestq-redis-heartbeat"),
            asyncio.create_task(self._maintenance_loop(), name="nestq-redis-maintenance"),
        ]
        everything = [*claimers, *runners, *upkeep]
        cancelled = asyncio.ensure_future(cancel.wait())
        crash: BaseException | None = None
        try:
            done, _ = await asyncio.wait({cancelled, *everything}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {cancelled}:
                # Storage errors never get here (every loop absorbs them): this is a bug, surfaced as one.
                ended = RuntimeError(f"{task.get_name()} ended while the worker was serving")
                crash = ended if task.cancelled() else (task.exception() or ended)
                log.error("RedisWorker: %s stopped unexpectedly", task.get_name(), exc_info=crash)
                break
        finally:
            cancelled.cancel()
            await self._shutdown(claimers, runners, upkeep)
        if crash is not None:
            raise crash

    # ------------------------------------------------------------------ shutdown

    async def _shutdown(
        self, claimers: Sequence[asyncio.Task[None]], runners: Sequence[asyncio.Task[None]],
        upkeep: Sequence[asyncio.Task[None]],
    ) -> None:
        deadline = time.monotonic() + self.config.shutdown_grace
        self.stop.set()
        self.slot_freed.set()

        def left(floor: float = 0.0) -> float:
            return max(floor, deadline - time.monotonic())

        # Stop claiming; a claim already on the wire may finish (normally milliseconds), so no lease is taken
        # without us knowing. A Redis that does not answer gets two seconds: its leases then simply expire.
        await self._settle(claimers, min(left(0.5), 2.0))
        # Return claimed-but-unstarted jobs to the head of their queues, in claim order, for any worker to take.
        unstarted: list[_Held] = []
        while not self.buffer.empty():
            item = self.buffer.get_nowait()
            if item is not None:
                unstarted.append(item)
        for _ in runners:
            self.buffer.put_nowait(None)
        await self._release(unstarted, left(0.5))
        # Let running jobs finish within the grace; the flusher keeps settling them meanwhile.
        if runners:
            _, late = await asyncio.wait(runners, timeout=left())
            if late:
                log.warning("RedisWorker: %d job(s) still running after the %.1fs shutdown grace; interrupted, "
                            "they keep their lease and are redelivered once it expires", len(late),
                            self.config.shutdown_grace)
            await self._settle(runners, 0.0)
        try:
            await asyncio.wait_for(self._flush(), timeout=left(0.5))
        except _STOP_ERRORS as exc:
            log.warning("RedisWorker: could not record the outcome of every finished job before stopping (%s); "
                        "they will be redelivered once their lease expires", type(exc).__name__)
        self.closing.set()
        self.outcome.set()
        await self._settle(upkeep, 1.0)

    @staticmethod
    async def _settle(tasks: Sequence[asyncio.Task[None]], within: float) -> None:
        """Wait up to ``within`` seconds for ``tasks`` to end, then cancel the rest and wait (boundedly) for them.

        The loops also exit by themselves on the ``stop``/``closing`` flags, because a cancellation can be
        swallowed inside a client call: redis-py writes commands under ``asyncio.wait_for``, which on Python 3.11
        loses a cancel that arrives as the write completes (CPython gh-86296); seen here in about one in ten
        cancellations of a busy loop.
        """
        if not tasks:
            return
        if within > 0:
            await asyncio.wait(tasks, timeout=within)
        for task in tasks:
            task.cancel()
        done, stuck = await asyncio.wait(tasks, timeout=_UNWIND_SECONDS)
        if stuck:
            log.warning("RedisWorker: %s did not stop within %.1fs of cancellation; abandoned",
                        ", ".join(sorted(t.get_name() for t in stuck)), _UNWIND_SECONDS)
        for task in done:
            if task.cancelled():
                continue
            exc = task.exception()
            if exc is not None and not isinstance(exc, STORAGE_ERRORS):
                log.error("RedisWorker: error in %s while stopping", task.get_name(), exc_info=exc)

    async def _release(self, items: list[_Held], within: float) -> None:
        by_queue: dict[str, list[_Held]] = {}
        for item in items:
            item.queue.held.pop(item.job.id, None)
            self._free_slot()
            if not item.lost:
                by_queue.setdefault(item.queue.name, []).append(item)
        for queue, held in by_queue.items():
            try:
                leases = [(h.job.id, h.job.lease_token) for h in held]
                n = await asyncio.wait_for(self.store.release(queue, leases), timeout=within)
                log.info("RedisWorker: returned %d unstarted job(s) to %s", n, queue)
            except _STOP_ERRORS as exc:
                log.warning("RedisWorker: could not return %d unstarted job(s) to %s (%s); they are redelivered "
                            "once their lease expires", len(held), queue, type(exc).__name__)

    # ------------------------------------------------------------------ (3) claiming

    def _free_slot(self) -> None:
        self.free += 1
        self.slot_freed.set()

    async def _claim_loop(self, queue: _Queue) -> None:
        config = self.config
        backoff = _Backoff(f"claim on {queue.name}")
        while not self.stop.is_set():
            if self.free <= 0:
                # Shutdown sets the event too, so this wait needs no race with the stop flag.
                self.slot_freed.clear()
                await self.slot_freed.wait()
                continue
            want = min(config.claim_batch, self.free)
            self.free -= want
            try:
                jobs = await self.store.claim(queue.name, limit=want, lease_seconds=config.visibility_timeout)
                # Issue 13 (item 4): confirm receipt before any job starts. Until confirmed, an expired lease
                # gives the attempt back (the claim's reply never reached a worker, the job never ran).
                if jobs:
                    await self.store.confirm(queue.name, jobs[0].lease_token, [j.id for j in jobs])
            except STORAGE_ERRORS as exc:
                # Jobs claimed but not confirmed are not run here: their leases expire and the sweep returns
                # them with the attempt given back.
                self.free += want
                await _until(asyncio.sleep(backoff.failed(exc)), self.stop)
                continue
            backoff.ok()
            self.free += want - len(jobs)
            if len(jobs) < want and self.free > 0:
                self.slot_freed.set()
            for job in jobs:
                held = _Held(queue, job)
                previous = queue.held.get(job.id)
                if previous is not None:
                    previous.lost = True
                queue.held[job.id] = held
                self.buffer.put_nowait(held)
            if len(jobs) == want:
                continue
            # The queue is drained: block until a push, a due delayed job, or poll_timeout, whichever is first.
            try:
                await _until(self.store.wait(queue.name, config.poll_timeout), self.stop)
            except STORAGE_ERRORS as exc:
                await _until(asyncio.sleep(backoff.failed(exc)), self.stop)

    # ------------------------------------------------------------------ (4) running

    async def _runner(self) -> None:
        while True:
            held = await self.buffer.get()
            if held is None:
                return
            if held.lost:
                # The lease went while the job waited here; it may already run elsewhere.
                held.queue.held.pop(held.job.id, None)
                self._free_slot()
                continue
            held.started = True
            job = held.job
            queue = held.queue
            try:
                if job.attempt > self.config.max_attempts:
                    raise _OutOfAttempts(job.attempt, self.config.max_attempts)
                await dispatch(queue.methods, job.data, self.container, JobMeta(job.attempt, job.id))
            except asyncio.CancelledError as exc:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the shutdown interrupting a job past the grace: it keeps its lease
                # A handler's own CancelledError (an inner timeout, say) is a job failure, not a reason to stop.
                self._failed(held, RuntimeError(f"the handler raised CancelledError: {exc}"))
            except Exception as exc:
                self._failed(held, exc)
            else:
                queue.acks.append(held)
                self.outcome.set()
            finally:
                held.finished = True
                self._free_slot()

    # ------------------------------------------------------------------ (5) retry / dead-letter policy

    def _failed(self, held: _Held, exc: Exception) -> None:
        job = held.job
        text = error_text(exc)
        retry_in: float | None = None
        if is_retryable(exc) and job.attempt < self.config.max_attempts:
            retry_in = self.config.backoff(job.attempt, self.rng.random())
            log.warning("job %s on %s failed (attempt %d of %d), retrying in %.2fs: %s", job.id, held.queue.name,
                        job.attempt, self.config.max_attempts, retry_in, text)
        else:
            why = "out of attempts" if is_retryable(exc) else "not retryable"
            # Issue 13 (item 9): one line per dead letter; the traceback only at DEBUG (1,000 failures must not
            # write 11,000 lines).
            log.error("job %s on %s failed (attempt %d of %d, %s), dead-lettered: %s", job.id, held.queue.name,
                      job.attempt, self.config.max_attempts, why, text.partition("\n")[0])
            if log.isEnabledFor(logging.DEBUG):
                log.debug("traceback of job %s on %s", job.id, held.queue.name, exc_info=exc)
        held.queue.fails.append((held, text, retry_in))
        self.outcome.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` (a timer, not a synchronisation), returning early once the worker is closing."""
        if not self.closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), seconds)

    async def _flush_loop(self) -> None:
        while not self.closing.is_set():
            await self.outcome.wait()
            self.outcome.clear()
            if self.closing.is_set():
                return
            try:
                await self._flush()
            except STORAGE_ERRORS:
                # Logged per queue by _flush; the queues that failed are retried after their backoff.
                await self._pause(self.flush_retry_in)
                self.outcome.set()

    async def _flush(self) -> None:
        """Record every pending outcome: acks in one call per queue, failures one call each.

        Each queue is flushed on its own (issue 13, item 2): a failing queue is logged and the others still
        flush; the first error is raised at the end, so the caller retries.
        """
        first: BaseException | None = None
        self.flush_retry_in = 1.0
        async with self.flush_lock:
            for queue in self.queues:
                if not queue.acks and not queue.fails:
                    continue
                try:
                    await self._flush_queue(queue)
                except STORAGE_ERRORS as exc:
                    self.flush_retry_in = min(self.flush_retry_in, queue.flush_backoff.failed(exc))
                    first = first or exc
                else:
                    queue.flush_backoff.ok()
        if first is not None:
            raise first

    async def _flush_queue(self, queue: _Queue) -> None:
        if queue.acks:
            batch, queue.acks = queue.acks, []
            try:
                done = await self.store.ack(queue.name, [(h.job.id, h.job.lease_token) for h in batch])
            except BaseException:
                queue.acks[:0] = batch
                raise
            for h in batch:
                self._forget(h)
            if done < len(batch):
                log.warning("%d of %d finished job(s) on %s had lost their lease before the ack; they may "
                            "run again", len(batch) - done, len(batch), queue.name)
        while queue.fails:
            held, text, retry_in = queue.fails[0]
            result = await self.store.fail(
                queue.name, held.job.id, held.job.lease_token, text,
                retry_in=retry_in, max_attempts=self.config.max_attempts,
            )
            queue.fails.pop(0)
            self._forget(held)
            if result == "stale":
                log.warning("job %s on %s had lost its lease before its failure was recorded; it may run "
                            "again", held.job.id, queue.name)

    @staticmethod
    def _forget(held: _Held) -> None:
        if held.queue.held.get(held.job.id) is held:
            del held.queue.held[held.job.id]

    # ------------------------------------------------------------------ leases

    async def _heartbeat_loop(self) -> None:
        interval = self.config.effective_heartbeat()
        while not self.closing.is_set():
            await self._pause(interval)
            if self.closing.is_set():
                return
            for queue in self.queues:
                # Per queue (issue 13, item 2): one queue's error must not leave the others' leases to expire.
                try:
                    await self._heartbeat(queue)
                except STORAGE_ERRORS as exc:
                    queue.heartbeat_backoff.failed(exc)
                else:
                    queue.heartbeat_backoff.ok()

    async def _heartbeat(self, queue: _Queue) -> None:
        held = [h for h in queue.held.values() if not h.lost]
        if not held:
            return
        lost = await self.store.heartbeat(
            queue.name, [(h.job.id, h.job.lease_token) for h in held], self.config.visibility_timeout
        )
        for h in held:
            # A finished job's lease may have just gone with its own ack; only unfinished ones are really lost.
            if h.job.id in lost and not h.finished and queue.held.get(h.job.id) is h:
                h.lost = True
                log.warning("lease lost for job %s on %s (attempt %d): it was redelivered after the visibility "
                            "timeout; %s", h.job.id, queue.name, h.job.attempt,
                            "this run's outcome will not be recorded" if h.started else "it will not start here")

    async def _maintenance_loop(self) -> None:
        config = self.config
        next_trim = 0.0
        while not self.closing.is_set():
            trim = time.monotonic() >= next_trim
            pause = config.effective_sweep()
            for queue in self.queues:
                # Per queue (issue 13, item 2): one queue's error must not stop the others' sweeps and trims.
                try:
                    result = await self.store.sweep(queue.name, max_attempts=config.max_attempts)
                    if result.expired:
                        log.info("sweep on %s: %d expired lease(s) recovered", queue.name, result.expired)
                    if trim:
                        await self.store.trim_dead(
                            queue.name,
                            retention_seconds=config.dead_letter_retention or _FOREVER,
                            max_items=config.dead_letter_max or None,
                        )
                except STORAGE_ERRORS as exc:
                    pause = min(pause, queue.upkeep_backoff.failed(exc))
                else:
                    queue.upkeep_backoff.ok()
            if trim:
                next_trim = time.monotonic() + _TRIM_EVERY
            await self._pause(pause)


class _OutOfAttempts(Exception):
    """A job claimed past ``max_attempts`` (another worker allowed more): dead-lettered without running."""

    def __init__(self, attempt: int, limit: int) -> None:
        super().__init__(f"attempt {attempt} exceeds max_attempts={limit}; not run")
