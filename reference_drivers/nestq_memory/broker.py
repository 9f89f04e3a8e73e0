"""The in-process storage: named queues of encoded envelopes, shared by every app of the process.

The broker knows nothing about handlers. It stores the envelope *bytes* a producer encoded (never the Python
object, so nothing is shared by reference and the JSON round trip is real), hands jobs out one claim at a time,
and takes each back as acked, retried later, dead-lettered, or returned unfinished. It lives exactly as long as
the process: that is the whole durability story of this driver.

Per queue it keeps: ready jobs (one FIFO per priority, highest priority first), delayed jobs (a heap by due time),
running jobs, dead letters, and the futures of idle workers waiting for work. One ``threading.Lock`` guards the
data, never held across an ``await``, so apps on different event loops or threads of one process can share it.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DeadLetter", "IllegalTransition", "MemoryBroker", "QueueStats", "StoredJob", "shared_broker"]

_numbers = itertools.count(1)
"""Process-wide, so job ids stay unique across brokers."""


@dataclass(slots=True, eq=False)
class StoredJob:
    """A job in the broker: the envelope bytes exactly as pushed, plus what the broker tracks about it."""

    queue: str
    data: bytes
    job_id: str
    seq: int
    """Push order; a job given back at shutdown goes back before every job pushed after it."""
    priority: int = 0
    attempts: int = 0
    """Attempts started so far; while a job runs, the number of the running attempt (from 1)."""
    last_error: str | None = field(default=None, repr=False)


class IllegalTransition(RuntimeError):
    """A job was acked, retried, dead-lettered or given back while it was not running (early or twice).

    Silently accepting it would undo the job's real state (an early ack of a job still ready, a second ack of a
    retried job) and hide the driver bug that made the call.
    """


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job that ran out of attempts or failed for good, kept with its last error until redriven or purged."""

    queue: str
    job_id: str
    data: bytes
    """The stored envelope bytes, as pushed (or as planted by ``push_raw``)."""
    error: str
    attempts: int
    failed_at: float
    """``time.time()`` when it was dead-lettered."""
    priority: int = 0


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts of one queue's jobs by state."""

    ready: int
    delayed: int
    """Scheduled for later: pushed with a delay, or waiting out a retry backoff."""
    running: int
    dead: int

    @property
    def depth(self) -> int:
        """Jobs accepted and not finished: ready, delayed and running (dead letters excluded)."""
        return self.ready + self.delayed + self.running


class _Queue:
    """The state of one queue; only touched with the broker's lock held."""

    __slots__ = ("dead", "delayed", "levels", "ready", "running", "size", "waiters")

    def __init__(self) -> None:
        self.ready: dict[int, deque[StoredJob]] = {0: deque()}
        self.levels: list[int] = [0]
        """The priorities of ``ready``, highest first."""
        self.size = 0
        """Ready jobs, all priorities together."""
        self.delayed: list[tuple[float, int, StoredJob]] = []
        """A heap of (due on the monotonic clock, seq, job)."""
        self.running: dict[str, StoredJob] = {}
        self.dead: list[DeadLetter] = []
        self.waiters: deque[asyncio.Future[str | None]] = deque()

    def _new_level(self, priority: int) -> deque[StoredJob]:
        fifo = self.ready[priority] = deque()
        bisect.insort(self.levels, priority, key=lambda p: -p)
        return fifo

    def add(self, job: StoredJob) -> None:
        """Append ``job`` at the tail of its priority."""
        fifo = self.ready.get(job.priority)
        if fifo is None:
            fifo = self._new_level(job.priority)
        fifo.append(job)
        self.size += 1

    def put_back(self, job: StoredJob) -> None:
        """Insert ``job`` before every ready job of its priority that was pushed after it."""
        fifo = self.ready.get(job.priority)
        if fifo is None:
            fifo = self._new_level(job.priority)
        at = 0
        while at < len(fifo) and fifo[at].seq < job.seq:
            at += 1
        fifo.insert(at, job)
        self.size += 1

    def pop(self) -> StoredJob | None:
        """Take the oldest job of the highest priority that has one."""
        if self.size:
            for level in self.levels:
                fifo = self.ready[level]
                if fifo:
                    self.size -= 1
                    return fifo.popleft()
        return None

    def promote(self, now: float) -> None:
        """Move every delayed job that is due to the tail of its priority, in due order."""
        while self.delayed and self.delayed[0][0] <= now:
            self.add(heapq.heappop(self.delayed)[2])

    def stats(self) -> QueueStats:
        return QueueStats(self.size, len(self.delayed), len(self.running), len(self.dead))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _resolve(waiter: asyncio.Future[str | None], value: str | None) -> None:
    if not waiter.done():
        waiter.set_result(value)


