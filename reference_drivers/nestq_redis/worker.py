"""The consumer side of the Redis driver: :class:`RedisWorker`, the ``Transport`` the worker module contributes.

The worker loop (concurrency, cancel and shutdown grace, dispatch in the job context, the retry policy, batched
outcomes, heartbeats of the leases in hand) is the toolkit's :class:`~nestq_spec.driverkit.QueueWorker`. This module
supplies the Redis storage primitives, each one Lua script (``scripts.py``) per call:

- :meth:`RedisWorker.receive` claims up to ``min(claim_batch, free slots)`` jobs per queue in one round trip and
  confirms receipt in a second (an unconfirmed claim, whose reply was lost, costs no attempt); when every queue is
  empty it blocks on the queues' wake-up lists for at most ``poll_timeout`` (always finite);
- acks of many jobs of a queue are one call; a failure is one call (retry through the delayed set, or dead letter);
- give-back returns jobs to the head of their queue and refunds their attempt: a job received but never started,
  or interrupted after the shutdown grace, runs again with the attempt number it had;
- extend-leases is the heartbeat of every job in hand (buffered, running, or awaiting its outcome).

What only Redis needs stays here: the worker's own client (``resend=False``: a claim whose connection broke is never
sent again, on a single server or a cluster), a maintenance task that sweeps expired leases and due delayed jobs and
trims old dead letters, and per-queue backoff and rate-limited reports of storage errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import RedisError

from nestq_spec import CancellationToken, Container, ProcessMethod
from nestq_spec.driverkit import MAX_ERROR_CHARS, Decision, Delivery, QueueWorker, RetryPolicy

from .config import RedisConfig, display_url
from .connection import RedisConnection, check_access
from .store import RedisQueueStore

__all__ = ["STORAGE_ERRORS", "Lease", "RedisWorker", "error_text"]

log = logging.getLogger("nestq.redis")

T = TypeVar("T")

STORAGE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)
"""Errors that mean "the storage is unreachable or unwell": logged, backed off and retried, never fatal."""

# How long a cancelled wait may take to unwind before it is abandoned.
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
    if len(text) > MAX_ERROR_CHARS:
        suffix = f" ... ({len(text)} chars, truncated)"
        text = text[: MAX_ERROR_CHARS - len(suffix)] + suffix
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
class Lease:
    """The handle of a claimed job: the claim's lease token, and what this worker learnt about the job since."""

    token: str
    started: bool = False
    """The handler was called (a give-back of a started job is an interruption, not a job never begun)."""
    finished: bool = False
    """The handler returned or raised: a heartbeat that finds its lease gone raced with its own outcome."""
    lost: bool = False
    """A heartbeat found the lease gone (the sweep reclaimed it): the job may run elsewhere, it must not start here."""


