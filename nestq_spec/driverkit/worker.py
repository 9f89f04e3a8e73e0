"""The worker base: one receive loop, concurrency, cancel, grace, dispatch and outcomes; drivers give primitives.

A driver on the toolkit subclasses :class:`QueueWorker` and implements its primitives: :meth:`~QueueWorker.receive`
(a batch, with a finite wait), :meth:`~QueueWorker.ack`, :meth:`~QueueWorker.retry`,
:meth:`~QueueWorker.dead_letter`, :meth:`~QueueWorker.give_back`, and, for storages that lease claimed jobs,
:meth:`~QueueWorker.extend_leases` (enabled by a ``heartbeat_interval``). Everything else is here, written once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from nestq_spec.container import Container
from nestq_spec.driverkit.lease import LeaseKeeper
from nestq_spec.driverkit.retry import Decision, RetryPolicy, describe_error
from nestq_spec.errors import ConfigError
from nestq_spec.registry import ProcessMethod, _dispatch_job, routes
from nestq_spec.transport import CancellationToken, Transport

__all__ = ["Delivery", "QueueWorker"]

log = logging.getLogger("nestq.driverkit")

H = TypeVar("H")


@dataclass(slots=True, eq=False)
class Delivery(Generic[H]):
    """One received job: its queue, the stored bytes as they are, the attempt it is, and the storage's handle.

    ``attempt`` counts from 1 and includes this delivery (a storage that counts at claim reports the count after
    the claim). ``handle`` is whatever the driver needs to settle it: a row id and lease token, a message object, a
    delivery tag. ``error`` is set by the base when the attempt fails.
    """

    queue: str
    data: bytes | str
    attempt: int
    job_id: str | None
    handle: H
    error: str = field(default="")


_ACK, _RETRY, _DEAD, _GIVE_BACK = "ack", "retry", "dead", "give_back"

YIELD_EVERY = 32
"""A runner gives the event loop a turn once every this many jobs, even when none of them suspended."""


class _Settlements(Generic[H]):
    """One queue's outcomes not yet written to the storage, flushed in batches by one task at a time."""

    __slots__ = ("flushing", "pending")

    def __init__(self) -> None:
        self.pending: list[tuple[str, Delivery[H], float]] = []
        self.flushing: asyncio.Future[object] | None = None