def _wake(waiter: asyncio.Future[str | None], value: str | None) -> bool:
    """Resolve an idle worker's future from any thread; False when it is gone (done, or its loop closed)."""
    if waiter.done():
        return False
    loop = waiter.get_loop()
    if loop.is_closed():
        return False
    if loop is _running_loop():
        waiter.set_result(value)
        return True
    try:
        loop.call_soon_threadsafe(_resolve, waiter, value)
    except RuntimeError:  # that loop closed meanwhile: its claimer is gone, wake another one
        return False
    return True


class MemoryBroker:
    """Named in-memory queues of envelope bytes: push, claim, ack, retry, dead-letter, give back, inspect.

    Use :func:`shared_broker` (what the modules use unless given another) so that every app of the process
    shares the queues; create your own for an isolated test.
    """

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Lock()
        self._turn = 0

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue()
        return q

    @staticmethod
    def _wake_one(q: _Queue, name: str) -> None:
        while q.waiters:
            if _wake(q.waiters.popleft(), name):
                return

    @staticmethod
    def _wake_all(q: _Queue) -> None:
        # Each waiter recomputes how long to sleep: a new delayed job may be due sooner than it planned.
        while q.waiters:
            _wake(q.waiters.popleft(), None)

    # ------------------------------------------------------------------------------------------- producer side

    def push(self, queue: str, data: bytes, *, delay: float = 0.0, priority: int = 0) -> str:
        """Store ``data`` on ``queue``, due after ``delay`` seconds, and return its job id.

        The producer has already validated and encoded everything; the broker stores the bytes as they are.
        """
        n = next(_numbers)
        job = StoredJob(queue, data, f"mem-{n}", n, priority)
        with self._lock:
            q = self._queues.get(queue) or self._queue(queue)
            if delay > 0:
                heapq.heappush(q.delayed, (time.monotonic() + delay, n, job))
                self._wake_all(q)
            else:
                fifo = q.ready.get(priority)
                if fifo is None:
                    q.add(job)
                else:  # q.add(job), minus a call: a push is on every job's path
                    fifo.append(job)
                    q.size += 1
                if q.waiters:
                    self._wake_one(q, queue)
        return job.job_id

    # --------------------------------------------------------------------------------------------- worker side

    def claim(self, queues: Sequence[str], prefer: str | None = None) -> StoredJob | None:
        """Take the next ready job of ``queues`` and mark it running, or return ``None`` at once if there is none.

        Highest priority first, push order within a priority; delayed jobs that fell due count as ready. The
        returned job's ``attempts`` is the number of the attempt about to run. ``prefer``: the queue to look at
        first (the one :meth:`wait` said was pushed to).
        """
        with self._lock:
            return self._claim(queues, prefer)

    def claim_many(self, queues: Sequence[str], limit: int, prefer: str | None = None) -> list[StoredJob]:
        """Up to ``limit`` jobs, each taken as :meth:`claim` takes one (the same order and turns), in one locking."""
        jobs: list[StoredJob] = []
        with self._lock:
            if len(queues) == 1:
                # One queue (the usual worker): take the jobs straight from its ready FIFOs.
                q = self._queues.get(queues[0])
                if q is None:
                    return jobs
                if q.delayed:
                    q.promote(time.monotonic())
                running = q.running
                while q.size and len(jobs) < limit:
                    job = q.pop()
                    assert job is not None  # q.size counts the ready jobs
                    job.attempts += 1
                    running[job.job_id] = job
                    jobs.append(job)
                if q.size and q.waiters:
                    self._wake_one(q, queues[0])  # jobs are left: another idle claimer may take them
                return jobs
            while len(jobs) < limit:
                job = self._claim(queues, prefer)
                if job is None:
                    break
                prefer = None
                jobs.append(job)
        return jobs

    def _claim(self, queues: Sequence[str], prefer: str | None) -> StoredJob | None:
        """:meth:`claim` with the lock held."""
        order: Sequence[str] = queues
        if len(queues) > 1:
            # Take turns between queues so that a busy queue cannot starve the others of one worker; the queue
            # whose push woke this claimer goes first, so that its wake-up is not spent on another queue's job.
            turn = self._turn = (self._turn + 1) % len(queues)
            order = [*([prefer] if prefer is not None else []), *queues[turn:], *queues[:turn]]
        for name in order:
            q = self._queues.get(name)
            if q is None:
                continue
            if q.delayed:
                q.promote(time.monotonic())
            job = q.pop()
            if job is not None:
                job.attempts += 1
                q.running[job.job_id] = job
                if q.size and q.waiters:
                    self._wake_one(q, name)
                return job
        return None

    async def wait(self, queues: Sequence[str], stop: asyncio.Future[Any], at_most: float | None = None) -> str | None:
        """Wait until a job of ``queues`` may be ready, ``stop`` is done, or ``at_most`` seconds passed; never polls.

        A push resolves the future of one waiting claimer (returning the queue pushed to); a timer wakes the
        claimer when the earliest delayed job of ``queues`` falls due (returning ``None``). A wake-up is a hint:
        another claimer may take the job first, so call :meth:`claim` again and wait again if it returns ``None``.
        """
        if stop.done():
            return None
        loop = asyncio.get_running_loop()
        with self._lock:
            if any(self._queues[name].size for name in queues if name in self._queues):
                return None  # pushed since the caller's claim came back empty
            due = min((self._queues[n].delayed[0][0] for n in queues if n in self._queues and self._queues[n].delayed),
                      default=None)
            waiter: asyncio.Future[str | None] = loop.create_future()
            for name in queues:
                self._queue(name).waiters.append(waiter)
        # One future to await, resolved by a push, the timer or the stop: no task and no asyncio.wait per idle wait.
        after = None if due is None else max(0.0, due - time.monotonic())
        if at_most is not None and (after is None or at_most < after):
            after = at_most
        timer = None if after is None else loop.call_later(after, _resolve, waiter, None)

        def stopped(_: object) -> None:
            _resolve(waiter, None)

        stop.add_done_callback(stopped)
        try:
            await waiter
        except BaseException:
            self._forget(waiter, queues, pass_on=True)
            raise
        finally:
            stop.remove_done_callback(stopped)
            if timer is not None:
                timer.cancel()
        return self._forget(waiter, queues, pass_on=stop.done())

    def _forget(self, waiter: asyncio.Future[str | None], queues: Sequence[str], *, pass_on: bool) -> str | None:
        """Unregister a claimer's future; return the queue whose push woke it, if one did.

        ``pass_on``: the claimer is leaving, so a wake-up it received goes to another idle claimer instead.
        """
        with self._lock:
            for name in queues:
                q = self._queues[name]
                if waiter in q.waiters:
                    q.waiters.remove(waiter)
            if not waiter.done():
                waiter.cancel()
                return None
            woken_for = None if waiter.cancelled() else waiter.result()
            if woken_for is not None and pass_on:
                self._wake_one(self._queues[woken_for], woken_for)
            return woken_for

    def _finish(self, job: StoredJob, action: str) -> _Queue:
        """Take ``job`` out of its queue's running set; raise :class:`IllegalTransition` when it is not running.

        Call with the lock held.
        """
        q = self._queues.get(job.queue)
        if q is None or q.running.get(job.job_id) is not job:
            where = "never claimed" if q is None else self._state_of(q, job)
            raise IllegalTransition(
                f"cannot {action} job {job.job_id} of queue {job.queue!r}: it is not running ({where}); only a "
                "claimed job that has not been acked, retried, dead-lettered or given back can be"
            )
        del q.running[job.job_id]
        return q

    @staticmethod
    def _state_of(q: _Queue, job: StoredJob) -> str:
        if any(job is queued for fifo in q.ready.values() for queued in fifo):
            return "it is ready, waiting to be claimed"
        if any(job is entry[2] for entry in q.delayed):
            return "it is delayed (a retry or a scheduled job)"
        if any(letter.job_id == job.job_id for letter in q.dead):
            return "it is a dead letter"
        return "it already finished"

    def ack(self, job: StoredJob) -> None:
        """The job succeeded: forget it. Raises :class:`IllegalTransition` when it is not running."""
        with self._lock:
            q = self._queues.get(job.queue)
            if q is not None and q.running.get(job.job_id) is job:  # _finish(), minus a call: every job is acked
                del q.running[job.job_id]
            else:
                self._finish(job, "ack")

    def ack_many(self, jobs: Iterable[StoredJob]) -> None:
        """:meth:`ack` each of ``jobs`` in order, in one locking; stops at the first that is not running."""
        with self._lock:
            for job in jobs:
                q = self._queues.get(job.queue)
                if q is not None and q.running.get(job.job_id) is job:
                    del q.running[job.job_id]
                else:
                    self._finish(job, "ack")

    def retry(self, job: StoredJob, delay: float, error: str) -> None:
        """The attempt failed and another is allowed: schedule the job ``delay`` seconds from now."""
        with self._lock:
            q = self._finish(job, "retry")
            job.last_error = error
            heapq.heappush(q.delayed, (time.monotonic() + delay, job.seq, job))
            self._wake_all(q)

    def dead_letter(self, job: StoredJob, error: str) -> DeadLetter:
        """The job failed for good: keep it as a dead letter with ``error`` and its attempt count."""
        letter = DeadLetter(job.queue, job.job_id, job.data, error, job.attempts, time.time(), job.priority)
        with self._lock:
            q = self._finish(job, "dead-letter")
            q.dead.append(letter)
        return letter

    def give_back(self, job: StoredJob) -> None:
        """The worker stopped before the job finished: return it to the head of its queue, attempt not counted."""
        with self._lock:
            q = self._finish(job, "give back")
            job.attempts -= 1
            q.put_back(job)
            self._wake_one(q, job.queue)

    # ------------------------------------------------------------------------------------------- operator API

    def queues(self) -> list[str]:
        """The names of every queue the broker has seen, sorted."""
        with self._lock:
            return sorted(self._queues)

    def stats(self, queue: str) -> QueueStats:
        """Counts of ``queue``'s jobs by state (all zero for a queue never seen)."""
        with self._lock:
            q = self._queues.get(queue)
            return q.stats() if q is not None else QueueStats(0, 0, 0, 0)

    def depth(self, queue: str) -> int:
        """Jobs of ``queue`` accepted and not finished: ready, delayed and running."""
        return self.stats(queue).depth

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        """The dead letters of ``queue``, oldest first."""
        with self._lock:
            q = self._queues.get(queue)
            return list(q.dead) if q is not None else []

    def redrive(self, queue: str, job_ids: Iterable[str] | None = None) -> int:
        """Move dead letters of ``queue`` (all, or those in ``job_ids``) back to the tail of the queue.

        Each gets a fresh attempt budget and keeps its job id. Returns how many were moved.
        """
        wanted = None if job_ids is None else set(job_ids)
        with self._lock:
            q = self._queues.get(queue)
            if q is None:
                return 0
            moving = [d for d in q.dead if wanted is None or d.job_id in wanted]
            q.dead = [d for d in q.dead if not (wanted is None or d.job_id in wanted)]
            for letter in moving:
                q.add(StoredJob(queue, letter.data, letter.job_id, next(_numbers), letter.priority))
                self._wake_one(q, queue)
            return len(moving)

    def purge_dead_letters(self, queue: str, job_ids: Iterable[str] | None = None) -> int:
        """Delete dead letters of ``queue`` (all, or those in ``job_ids``); return how many were deleted."""
        wanted = None if job_ids is None else set(job_ids)
        with self._lock:
            q = self._queues.get(queue)
            if q is None:
                return 0
            before = len(q.dead)
            q.dead = [d for d in q.dead if not (wanted is None or d.job_id in wanted)]
            return before - len(q.dead)

    def purge(self, queue: str) -> int:
        """Delete ``queue``'s ready and delayed jobs (running ones finish as usual); return how many."""
        with self._lock:
            q = self._queues.get(queue)
            if q is None:
                return 0
            count = q.size + len(q.delayed)
            q.ready = {0: deque()}
            q.levels = [0]
            q.size = 0
            q.delayed = []
            return count


_SHARED = MemoryBroker()


def shared_broker() -> MemoryBroker:
    """The process-wide broker: what every ``MemoryQueueModule.for_root()`` uses unless given another."""
    return _SHARED
