"""The durable Redis queue at the level of opaque job bytes.

:class:`RedisQueueStore` knows nothing about envelopes, handlers or the framework seam; it moves bytes between
the states of a job (ready, delayed, leased, dead) with one Lua script per state change. The framework driver
wraps it.

Key layout for queue ``q`` under prefix ``p`` (the ``{q}`` hash tag keeps a queue in one cluster slot)::

    p:{q}:ready, p:{q}:ready:1 .. p:{q}:ready:9   lists, one per priority level (ids)
    p:{q}:jobs      hash  id -> job bytes (written once)
    p:{q}:meta      hash  <id>:a attempts, <id>:t lease token, <id>:e last error, <id>:p priority
    p:{q}:leases    zset  id -> lease deadline (ms, server time)
    p:{q}:delayed   zset  id -> due time (ms)
    p:{q}:dead      zset  id -> failed-at (ms); data stays in jobs, error and attempts in meta
    p:{q}:signal    list  at most one wake-up token
    p:{q}:sweep     string sweep lock
    p:{q}:batches   zset  "<batch id>:<chunk>" -> stored-at (ms): batch pushes a retry must not store twice
    p:queues        set   names of the queues ever pushed to

Acked and purged jobs leave nothing behind: their hash fields are deleted and Redis drops empty keys.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError, ResponseError

from . import scripts
from .cluster import AnyRedis

log = logging.getLogger("nestq.redis")

__all__ = [
    "MAX_JOB_ID_LENGTH",
    "MAX_PRIORITY",
    "ClaimedJob",
    "DeadLetter",
    "PushBatchError",
    "QueueDepth",
    "QueueKeys",
    "RedisQueueStore",
    "SweepResult",
    "check_job_id",
]

#: Highest priority accepted by :meth:`RedisQueueStore.push`; higher values are claimed first.
MAX_PRIORITY = scripts.PRIORITY_LEVELS - 1

# Upper bound of jobs or leases per script call, so one call never blocks Redis for long; bigger batches are
# split into several calls.
_CHUNK = 5000
# Entries handled per sweep / trim / redrive-all call, for the same reason.
_BATCH = 1000
_ID_BYTES = 12


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job handed to a worker: its id, bytes, attempt number (1 on the first run) and lease token."""

    id: str
    data: bytes
    attempt: int
    lease_token: str


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Number of jobs of a queue in each state."""

    ready: int
    delayed: int
    leased: int
    dead: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job that ran out of attempts: its bytes, last error, attempts made and when it failed (unix s)."""

    id: str
    data: bytes
    error: str
    attempts: int
    failed_at: float


class SweepResult(NamedTuple):
    """Outcome of :meth:`RedisQueueStore.sweep`.

    ``expired`` counts expired leases, both those returned to ready and those dead-lettered.
    """

    promoted: int
    expired: int


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The Redis keys of one queue (for operators, docs and tests)."""

    jobs: str
    meta: str
    leases: str
    delayed: str
    dead: str
    signal: str
    sweep_lock: str
    ready: tuple[str, ...]
    """Ready lists, index = priority level."""
    batches: str = ""
    """Batch ids already stored (idempotent retries of :meth:`RedisQueueStore.push_many`)."""

    @property
    def all(self) -> tuple[str, ...]:
        """Every key, in the order the scripts expect them."""
        return (
            self.jobs,
            self.meta,
            self.leases,
            self.delayed,
            self.dead,
            self.signal,
            self.sweep_lock,
            *self.ready,
        )


def _int_or_zero(raw: bytes) -> int:
    # A dead letter's attempts field may be what got it quarantined: show 0 rather than fail the listing.
    try:
        return int(raw)
    except ValueError:
        return 0


_JOB_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")
MAX_JOB_ID_LENGTH = 128


def check_job_id(job_id: object, *, what: str = "job id") -> str:
    """Return ``job_id`` if it is a valid job (or batch) id, else raise ``ValueError`` saying why.

    Valid like a queue name: 1 to 128 ASCII letters, digits, ``_``, ``-``, ``.`` or ``:``, not starting with
    ``-``, ``.`` or ``:``.
    """
    if not isinstance(job_id, str):
        raise ValueError(f"{what} must be a string, found {type(job_id).__name__}")
    if not job_id:
        raise ValueError(f"{what} is empty")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise ValueError(f"{what} is {len(job_id)} characters long, the limit is {MAX_JOB_ID_LENGTH}: "
                         f"{job_id[:40]!r}...")
    if _JOB_ID.fullmatch(job_id) is None:
        bad = next((i, c) for i, c in enumerate(job_id) if _JOB_ID.fullmatch(("a" if i else "") + c) is None)
        raise ValueError(f"invalid {what} {job_id[:60]!r}: {bad[1]!r} at position {bad[0]} is not allowed; use "
                         "ASCII letters, digits, '_', '-', '.', ':' (and not '-', '.', ':' first)")
    return job_id


class PushBatchError(RedisError):
    """A batch push failed part-way; retrying with the same :attr:`batch_id` stores each job exactly once."""

    def __init__(self, batch_id: str, cause: BaseException) -> None:
        super().__init__(f"batch {batch_id} was not fully stored ({type(cause).__name__}: {cause}); retry the "
                         f"same call with batch_id={batch_id!r}: chunks already stored are not stored again")
        self.batch_id = batch_id
        """The batch's id, to pass to the retry."""


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _flatten(leases: Iterable[tuple[str, str]]) -> list[str]:
    return list(itertools.chain.from_iterable(leases))