class QueueWorker(Transport, Generic[H]):
    """A :class:`~nestq_spec.Transport` that owns the worker loop; the driver supplies the storage primitives.

    ``serve`` routes the reachable ``@process`` methods by queue and runs ``concurrency`` runners (the bound, shared
    by every queue). An idle runner takes a job another runner's :meth:`receive` brought in, or receives itself,
    asking for at most as many jobs as there are free slots; it dispatches the job with ``JobMeta(attempt, job_id)``
    in the job context and settles outcomes per queue in batches (the successes recorded while one :meth:`ack` call
    is in flight go out together in the next). A failed attempt goes through
    ``retry_policy``: :meth:`retry` after its backoff, or :meth:`dead_letter` with the error text. On cancel it stops
    receiving, lets running jobs finish for ``shutdown_grace`` seconds, cancels the rest and hands them to
    :meth:`give_back` (an interrupted attempt is not counted: the storage refunds it), writes the last outcomes and
    returns.

    The loop keeps its state and its steps in a private object, not on the worker: a driver's own attributes and
    helper methods, whatever their names (``_buffer``, ``_next``, ``_running``), can never shadow them. What a
    driver may read or refine is public: :attr:`stopping`, :attr:`busy`, :meth:`held`, :meth:`routes`,
    :meth:`handle` and :meth:`report_failure`.

    A failing storage call of one queue never stops another queue: outcomes that could not be written are kept and
    written again (``settle_retry`` seconds later), lease extensions are per queue, and a failing :meth:`receive` is
    retried with a growing pause. Push-based storages fit as well: :meth:`receive` may return what a consumer
    callback buffered (with a prefetch of :attr:`concurrency`), waiting on that buffer instead of polling.
    """

    receive_wait: float = 1.0
    """Longest wait of one :meth:`receive` call; the loop calls again after an empty batch."""
    settle_retry: float = 0.1
    """Seconds before outcomes that could not be written are tried again."""
    receive_error_pause: tuple[float, float] = (0.05, 2.0)
    """First and longest pause after a failed :meth:`receive` (doubling in between)."""
    ack_gather_turns: int = 0
    """Event-loop turns a finished job waits, before its outcome is written, for other runners' outcomes to join
    the same :meth:`ack` call. 0 (the default) suits a storage whose write is cheap (in memory); a storage with a
    round trip per call (a server) writes fewer, larger batches with 1."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "_held" in vars(cls):
            # Before the loop moved off the worker, drivers refined the lease keeper's source by overriding _held();
            # nothing calls it now, so such a driver would silently stop extending the leases it added.
            raise TypeError(f"{cls.__qualname__} defines _held(), which QueueWorker no longer calls: override held() "
                            "instead (and add to super().held())")

    def __init__(
        self,
        *,
        concurrency: int,
        shutdown_grace: float,
        retry_policy: RetryPolicy,
        heartbeat_interval: float | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(f"concurrency must be an int >= 1, found {concurrency!r}")
        if shutdown_grace < 0:
            raise ConfigError(f"shutdown_grace must be >= 0 seconds, found {shutdown_grace!r}")
        if heartbeat_interval is not None and type(self).extend_leases is QueueWorker.extend_leases:
            raise ConfigError(
                f"{type(self).__qualname__} has a heartbeat_interval but does not implement extend_leases(); a "
                "lease-based storage must extend the leases of running jobs"
            )
        self.concurrency = concurrency
        self.shutdown_grace: float = shutdown_grace
        self.retry_policy = retry_policy
        self.heartbeat_interval = heartbeat_interval
        self.stopping = asyncio.Event()
        """Set once ``serve`` was cancelled: a :meth:`receive` that waits should also wait on this and return early."""
        self.__loop: _Loop[H] | None = None

    # ------------------------------------------------------------------------------------------ storage primitives

    @abstractmethod
    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[H]]:
        """Claim up to ``limit`` jobs of ``queues``, waiting at most ``wait`` seconds for the first; may return none.

        Each returned job is now the worker's (leased, or held by the connection) and counted as an attempt. Return
        early (empty) when :attr:`stopping` is set. Never return more than ``limit``.
        """

    @abstractmethod
    async def ack(self, deliveries: Sequence[Delivery[H]]) -> None:
        """These jobs (all of one queue) succeeded: remove them from the storage."""

    @abstractmethod
    async def retry(self, delivery: Delivery[H], delay: float, error: str) -> None:
        """The attempt failed and another is allowed: make the job due again ``delay`` seconds from now."""

    @abstractmethod
    async def dead_letter(self, delivery: Delivery[H], error: str) -> None:
        """The job failed for good: keep it as a dead letter with ``error`` and its attempt count."""

    @abstractmethod
    async def give_back(self, deliveries: Sequence[Delivery[H]]) -> None:
        """The worker stopped before these jobs (all of one queue) finished: return them, attempt not counted."""

    async def extend_leases(self, deliveries: Sequence[Delivery[H]]) -> None:
        """Extend the leases of these running jobs (all of one queue); lease-based storages only.

        Called every ``heartbeat_interval`` seconds while the jobs run, and never after their outcome is written.
        """
        raise NotImplementedError(f"{type(self).__qualname__} does not lease jobs")

    # ---------------------------------------------------------------------------------- steps a driver may refine

    def routes(self, container: Container) -> dict[str, tuple[ProcessMethod, ...]]:
        """The reachable ``@process`` methods by queue: the queues this worker receives from."""
        return routes(container)

    async def handle(self, methods: Sequence[ProcessMethod], delivery: Delivery[H], container: Container) -> None:
        """Run one job: the stored bytes as they are, with this attempt's ``JobMeta`` in the job context."""
        await _dispatch_job(methods, delivery.data, container, delivery.attempt, delivery.job_id)

    def report_failure(self, delivery: Delivery[H], exc: BaseException, decision: Decision) -> None:
        """Log a failed attempt, once ``retry_policy`` has decided what happens to it (``delivery.error`` is set).

        The default logs a retry at WARNING and a dead letter at ERROR with the traceback. A driver whose operators
        want one line per dead letter (thousands of failures must not write a traceback each) overrides this; it
        must not raise, and it changes nothing but the log.
        """
        limit = self.retry_policy.max_attempts
        if decision.retry:
            log.warning("job %s on %s failed (attempt %d of %d), retrying in %.3gs: %s",
                        delivery.job_id, delivery.queue, delivery.attempt, limit, decision.delay, delivery.error)
        else:
            log.error("job %s on %s dead-lettered after attempt %d, %s: %s", delivery.job_id, delivery.queue,
                      delivery.attempt, decision.why, delivery.error, exc_info=exc)

    def held(self) -> dict[str, list[Delivery[H]]]:
        """Jobs this worker holds, by queue: running, received but not started, or finished but not settled.

        The lease keeper extends exactly these. A driver that buffers deliveries of its own (pulled ahead, or pushed
        by a consumer callback) and must keep their leases alive overrides this and adds them to ``super().held()``.
        """
        loop = self.__loop
        return loop.held() if loop is not None else {}

    @property
    def busy(self) -> int:
        """How many jobs run now (a driver sizing a prefetch or a pull to the free slots: ``concurrency - busy``)."""
        loop = self.__loop
        return len(loop.running) if loop is not None else 0

    # ----------------------------------------------------------------------------------------------- the loop

    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """Receive and run jobs until ``cancel``; then finish within ``shutdown_grace`` and give back the rest."""
        by_queue = self.routes(container)
        if not by_queue:
            log.info("%s: no reachable @process method, nothing to consume", type(self).__qualname__)
            await cancel.wait()
            return
        if cancel.is_cancelled:
            return  # cancelled before serving: take nothing
        self.stopping.clear()
        loop = self.__loop = _Loop(self, by_queue, container, cancel)
        await loop.serve()