class _QueueState:
    """Per-queue backoffs: one broken queue (WRONGTYPE, say) never stops the others' claims, leases or outcomes."""

    __slots__ = ("claim", "heartbeat", "settle", "upkeep", "wait")

    def __init__(self, name: str) -> None:
        self.claim = _Backoff(f"claim on {name}")
        self.wait = _Backoff(f"wait on {name}")
        self.heartbeat = _Backoff(f"heartbeat on {name}")
        self.settle = _Backoff(f"recording job outcomes on {name}")
        self.upkeep = _Backoff(f"sweep on {name}")


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
    # Bounded: redis-py may swallow a cancel that arrives as its write completes (CPython gh-86296); the call
    # then ends by its own timeout.
    await asyncio.wait({task}, timeout=_UNWIND_SECONDS)
    return False, None


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class RedisWorker(QueueWorker[Lease]):
    """Consumes every queue that has a reachable ``@process`` handler, at-least-once, with leases.

    Built by ``RedisQueueWorkerModule`` from the app's :class:`RedisConnection` (its settings included). A
    :class:`~nestq_spec.driverkit.QueueWorker`: the loop is the toolkit's, the primitives below are Redis's.
    """

    ack_gather_turns = 1  # every ack is a round trip: let the runners finishing in the same turn share it

    def __init__(self, connection: RedisConnection, config: RedisConfig | None = None) -> None:
        config = config if config is not None else connection.config
        super().__init__(
            concurrency=config.concurrency,
            shutdown_grace=config.shutdown_grace,
            retry_policy=RetryPolicy(config.max_attempts, config.backoff_base, config.backoff_cap,
                                     config.backoff_jitter),
            heartbeat_interval=config.effective_heartbeat(),
        )
        self.connection = connection
        self.config = config
        self.receive_wait = config.poll_timeout
        self.receive_error_pause = (0.05, 1.0)
        self._store: RedisQueueStore | None = None
        self._states: dict[str, _QueueState] = {}
        self._next_queue = 0

    def __repr__(self) -> str:
        return f"RedisWorker(url={display_url(self.config.url)!r}, key_prefix={self.config.key_prefix!r})"

    @property
    def store(self) -> RedisQueueStore:
        """The store on the worker's own client, while :meth:`serve` runs."""
        if self._store is None:
            raise RuntimeError("RedisWorker.store is only available while the worker serves")
        return self._store

    def _state(self, queue: str) -> _QueueState:
        state = self._states.get(queue)
        if state is None:
            state = self._states[queue] = _QueueState(queue)
        return state

    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """Claim, run and settle jobs until ``cancel``; then stop claiming, finish within the grace, give back the rest.

        Jobs received but not started, and jobs still running after ``shutdown_grace`` (interrupted), go back to
        the head of their queue with their attempt refunded.
        """
        table = self.routes(container)
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
            self._store = store
            self._states = {queue: _QueueState(queue) for queue in table}
            log.info("RedisWorker serving %s on %s (prefix %s, concurrency %d)", ", ".join(table),
                     display_url(self.config.url), self.config.key_prefix, self.config.concurrency)
            closing = asyncio.Event()
            upkeep = asyncio.create_task(self._maintenance(list(table), closing), name="nestq-redis-maintenance")
            try:
                await super().serve(container, cancel)
            finally:
                closing.set()
                done, _ = await asyncio.wait({upkeep}, timeout=1.0)
                if not done:
                    upkeep.cancel()
                    await asyncio.wait({upkeep}, timeout=_UNWIND_SECONDS)
                if upkeep.done() and not upkeep.cancelled() and (exc := upkeep.exception()) is not None:
                    log.error("RedisWorker: error in the maintenance task", exc_info=exc)
        finally:
            self._store = None
            with contextlib.suppress(*STORAGE_ERRORS, RuntimeError):
                await client.aclose()

    async def handle(self, methods: Sequence[ProcessMethod], delivery: Delivery[Lease], container: Container) -> None:
        """Run the job, unless its lease was lost while it waited or it is past ``max_attempts``."""
        lease = delivery.handle
        if lease.lost:
            # The lease went while the job waited in the buffer: it may already run elsewhere. Its ack is a no-op.
            return
        lease.started = True
        try:
            if delivery.attempt > self.config.max_attempts:
                raise _OutOfAttempts(delivery.attempt, self.config.max_attempts)
            await super().handle(methods, delivery, container)
        finally:
            lease.finished = True

    def report_failure(self, delivery: Delivery[Lease], exc: BaseException, decision: Decision) -> None:
        """One line per failed attempt on ``nestq.redis``; a dead letter's traceback only at DEBUG.

        Issue 13 (item 9): 1,000 failing jobs must not write 11,000 lines of tracebacks.
        """
        limit = self.config.max_attempts
        if decision.retry:
            log.warning("job %s on %s failed (attempt %d of %d), retrying in %.2fs: %s", delivery.job_id,
                        delivery.queue, delivery.attempt, limit, decision.delay, delivery.error)
            return
        log.error("job %s on %s failed (attempt %d of %d, %s), dead-lettered: %s", delivery.job_id, delivery.queue,
                  delivery.attempt, limit, decision.why, delivery.error.partition("\n")[0])
        if log.isEnabledFor(logging.DEBUG):
            log.debug("traceback of job %s on %s", delivery.job_id, delivery.queue, exc_info=exc)

    # ------------------------------------------------------------------------------------------ receiving

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[Lease]]:
        """Claim up to ``limit`` jobs over ``queues``; when all are empty, block on their wake-ups, then claim again.

        Claims go per queue (on a cluster every queue is its own slot), starting with a different queue each call
        so that a busy queue cannot starve the others. A queue whose claim fails is reported and backed off on its
        own; the others are claimed as usual.
        """
        found, pause = await self._claim_all(queues, limit)
        if found or self.stopping.is_set():
            return found
        if pause is not None:
            await _until(asyncio.sleep(min(pause, wait)), self.stopping)
            return found
        await self._wait(queues, wait)
        if self.stopping.is_set():
            return found
        found, _ = await self._claim_all(queues, limit)
        return found

    async def _claim_all(self, queues: Sequence[str], limit: int) -> tuple[list[Delivery[Lease]], float | None]:
        found: list[Delivery[Lease]] = []
        pause: float | None = None
        n = len(queues)
        first = self._next_queue % n
        self._next_queue = first + 1
        for i in range(n):
            want = min(self.config.claim_batch, limit - len(found))
            if want <= 0:
                break
            queue = queues[(first + i) % n]
            try:
                found.extend(await self._claim(queue, want))
            except STORAGE_ERRORS as exc:
                delay = self._state(queue).claim.failed(exc)
                pause = delay if pause is None else min(pause, delay)
            else:
                self._state(queue).claim.ok()
        return found, pause

    async def _claim(self, queue: str, want: int) -> list[Delivery[Lease]]:
        store = self.store
        jobs = await store.claim(queue, limit=want, lease_seconds=self.config.visibility_timeout)
        if not jobs:
            return []
        # Issue 13 (item 4): confirm receipt before any job starts. Jobs claimed but not confirmed (this call
        # failed) are not run here: their leases expire and the sweep returns them with the attempt given back.
        await store.confirm(queue, jobs[0].lease_token, [j.id for j in jobs])
        lease = jobs[0].lease_token
        return [Delivery(queue, job.data, job.attempt, job.id, Lease(lease)) for job in jobs]

    async def _wait(self, queues: Sequence[str], wait: float) -> None:
        """Block until a push or a due delayed job on any of ``queues``, at most ``wait`` seconds (or stopping)."""
        store = self.store
        if len(queues) == 1:
            queue = queues[0]
            try:
                await _until(store.wait(queue, wait), self.stopping)
            except STORAGE_ERRORS as exc:
                await _until(asyncio.sleep(self._state(queue).wait.failed(exc)), self.stopping)
            else:
                self._state(queue).wait.ok()
            return
        # One wait per queue (a cluster cannot block on keys of several slots in one command): the first wake-up
        # ends all of them. A wake-up token a cancelled wait took is not lost work: the claim that follows looks at
        # every queue.
        waits = {asyncio.ensure_future(store.wait(queue, wait)): queue for queue in queues}
        stopper = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({*waits, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            for task in waits:
                if not task.done():
                    task.cancel()
                    task.add_done_callback(_retrieve)
        failed: float | None = None
        for task, queue in waits.items():
            if task.done() and not task.cancelled():
                error = task.exception()
                if isinstance(error, STORAGE_ERRORS):
                    delay = self._state(queue).wait.failed(error)
                    failed = delay if failed is None else min(failed, delay)
                elif error is not None:
                    raise error
                else:
                    self._state(queue).wait.ok()
        pending = [t for t in waits if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=_UNWIND_SECONDS)
        if failed is not None:
            await _until(asyncio.sleep(failed), self.stopping)

    # ------------------------------------------------------------------------------------------ settling

    async def _settled(self, queue: str, call: Awaitable[T]) -> T:
        """Run one settling call of ``queue``, reporting a storage error through its backoff before re-raising it."""
        try:
            result = await call
        except STORAGE_ERRORS as exc:
            self._state(queue).settle.failed(exc)
            raise
        self._state(queue).settle.ok()
        return result

    async def ack(self, deliveries: Sequence[Delivery[Lease]]) -> None:
        """Delete these finished jobs of one queue, in one call per 5,000 (only those whose lease is still ours)."""
        queue = deliveries[0].queue
        done = await self._settled(queue, self.store.ack(queue, [(d.job_id or "", d.handle.token)
                                                                 for d in deliveries]))
        if done < len(deliveries):
            log.warning("%d of %d finished job(s) on %s had lost their lease before the ack; they may run again",
                        len(deliveries) - done, len(deliveries), queue)

    async def retry(self, delivery: Delivery[Lease], delay: float, error: str) -> None:
        """Release the failed job to the delayed set, due in ``delay`` seconds, keeping ``error``."""
        await self._fail(delivery, error, delay)

    async def dead_letter(self, delivery: Delivery[Lease], error: str) -> None:
        """Move the job to the dead letters with ``error`` and its attempt count."""
        await self._fail(delivery, error, None)

    async def _fail(self, delivery: Delivery[Lease], error: str, retry_in: float | None) -> None:
        queue = delivery.queue
        result = await self._settled(queue, self.store.fail(
            queue, delivery.job_id or "", delivery.handle.token, error, retry_in=retry_in,
            max_attempts=self.config.max_attempts,
        ))
        if result == "stale":
            log.warning("job %s on %s had lost its lease before its failure was recorded; it may run again",
                        delivery.job_id, queue)

    async def give_back(self, deliveries: Sequence[Delivery[Lease]]) -> None:
        """Return these jobs of one queue to the head of ready, in order, refunding their attempt."""
        queue = deliveries[0].queue
        mine = [d for d in deliveries if not d.handle.lost]
        if not mine:
            return
        n = await self._settled(queue, self.store.release(queue, [(d.job_id or "", d.handle.token) for d in mine]))
        interrupted = sum(1 for d in mine if d.handle.started)
        if interrupted:
            log.warning("RedisWorker: %d job(s) on %s still running after the %.1fs shutdown grace were interrupted "
                        "and given back, their attempt refunded", interrupted, queue, self.shutdown_grace)
        log.info("RedisWorker: returned %d job(s) to %s (%d never started)", n, queue, len(mine) - interrupted)

    async def extend_leases(self, deliveries: Sequence[Delivery[Lease]]) -> None:
        """Extend the leases of these held jobs of one queue by ``visibility_timeout``; note the ones lost."""
        queue = deliveries[0].queue
        state = self._state(queue)
        held = [d for d in deliveries if not d.handle.lost]
        if not held:
            return
        try:
            lost = await self.store.heartbeat(queue, [(d.job_id or "", d.handle.token) for d in held],
                                              self.config.visibility_timeout)
        except STORAGE_ERRORS as exc:
            # Reported per queue and rate-limited here; the lease keeper beats again next interval.
            state.heartbeat.failed(exc)
            return
        state.heartbeat.ok()
        for d in held:
            # A finished job's lease may have just gone with its own outcome; only unfinished ones are really lost.
            if d.job_id in lost and not d.handle.finished:
                d.handle.lost = True
                log.warning("lease lost for job %s on %s (attempt %d): it was redelivered after the visibility "
                            "timeout; %s", d.job_id, queue, d.attempt,
                            "this run's outcome will not be recorded" if d.handle.started
                            else "it will not start here")

    # ------------------------------------------------------------------------------------------ upkeep

    async def _maintenance(self, queues: list[str], closing: asyncio.Event) -> None:
        """Sweep expired leases and due delayed jobs of every queue, and trim old dead letters, until ``closing``."""
        config = self.config
        next_trim = 0.0
        while not closing.is_set():
            trim = time.monotonic() >= next_trim
            pause = config.effective_sweep()
            for queue in queues:
                # Per queue (issue 13, item 2): one queue's error must not stop the others' sweeps and trims.
                state = self._state(queue)
                try:
                    result = await self.store.sweep(queue, max_attempts=config.max_attempts)
                    if result.expired:
                        log.info("sweep on %s: %d expired lease(s) recovered", queue, result.expired)
                    if trim:
                        await self.store.trim_dead(
                            queue,
                            retention_seconds=config.dead_letter_retention or _FOREVER,
                            max_items=config.dead_letter_max or None,
                        )
                except STORAGE_ERRORS as exc:
                    pause = min(pause, state.upkeep.failed(exc))
                else:
                    state.upkeep.ok()
            if trim:
                next_trim = time.monotonic() + _TRIM_EVERY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), pause)


class _OutOfAttempts(Exception):
    """A job claimed past ``max_attempts`` (another worker allowed more): dead-lettered without running."""

    def __init__(self, attempt: int, limit: int) -> None:
        super().__init__(f"attempt {attempt} exceeds max_attempts={limit}; not run")