def _new_ids(n: int) -> list[str]:
    # One urandom call for the whole batch: cheaper than a uuid per job, and 96 random bits per id.
    raw = os.urandom(_ID_BYTES * n).hex()
    width = 2 * _ID_BYTES
    return [raw[i : i + width] for i in range(0, width * n, width)]


_ALLOW_OOM = "#!lua flags=allow-oom\n"


class _OomScript:
    """A script Redis runs even at ``maxmemory`` (the Redis 7 script flag ``allow-oom``).

    Servers without script flags (Redis 6, fakeredis) get the same script without its flag line: the first
    refusal of the flag line switches the store to plain scripts.
    """

    def __init__(self, store: RedisQueueStore, body: str) -> None:
        self._store = store
        self._flagged = store.client.register_script(_ALLOW_OOM + body)
        self._plain = store.client.register_script(body)

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if self._store._script_flags is not False:
            try:
                result = await self._flagged(keys=keys, args=args)
            except ResponseError as exc:
                if "near '#'" not in str(exc):
                    raise
                self._store._script_flags = False
            else:
                self._store._script_flags = True
                return result
        return await self._plain(keys=keys, args=args)


class RedisQueueStore:
    """Durable at-least-once queue storage on Redis, at the level of opaque job bytes.

    A claim records ownership atomically with a lease deadline and counts the attempt; a job only leaves Redis
    when acked (or purged from the dead letters). Deadlines use Redis server time.

    The client must return bytes (``decode_responses=False``) and its ``socket_timeout`` must be longer than
    the timeouts passed to :meth:`wait`.
    """

    def __init__(
        self, client: AnyRedis, *, prefix: str = "nestq", dead_letter_max: int = 0, max_job_bytes: int = 0
    ) -> None:
        # A cluster client keeps its connection settings on itself, a plain client on its pool.
        pool = getattr(client, "connection_pool", None)
        connection_kwargs = pool.connection_kwargs if pool is not None else getattr(client, "connection_kwargs", {})
        if connection_kwargs.get("decode_responses"):
            raise ValueError("RedisQueueStore needs a client created with decode_responses=False")
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"invalid key prefix {prefix!r}: must be non-empty and contain no braces")
        self._client = client
        self._prefix = prefix
        # The cap on dead letters per queue, enforced by every script that dead-letters (-1 in Lua: no cap).
        self._dead_max = dead_letter_max if dead_letter_max > 0 else -1
        # Claims dead-letter larger jobs without loading them (0: no limit).
        self._max_job_bytes = max(0, max_job_bytes)
        self._queues_key = f"{prefix}:queues"
        self._keys: dict[str, tuple[QueueKeys, tuple[str, ...], tuple[str, ...]]] = {}
        # The keys of the one-job push fast path: jobs, ready (level 0), signal.
        self._ready_keys: dict[str, tuple[str, str, str]] = {}
        # Queues this instance has already added to the queues set: registering once per process keeps the
        # set out of the push script, whose keys must all live in the queue's slot. The push scripts also report
        # a push into a queue that held no other job, which registers it again: a queue must not vanish from the
        # set when Redis loses its data while this process keeps pushing (issue 13, item 8).
        self._registered: set[str] = set()
        self._next_register: dict[str, float] = {}
        self._maybe_lost: set[str] = set()
        reg = client.register_script
        self._push = reg(scripts.PUSH)
        self._push_ready = reg(scripts.PUSH_READY)
        self._claim = reg(scripts.CLAIM)
        # Issue 13 (item 6): the scripts that keep leases alive, record outcomes or free memory must run when
        # Redis is at maxmemory (noeviction), or leases can be neither extended nor recovered.
        self._script_flags: bool | None = False if type(client).__module__.startswith("fakeredis") else None
        self._confirm = _OomScript(self, scripts.CONFIRM)
        self._heartbeat = _OomScript(self, scripts.HEARTBEAT)
        self._ack = _OomScript(self, scripts.ACK)
        self._fail = _OomScript(self, scripts.FAIL)
        self._release = _OomScript(self, scripts.RELEASE)
        self._sweep = _OomScript(self, scripts.SWEEP)
        self._depth = reg(scripts.DEPTH)
        self._next_due = reg(scripts.NEXT_DUE)
        self._dead_list = reg(scripts.DEAD_LIST)
        self._redrive = reg(scripts.REDRIVE)
        self._purge_dead = _OomScript(self, scripts.PURGE_DEAD)
        self._trim_dead = _OomScript(self, scripts.TRIM_DEAD)

    @property
    def client(self) -> AnyRedis:
        """The Redis client this store runs on."""
        return self._client

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._prefix

    def keys(self, queue: str) -> QueueKeys:
        """Return the Redis keys of ``queue``."""
        return self._resolve(queue)[0]

    def _resolve(self, queue: str) -> tuple[QueueKeys, tuple[str, ...], tuple[str, ...]]:
        cached = self._keys.get(queue)
        if cached is not None:
            return cached
        if not queue or "{" in queue or "}" in queue:
            raise ValueError(f"invalid queue name {queue!r}: must be non-empty and contain no braces")
        base = f"{self._prefix}:{{{queue}}}"
        ready = (f"{base}:ready", *(f"{base}:ready:{level}" for level in range(1, scripts.PRIORITY_LEVELS)))
        keys = QueueKeys(
            jobs=f"{base}:jobs",
            meta=f"{base}:meta",
            leases=f"{base}:leases",
            delayed=f"{base}:delayed",
            dead=f"{base}:dead",
            signal=f"{base}:signal",
            sweep_lock=f"{base}:sweep",
            ready=ready,
            batches=f"{base}:batches",
        )
        full = keys.all
        entry = (keys, full, full[:3])
        self._keys[queue] = entry
        return entry

    async def _reregister(self, queue: str) -> None:
        # A push found the queue holding no other job: Redis may have lost its data, the queues set with it.
        # Registered again on the first push at least a second after the last time, so a queue that a fast
        # worker keeps empty does not cost a round trip per push.
        now = time.monotonic()
        if now >= self._next_register.get(queue, 0.0):
            self._next_register[queue] = now + 1.0
            await self._client.sadd(self._queues_key, queue)
            self._maybe_lost.discard(queue)

    async def _register(self, queue: str) -> None:
        if queue not in self._registered:
            await self._client.sadd(self._queues_key, queue)
            self._registered.add(queue)

    # ------------------------------------------------------------------ producing

    async def push(
        self,
        queue: str,
        data: bytes,
        *,
        delay: float = 0.0,
        priority: int = 0,
        job_id: str | None = None,
    ) -> str:
        """Enqueue one job and return its id.

        ``delay`` (seconds) parks it in the delayed set first. ``priority`` is 0..:data:`MAX_PRIORITY`, higher
        runs first, FIFO within a level. A caller-chosen ``job_id`` makes the push idempotent while a job with
        that id still exists (the second push is ignored).
        """
        if job_id is not None:
            check_job_id(job_id)
        if delay == 0 and priority == 0:
            # The common case, kept lean: a three-key script, one id, no batch bookkeeping.
            keys = self._ready_keys.get(queue)
            if keys is None:
                found = self._resolve(queue)[0]
                keys = self._ready_keys[queue] = (found.jobs, found.ready[0], found.signal)
            if queue not in self._registered:
                await self._register(queue)
            if job_id is None:
                job_id = os.urandom(_ID_BYTES).hex()
            if await self._eval(self._push_ready, keys, (job_id, data)) == 2:
                self._maybe_lost.add(queue)
            if queue in self._maybe_lost:
                await self._reregister(queue)
            return job_id
        (job_id,) = await self._push_batch(queue, [data], delay, priority, None if job_id is None else [job_id])
        return job_id

    async def _eval(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` by its SHA in one round trip; load it first only when the server does not know it."""
        try:
            return await self._client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await script(keys=keys, args=args)

    async def push_many(
        self,
        queue: str,
        items: Sequence[bytes],
        *,
        delay: float = 0.0,
        priority: int = 0,
        batch_id: str | None = None,
    ) -> list[str]:
        """Enqueue many jobs in one round trip per 5,000 and return their ids (``<batch_id>-<n>``), in order.

        The batch has an id (``batch_id``, or a random one chosen before the first attempt). Each chunk of 5,000
        is stored atomically together with a record of "<batch_id>:<chunk>" kept for an hour, so pushing the
        same batch id again stores nothing twice, even after its jobs have run. On a storage error a
        :class:`PushBatchError` carries the batch id: retry the call with ``batch_id=error.batch_id``.
        """
        if not items:
            return []
        if batch_id is None:
            batch_id = os.urandom(_ID_BYTES).hex()
        else:
            check_job_id(batch_id, what="batch id")
        return await self._push_batch(queue, items, delay, priority, None, batch_id)

    async def _push_batch(
        self,
        queue: str,
        items: Sequence[bytes],
        delay: float,
        priority: int,
        ids: list[str] | None,
        batch_id: str | None = None,
    ) -> list[str]:
        if not 0 <= priority <= MAX_PRIORITY:
            raise ValueError(f"priority must be between 0 and {MAX_PRIORITY}, got {priority}")
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        keys, full, _ = self._resolve(queue)
        push_keys = (*full, keys.batches)
        if ids is None:
            ids = [f"{batch_id}-{n}" for n in range(len(items))] if batch_id else _new_ids(len(items))
        try:
            await self._register(queue)
            for chunk, start in enumerate(range(0, len(items), _CHUNK)):
                head: list[Any] = [_ms(delay), priority, f"{batch_id}:{chunk}" if batch_id else ""]
                args = head + list(
                    itertools.chain.from_iterable(
                        zip(ids[start : start + _CHUNK], items[start : start + _CHUNK], strict=True)
                    )
                )
                _, fresh = await self._push(keys=push_keys, args=args)
                if fresh:
                    self._maybe_lost.add(queue)
            if queue in self._maybe_lost:
                await self._reregister(queue)
        except RedisError as exc:
            if batch_id is None:
                raise
            raise PushBatchError(batch_id, exc) from exc
        return ids

    # ------------------------------------------------------------------ consuming

    async def claim(
        self, queue: str, *, limit: int, lease_seconds: float, token: str | None = None
    ) -> list[ClaimedJob]:
        """Lease up to ``limit`` ready jobs, highest priority first, in one round trip.

        The attempt is counted here, so a job that kills its worker still runs out of attempts, once the worker
        has :meth:`confirm`-ed that it received them: a claim whose reply is lost (never confirmed) gives its
        attempt back when its lease expires. All jobs of one claim share the lease token (``token``, or a fresh
        random one). Due delayed jobs are promoted first. Entries with corrupt metadata are quarantined to the
        dead letters (logged), never returned.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be > 0, got {lease_seconds}")
        _, full, _ = self._resolve(queue)
        token = token or secrets.token_hex(8)
        raw = await self._claim(keys=full, args=[limit, max(1, _ms(lease_seconds)), token, _BATCH, self._dead_max,
                                                 self._max_job_bytes])
        if raw[0]:
            log.error("claim on %s dead-lettered %d job(s) with corrupt metadata or above the size limit (their "
                      "errors say which); the other jobs are unaffected", queue, raw[0])
        it = iter(raw[1:])
        return [
            ClaimedJob(job_id.decode(), data, attempt, token) for job_id, data, attempt in zip(it, it, it, strict=False)
        ]

    async def confirm(self, queue: str, token: str, ids: Sequence[str]) -> int:
        """Record that the worker received the jobs ``ids`` of the claim ``token``: their attempts now count.

        Idempotent; returns how many are still leased under ``token``.
        """
        if not ids:
            return 0
        _, full, _ = self._resolve(queue)
        return int(await self._confirm(keys=full, args=[token, *ids]))

    # The timeout is the point of this call (a bounded BLPOP), not a cancellation scope.
    async def wait(self, queue: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Block until work may be available, at most ``timeout`` seconds.

        Returns True when woken by a push (the one-token signal list) or because a delayed job is due (the
        wait is cut short to its due time, so retries do not sit out a whole idle timeout); False on timeout.
        The wait is always finite, so a worker notices a restarted Redis.
        """
        keys, full, _ = self._resolve(queue)
        due_ms = int(await self._next_due(keys=full))
        if due_ms == 0:
            return True
        if due_ms > 0:
            timeout = min(timeout, due_ms / 1000)
        if timeout < 0.001:
            # BLPOP treats 0 as "forever"; never block without a bound.
            return await self._client.lpop(keys.signal) is not None
        popped = await self._client.blpop([keys.signal], timeout=timeout)
        return popped is not None or (due_ms > 0 and timeout * 1000 >= due_ms)

    async def heartbeat(self, queue: str, leases: Sequence[tuple[str, str]], lease_seconds: float) -> set[str]:
        """Extend the leases of running jobs to now + ``lease_seconds``; return the ids whose lease was lost.

        A lost lease means the job was returned by the sweep (and may run elsewhere), acked or failed. A lease
        past its deadline that no sweep has reclaimed yet is still extended: nobody else can hold the job.
        """
        if not leases:
            return set()
        _, _, short = self._resolve(queue)
        lost: set[str] = set()
        lease_ms = max(1, _ms(lease_seconds))
        for start in range(0, len(leases), _CHUNK):
            args: list[Any] = [lease_ms, *_flatten(leases[start : start + _CHUNK])]
            lost.update(i.decode() for i in await self._heartbeat(keys=short, args=args))
        return lost

    async def ack(self, queue: str, leases: Sequence[tuple[str, str]]) -> int:
        """Finish jobs, deleting all their data; return how many were acked.

        A pair whose token no longer holds the lease is skipped (the job was returned and may run again).
        """
        if not leases:
            return 0
        _, _, short = self._resolve(queue)
        done = 0
        for start in range(0, len(leases), _CHUNK):
            done += int(await self._ack(keys=short, args=_flatten(leases[start : start + _CHUNK])))
        return done

    async def fail(
        self,
        queue: str,
        job_id: str,
        lease_token: str,
        error: str,
        *,
        retry_in: float | None,
        max_attempts: int,
    ) -> str:
        """Record a failed run; return ``"retry"``, ``"dead"`` or ``"stale"``.

        The job is retried after ``retry_in`` seconds (0: at once) unless ``retry_in`` is None or it has made
        ``max_attempts`` attempts, in which case it is dead-lettered with ``error``. ``"stale"``: the token no
        longer holds the lease, nothing changed.
        """
        _, full, _ = self._resolve(queue)
        retry_ms = -1 if retry_in is None else _ms(retry_in)
        args: list[Any] = [job_id, lease_token, error, retry_ms, max_attempts, self._dead_max]
        result: bytes = await self._fail(keys=full, args=args)
        return result.decode()

    async def release(self, queue: str, leases: Sequence[tuple[str, str]]) -> int:
        """Return claimed-but-unstarted jobs to the head of ready, un-counting the attempt.

        Pass them in claim order to keep their order. Returns how many were released.
        """
        if not leases:
            return 0
        _, full, _ = self._resolve(queue)
        done = 0
        for start in range(0, len(leases), _CHUNK):
            args: list[Any] = [self._dead_max, *_flatten(leases[start : start + _CHUNK])]
            done += int(await self._release(keys=full, args=args))
        return done

    # ------------------------------------------------------------------ maintenance

    async def sweep(self, queue: str, *, max_attempts: int, lock_seconds: float = 10.0) -> SweepResult:
        """Promote due delayed jobs and recover expired leases.

        An expired job goes back to the head of ready, or to the dead letters when it has made
        ``max_attempts`` attempts. Runs under a ``SET NX PX`` lock (held at most ``lock_seconds`` if the sweeper
        dies); when another sweep holds it, this one does nothing and returns zeros.
        """
        _, full, _ = self._resolve(queue)
        token = secrets.token_hex(8)
        lock_ms = max(1, _ms(lock_seconds))
        promoted = expired = 0
        first = "1"
        while True:
            raw = await self._sweep(keys=full, args=[token, lock_ms, max_attempts, _BATCH, first, self._dead_max])
            if raw[0] == -1:
                break
            if raw[4]:
                log.error("sweep on %s quarantined %d job(s) with corrupt metadata to the dead letters (their "
                          "errors name the corruption); the other jobs are unaffected", queue, raw[4])
            promoted += raw[0]
            expired += raw[1] + raw[2] + raw[4]
            if not raw[3]:
                break
            first = "0"
        return SweepResult(promoted, expired)

    async def depth(self, queue: str) -> QueueDepth:
        """Count the jobs of ``queue`` in each state (one atomic snapshot)."""
        _, full, _ = self._resolve(queue)
        ready, delayed, leased, dead = await self._depth(keys=full)
        return QueueDepth(ready=ready, delayed=delayed, leased=leased, dead=dead)

    async def queues(self) -> list[str]:
        """Names of the queues ever pushed to under this prefix, sorted."""
        members = await self._client.smembers(self._queues_key)
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    # ------------------------------------------------------------------ dead letters

    @staticmethod
    def _dead_letters(raw: list[Any]) -> list[DeadLetter]:
        it = iter(raw)
        return [
            DeadLetter(
                id=job_id.decode(),
                data=data,
                error=error.decode(errors="replace"),
                attempts=_int_or_zero(attempts),
                failed_at=float(score) / 1000,
            )
            for job_id, data, error, attempts, score in zip(it, it, it, it, it, strict=False)
        ]

    async def dead_letters(self, queue: str, *, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        """List dead letters, newest first."""
        if offset < 0 or limit < 1:
            return []
        _, full, _ = self._resolve(queue)
        raw = await self._dead_list(keys=full, args=["range", offset, offset + limit - 1])
        return self._dead_letters(raw)

    async def dead_letter(self, queue: str, job_id: str) -> DeadLetter | None:
        """Return one dead letter, or None when ``job_id`` is not dead."""
        _, full, _ = self._resolve(queue)
        found = self._dead_letters(await self._dead_list(keys=full, args=["ids", job_id]))
        return found[0] if found else None

    async def _for_dead(self, script: AsyncScript | _OomScript, queue: str, ids: Sequence[str] | None) -> int:
        _, full, _ = self._resolve(queue)
        total = 0
        if ids is None:
            while True:
                n = int(await script(keys=full, args=["all", _BATCH]))
                total += n
                if n < _BATCH:
                    return total
        for start in range(0, len(ids), _CHUNK):
            total += int(await script(keys=full, args=["ids", *ids[start : start + _CHUNK]]))
        return total

    async def redrive(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Move dead letters (``None``: all) back to ready with attempts and error reset; return the count."""
        return await self._for_dead(self._redrive, queue, ids)

    async def purge_dead(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters (``None``: all) and all their data; return the count."""
        return await self._for_dead(self._purge_dead, queue, ids)

    async def trim_dead(self, queue: str, *, retention_seconds: float, max_items: int | None = None) -> int:
        """Delete dead letters older than ``retention_seconds``, then the oldest beyond ``max_items``.

        Returns how many were deleted.
        """
        _, full, _ = self._resolve(queue)
        args = [_ms(retention_seconds), -1 if max_items is None else max(0, max_items), _BATCH]
        total = 0
        while True:
            n = int(await self._trim_dead(keys=full, args=args))
            total += n
            if n < _BATCH:
                return total