class _Loop(Generic[H]):
    """One ``serve`` of a :class:`QueueWorker`: its runners, its receive, its outcomes and its leases.

    Kept apart from the worker so that nothing a driver names on its subclass can collide with it.
    """

    def __init__(self, worker: QueueWorker[H], by_queue: dict[str, tuple[ProcessMethod, ...]], container: Container,
                 cancel: CancellationToken) -> None:
        self.worker = worker
        self.by_queue = by_queue
        self.container = container
        self.cancel = cancel
        self.queues = tuple(by_queue)
        self.running: dict[asyncio.Task[None], Delivery[H]] = {}
        self.settle: dict[str, _Settlements[H]] = {queue: _Settlements() for queue in by_queue}
        self.buffer: deque[Delivery[H]] = deque()
        self.receiving = False
        self.stopped = False
        self.cancelled = False
        """``cancel.is_cancelled``, as a plain attribute the runners check twice per job (set by the token)."""
        # The base's handle() is dispatch with this attempt's JobMeta: call the dispatch directly, without the
        # method call and the JobMeta, unless the driver refined handle().
        self.handle = None if type(worker).handle is QueueWorker.handle else worker.handle
        self.waiters: list[asyncio.Future[None]] = []
        self.pause = worker.receive_error_pause[0]
        self.missing: NotImplementedError | None = None

    async def serve(self) -> None:
        worker = self.worker
        keeper: LeaseKeeper[Delivery[H]] | None = None
        if worker.heartbeat_interval is not None:
            keeper = LeaseKeeper(worker.heartbeat_interval, worker.held, self.extend)
            keeper.start()
        forget = self.cancel._on_cancel(self.on_cancel)
        stop = asyncio.ensure_future(self.cancel.wait())
        # One runner per concurrency slot: each takes a job, runs it and writes its outcome inline, so a job whose
        # storage calls and handler do not suspend costs no task and no event-loop turn.
        runners = [asyncio.create_task(self.runner(), name=f"nestq-runner-{i}") for i in range(worker.concurrency)]
        try:
            await asyncio.wait([stop, *runners], return_when=asyncio.FIRST_COMPLETED)
            deadline = time.monotonic() + worker.shutdown_grace
            self.stop_receiving()
            await asyncio.wait(runners, timeout=worker.shutdown_grace)
            receiving = [r for r in runners if not r.done() and r not in self.running]
            if receiving:  # a claim on the wire may finish, so that no lease is taken without our knowing
                await asyncio.wait(receiving, timeout=max(worker.receive_wait, deadline - time.monotonic()))
        finally:
            forget()
            self.stop_receiving()
            for runner in runners:
                runner.cancel()  # cut off after the grace: a runner gives its job back
            stop.cancel()
            await asyncio.gather(stop, *runners, return_exceptions=True)
            for delivery in self.buffer:
                self.record(_GIVE_BACK, delivery)  # received, never started
            self.buffer.clear()
            await self.flush_all(final=True)
            if keeper is not None:
                await keeper.stop()
        for runner in runners:
            if not runner.cancelled() and (failure := runner.exception()) is not None:
                raise failure
        if self.missing is not None:
            raise self.missing

    def on_cancel(self) -> None:
        self.cancelled = True

    async def runner(self) -> None:
        worker, by_queue, container, handle = self.worker, self.by_queue, self.container, self.handle
        running, buffer, settles = self.running, self.buffer, self.settle
        gather = worker.ack_gather_turns
        task = asyncio.current_task()
        assert task is not None
        streak = 0
        while not (self.stopped or self.cancelled):
            if buffer:
                delivery = buffer.popleft()
            else:
                got = await self.next()
                if got is None:
                    continue
                delivery = got
                if self.stopped or self.cancelled:
                    self.record(_GIVE_BACK, delivery)  # received as the worker stopped: never started
                    break
            running[task] = delivery
            kind, delay = _ACK, 0.0
            try:
                if handle is None:
                    await _dispatch_job(by_queue[delivery.queue], delivery.data, container, delivery.attempt,
                                        delivery.job_id)
                else:
                    await handle(by_queue[delivery.queue], delivery, container)
            except asyncio.CancelledError as exc:
                if task.cancelling():
                    del running[task]
                    self.record(_GIVE_BACK, delivery)  # cut off after the grace: back to its queue, never lost
                    raise
                kind, delay = self.failed(delivery, exc)  # the handler raised CancelledError itself: a failure
            except Exception as exc:
                kind, delay = self.failed(delivery, exc)
            del running[task]
            settle = settles.get(delivery.queue) or self.settlements(delivery.queue)
            if settle.flushing is not None:
                # Another runner is writing this queue's outcomes: this one waits in `pending` and goes out with
                # that runner's next call, batched.
                settle.pending.append((kind, delivery, delay))
            else:
                settle.flushing = task
                try:
                    for _ in range(gather):
                        # Runners finishing in these turns add their outcomes to `pending`: one write for all.
                        await asyncio.sleep(0)
                    if kind is _ACK and not settle.pending and not self.stopped and self.missing is None:
                        # The common case: one success, nothing else to write. One ack call, no batch to build
                        # (ack_one(), inline: one coroutine fewer per job).
                        try:
                            await worker.ack([delivery])
                        except NotImplementedError as exc:
                            self.missing_primitive(exc)
                        except Exception as exc:
                            self.ack_failed(settle, delivery, exc)
                            await asyncio.sleep(worker.settle_retry)  # kept in `pending`, written again below
                    else:
                        settle.pending.append((kind, delivery, delay))
                    if settle.pending:
                        await self.flush(settle)
                finally:
                    settle.flushing = None
            streak += 1
            if streak >= YIELD_EVERY:
                streak = 0
                await asyncio.sleep(0)  # jobs that never suspend must still let the rest of the loop run

    async def next(self) -> Delivery[H] | None:
        """A job for an idle runner: from the receive another runner has in flight, or from a receive of its own."""
        worker = self.worker
        if self.receiving:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter
            return self.buffer.popleft() if self.buffer else None
        self.receiving = True
        try:
            limit = worker.concurrency - len(self.running)
            try:
                batch = await worker.receive(self.queues, limit, worker.receive_wait)
            except NotImplementedError:
                raise  # a primitive the driver has not written yet: serve() fails with its message
            except Exception as exc:
                log.warning("receive from %s failed, trying again in %.2gs: %s", ", ".join(self.queues), self.pause,
                            describe_error(exc))
                await self.wait_or_stop(None, self.pause)
                self.pause = min(self.pause * 2, self.worker.receive_error_pause[1])
                return None
            self.pause = self.worker.receive_error_pause[0]
            if len(batch) > limit:
                log.error("%s.receive returned %d jobs for %d free slots; giving back the extra ones",
                          type(self.worker).__qualname__, len(batch), limit)
                for extra in batch[limit:]:
                    self.record(_GIVE_BACK, extra)
                batch = batch[:limit]
            if not batch:
                await asyncio.sleep(0)  # an empty receive that did not wait must not starve the loop
                return None
            if len(batch) > 1:
                self.buffer.extend(batch[1:])
            return batch[0]
        finally:
            self.receiving = False
            if self.waiters:
                self.wake_waiters()

    def wake_waiters(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def stop_receiving(self) -> None:
        self.stopped = True
        self.worker.stopping.set()
        self.wake_waiters()

    async def wait_or_stop(self, event: asyncio.Event | None, pause: float | None) -> None:
        waits = [asyncio.ensure_future(self.worker.stopping.wait())]
        if event is not None:
            waits.append(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waits, timeout=pause, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    def failed(self, delivery: Delivery[H], exc: BaseException) -> tuple[str, float]:
        delivery.error = describe_error(exc)
        decision = self.worker.retry_policy.decide(exc, delivery.attempt)
        self.worker.report_failure(delivery, exc, decision)
        if decision.retry:
            return _RETRY, decision.delay
        return _DEAD, 0.0

    # ------------------------------------------------------------------------------------------ settling outcomes

    def settlements(self, queue: str) -> _Settlements[H]:
        """The outcomes of a queue this worker does not route (a driver that received from another queue)."""
        settle = self.settle.get(queue)
        if settle is None:
            settle = self.settle[queue] = _Settlements()
        return settle

    def record(self, kind: str, delivery: Delivery[H], delay: float = 0.0) -> None:
        settle = self.settle.get(delivery.queue) or self.settlements(delivery.queue)
        settle.pending.append((kind, delivery, delay))

    async def ack_one(self, settle: _Settlements[H], delivery: Delivery[H]) -> bool:
        """Write one success; on a failure keep it in ``pending`` (to write again). Return whether it was written."""
        try:
            await self.worker.ack([delivery])
        except NotImplementedError as exc:
            self.missing_primitive(exc)
        except Exception as exc:
            self.ack_failed(settle, delivery, exc)
            return False
        return True

    def ack_failed(self, settle: _Settlements[H], delivery: Delivery[H], exc: Exception) -> None:
        """Keep a success whose ack failed at the head of ``pending``, to be written again."""
        log.warning("ack of 1 job on %s failed, will retry: %s", delivery.queue, describe_error(exc))
        settle.pending.insert(0, (_ACK, delivery, 0.0))

    async def flush(self, settle: _Settlements[H]) -> None:
        while settle.pending and not self.stopped:
            if not await self.write(settle):
                await asyncio.sleep(self.worker.settle_retry)  # the storage failed: keep the outcomes, try again

    async def write(self, settle: _Settlements[H]) -> bool:
        """Write every pending outcome of one queue; keep those whose write failed. Return whether all were written."""
        if self.missing is not None:
            return True  # a primitive is missing: nothing can be written, serve() is stopping with its message
        batch, settle.pending = settle.pending, []
        if len(batch) == 1 and batch[0][0] == _ACK:  # the common case at low load: one success, one call
            return await self.ack_one(settle, batch[0][1])
        acks = [d for kind, d, _ in batch if kind == _ACK]
        backs = [d for kind, d, _ in batch if kind == _GIVE_BACK]
        failed: list[tuple[str, Delivery[H], float]] = []
        if acks:
            try:
                await self.worker.ack(acks)
            except NotImplementedError as exc:
                self.missing_primitive(exc)
            except Exception as exc:
                log.warning("ack of %d job(s) on %s failed, will retry: %s", len(acks), acks[0].queue,
                            describe_error(exc))
                failed.extend((_ACK, d, 0.0) for d in acks)
        for kind, delivery, delay in batch:
            try:
                if kind == _RETRY:
                    await self.worker.retry(delivery, delay, delivery.error)
                elif kind == _DEAD:
                    await self.worker.dead_letter(delivery, delivery.error)
            except NotImplementedError as exc:
                self.missing_primitive(exc)
            except Exception as exc:
                log.warning("%s of job %s on %s failed, will retry: %s", kind, delivery.job_id, delivery.queue,
                            describe_error(exc))
                failed.append((kind, delivery, delay))
        if backs:
            try:
                await self.worker.give_back(backs)
            except NotImplementedError as exc:
                self.missing_primitive(exc)
            except Exception as exc:
                log.warning("giving back %d job(s) on %s failed, will retry: %s", len(backs), backs[0].queue,
                            describe_error(exc))
                failed.extend((_GIVE_BACK, d, 0.0) for d in backs)
        settle.pending[:0] = failed
        return not failed

    def missing_primitive(self, exc: NotImplementedError) -> None:
        """A settling primitive is not written yet: stop serving and let serve() raise its message."""
        if self.missing is None:
            self.missing = exc
            log.error("%s: %s", type(self.worker).__qualname__, exc)
        self.stop_receiving()

    async def flush_all(self, *, final: bool) -> None:
        flushing = [s.flushing for s in self.settle.values() if s.flushing is not None]
        if flushing:
            await asyncio.gather(*flushing, return_exceptions=True)
        attempts = 3 if final else 1
        for settle in self.settle.values():
            for _ in range(attempts):
                if not settle.pending or await self.write(settle):
                    break
                await asyncio.sleep(self.worker.settle_retry)
            if settle.pending:
                log.error("%d outcome(s) on %s could not be written before the worker stopped; their leases will "
                          "expire and the jobs be delivered again", len(settle.pending), settle.pending[0][1].queue)
                settle.pending.clear()

    # ------------------------------------------------------------------------------------------------ leases

    def held(self) -> dict[str, list[Delivery[H]]]:
        held: dict[str, list[Delivery[H]]] = {}
        for delivery in (*self.running.values(), *self.buffer):
            held.setdefault(delivery.queue, []).append(delivery)
        for queue, settle in self.settle.items():
            if settle.pending:
                held.setdefault(queue, []).extend(d for _, d, _ in settle.pending)
        return held

    async def extend(self, queue: str, deliveries: Sequence[Delivery[H]]) -> None:
        await self.worker.extend_leases(deliveries)
