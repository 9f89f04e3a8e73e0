"""The worker side: :class:`NatsWorker`, the storage primitives under nestq's worker loop.

``nestq_spec.driverkit.QueueWorker`` runs the loop: concurrency, cancel and shutdown grace, dispatch in the job
context, the retry policy and error text, batched outcomes, heartbeats that extend running jobs' leases.

JetStream mapping: one durable pull consumer per queue (``ack_wait`` = the visibility timeout), a receive is a
pull ``fetch``, a heartbeat is ``in_progress`` (+WPI), a retry is ``nak(delay)``, the attempt is the consumer's
delivery count (plus the attempts of earlier copies, see :meth:`NatsWorker.give_back`), a dead letter is a
publish to the dead-letter stream with the error and attempts, then an ack.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nestq_spec import CancellationToken, ConfigError, Container, env_var
from nestq_spec.driverkit import Delivery, QueueWorker

from .config import NatsConfig
from .connection import NatsConnection
from .layout import HEADER_ATTEMPTS, HEADER_ERROR, HEADER_FAILED_AT, HEADER_JOB_ID, HEADER_QUEUE

__all__ = ["NatsWorker"]

log = logging.getLogger("nestq_nats")

_Sub = JetStreamContext.PullSubscription

_PULL_END_MARGIN = 0.25
"""Seconds, beyond a pull's expiry, that a stopping worker waits for the pull's end (the server's closing status)."""


def earlier_attempts(msg: Msg) -> int:
    """Attempts used by earlier copies of this job (a give-back re-publishes it with that count)."""
    try:
        return max(0, int((msg.headers or {}).get(HEADER_ATTEMPTS, "0")))
    except ValueError:
        return 0


def _drain(sub: _Sub) -> list[Msg]:
    """Jobs a cancelled pull left in the subscription's queue (delivered to us, so their ack_wait runs).

    nats-py keeps them in the private ``_sub._pending_queue`` and hands them to the next ``fetch`` (which drains that
    queue first); a worker that stops makes no next fetch, so it takes them here to give them back. Reading the
    private queue is the one place this driver depends on nats-py internals; when it is missing, nothing is taken
    and those jobs return after ``ack_wait`` as before.
    """
    core: Any = getattr(sub, "_sub", None)
    queue = getattr(core, "_pending_queue", None)
    if not isinstance(queue, asyncio.Queue):
        return []
    msgs: list[Msg] = []
    while not queue.empty():
        msg = queue.get_nowait()
        if hasattr(core, "_pending_size"):
            core._pending_size -= len(msg.data)
        if msg.reply and not (msg.headers or {}).get("Status"):  # status messages have no reply subject
            msgs.append(msg)
    return msgs


class NatsWorker(QueueWorker[Msg]):
    """Receives from the queues the app's ``@process`` methods name; ``Delivery.handle`` is the JetStream message."""

    pull_ahead_below: float = 0.05
    """Pull a worker's worth of jobs ahead while jobs take less than this (seconds, hand-out to ack, on average)."""

    def __init__(self, connection: NatsConnection, config: NatsConfig) -> None:
        super().__init__(
            concurrency=config.concurrency,
            shutdown_grace=config.shutdown_grace,
            retry_policy=config.retry_policy(),
            heartbeat_interval=config.heartbeat_interval,
        )
        self.connection = connection
        self.config = config
        self._subs: dict[str, _Sub] = {}
        self._fetching: dict[str, tuple[asyncio.Future[list[Msg]], int]] = {}  # queue -> (pull in flight, batch)
        self._ahead: deque[Delivery[Msg]] = deque()  # pulled, not handed out yet (kept alive: see held)
        self._busy: set[asyncio.Future[list[Msg]]] = set()  # pulls made while jobs were at hand or running
        self._pull_for = 0.0  # how long the last pull stays open on the server
        self._handed: dict[str, float] = {}  # reply subject -> when handed out, for the job time
        self._job_time: float | None = None  # moving average of hand-out -> ack, seconds
        self._first_queue = 0

    async def configure(self, container: Container) -> None:
        """Connect and check the streams at boot: wrong credentials or an incompatible stream fail the boot.

        An unreachable server does not: the worker keeps trying (it may be starting), logging why.
        """
        try:
            await self.connection.client()
        except ConfigError:
            raise
        except Exception as exc:
            log.warning("NATS worker could not connect yet, will keep trying: %s", exc)

    async def _subscription(self, queue: str) -> _Sub:
        sub = self._subs.get(queue)
        if sub is None:
            js = await self.connection.jetstream()
            layout = self.connection.layout
            name = layout.consumer(queue)
            wanted = ConsumerConfig(
                durable_name=name,
                filter_subject=layout.subject(queue),
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.config.visibility_timeout,
                max_deliver=-1,  # attempts are the retry policy's business: it dead-letters with the error
                max_ack_pending=-1,
                description=f"nestq worker of queue {queue}",
            )
            try:
                found = (await js.consumer_info(layout.jobs_stream, name)).config
            except nats.js.errors.NotFoundError:
                found = None
            if found is not None and (found.filter_subject != wanted.filter_subject
                                      or found.ack_policy != AckPolicy.EXPLICIT):
                raise ConfigError(
                    f"consumer {name!r} of stream {layout.jobs_stream!r} exists with filter {found.filter_subject!r} "
                    f"and ack policy {found.ack_policy}; nestq needs {wanted.filter_subject!r} with explicit acks: "
                    f"delete it or choose another {env_var(NatsConfig, 'stream_prefix')}"
                )
            if found is None or found.ack_wait != wanted.ack_wait:
                # Creates it, or moves ack_wait to this worker's visibility timeout (an editable field).
                await js.add_consumer(layout.jobs_stream, wanted)
            sub = await js.pull_subscribe_bind(name, stream=layout.jobs_stream)
            self._subs[queue] = sub
        return sub

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[Msg]]:
        """Hand out up to ``limit`` jobs of ``queues``, pulling when none is at hand; wait at most ``wait`` seconds.

        One pull per queue is in flight at a time. The batches in flight, with the jobs pulled ahead, add up to the
        free slots, plus one more worker's worth (``concurrency``) while jobs are quick (see
        :attr:`pull_ahead_below`): then a slot that frees takes a job already here instead of waiting a pull round
        trip, and the next pull overlaps the running jobs. A job pulled ahead is held, not started: its ``ack_wait``
        is kept alive by in-progress acks like a running job's (see :meth:`held`), and it is given back when the
        worker stops. Slow jobs pull nothing ahead, so a busy worker never sits on jobs another worker could run. A
        pull that did not finish within ``wait`` stays in flight for the next call.
        """
        # A pull request outlives a killed worker until it expires, and nats-server 2.9 hands a redelivery to such
        # a dead request and then forgets that delivery (and the one before) in the delivery count: a crashed
        # attempt would not count. Pulls shorter than the lease minus a heartbeat expire before any redelivery.
        pull_for = min(wait, max(0.05, (self.config.visibility_timeout - self.config.heartbeat_interval) / 2))
        failure = self._collect()
        if not self._ahead and limit >= self.concurrency:
            self._busy.clear()  # idle now: a pull still open waits for work that is not there (see serve)
        self._start_pulls(queues, limit, pull_for)
        if not self._ahead and self._fetching:
            stop = asyncio.ensure_future(self.stopping.wait())
            try:
                await asyncio.wait([task for task, _ in self._fetching.values()] + [stop], timeout=wait,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
            failure = self._collect() or failure
            self._start_pulls(queues, limit, pull_for)  # pull ahead as soon as this batch is in
        if failure is not None and not self._ahead:
            raise failure
        out = [self._ahead.popleft() for _ in range(min(limit, len(self._ahead)))]
        now = time.monotonic()
        for delivery in out:
            self._handed[delivery.handle.reply] = now
        return await self._screen(out)

    def _quick(self) -> bool:
        """Whether jobs lately took less than :attr:`pull_ahead_below` from hand-out to ack (unknown: no)."""
        return self._job_time is not None and self._job_time < self.pull_ahead_below

    def _start_pulls(self, queues: Sequence[str], limit: int, pull_for: float) -> None:
        """Start a pull on each queue without one, sized so that pulls in flight plus jobs at hand fill the target."""
        if self.stopping.is_set() or not queues:
            return
        ahead = self.concurrency if self._quick() else 0
        reserved = sum(batch for _, batch in self._fetching.values())
        budget = limit + ahead - reserved - len(self._ahead)
        # Pull ahead in chunks (half a worker's worth at least), not one job per finished job.
        if budget <= 0 or (self._ahead and budget < max(1, self.concurrency // 2)):
            return
        order = list(queues[self._first_queue % len(queues):]) + list(queues[: self._first_queue % len(queues)])
        self._first_queue += 1
        idle = [queue for queue in order if queue not in self._fetching]
        # A pull made while the worker is busy is likely to bring jobs: at stop it is awaited (see serve) rather
        # than cancelled while the server still sends to it. Its expiry stays pull_for: every pull that expires is
        # a chance for nats-server 2.9's miscount (above), so pulls are not made shorter to end sooner.
        busy = bool(self._ahead) or reserved > 0 or limit < self.concurrency
        self._pull_for = pull_for
        for i, queue in enumerate(idle):
            if budget <= 0:
                break
            sub = self._subs.get(queue)
            batch = max(1, budget // (len(idle) - i))
            task = asyncio.ensure_future(self._pull(queue, sub, batch, pull_for))
            if busy:
                self._busy.add(task)
                task.add_done_callback(self._busy.discard)
            self._fetching[queue] = (task, batch)
            budget -= batch

    def _collect(self) -> BaseException | None:
        """Move the jobs of finished pulls to the jobs at hand; return a pull's error, if one failed."""
        failure: BaseException | None = None
        for queue, (task, _) in list(self._fetching.items()):
            if not task.done():
                continue
            del self._fetching[queue]
            if task.cancelled():
                continue
            if (exc := task.exception()) is not None:
                failure = exc
                continue
            self._ahead.extend(self._delivery(queue, msg) for msg in task.result())
        return failure

    def held(self) -> dict[str, list[Delivery[Msg]]]:
        """What the lease keeper keeps alive: the base's (running, buffered, unsettled) and the jobs pulled ahead.

        Jobs pulled ahead are this driver's own buffer, and their ``ack_wait`` runs from delivery like a running
        job's, so they get in-progress acks too.
        """
        held = super().held()
        for delivery in self._ahead:
            held.setdefault(delivery.queue, []).append(delivery)
        return held

    async def _pull(self, queue: str, sub: _Sub | None, batch: int, wait: float) -> list[Msg]:
        if sub is None:
            sub = await self._subscription(queue)
        try:
            msgs = await sub.fetch(batch, timeout=max(wait, 0.01))
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        return [msg for msg in msgs if msg.reply]  # status messages have no reply subject

    def _delivery(self, queue: str, msg: Msg) -> Delivery[Msg]:
        headers = msg.headers or {}
        attempt = earlier_attempts(msg) + msg.metadata.num_delivered
        job_id = headers.get(HEADER_JOB_ID) or str(msg.metadata.sequence.stream)
        return Delivery(queue, msg.data, attempt, job_id, msg)

    async def _screen(self, deliveries: list[Delivery[Msg]]) -> list[Delivery[Msg]]:
        # A job whose worker died during every allowed attempt (the consumer redelivered it after ack_wait each
        # time) is out of attempts before it runs again: dead-letter it instead of crash-looping.
        limit = self.retry_policy.max_attempts
        keep = []
        for delivery in deliveries:
            if delivery.attempt > limit:
                error = f"out of attempts: the job's worker stopped during each of its {limit} attempts"
                delivery.attempt = limit
                try:
                    await self.dead_letter(delivery, error)
                except Exception as exc:
                    log.warning("could not dead-letter job %s of %s yet: %s", delivery.job_id, delivery.queue, exc)
                continue
            keep.append(delivery)
        return keep

    async def ack(self, deliveries: Sequence[Delivery[Msg]]) -> None:
        """These jobs (one queue) succeeded: ack them (the work-queue stream then removes them)."""
        self._timed(deliveries)
        await self._reply(deliveries, b"+ACK", flush=False)

    def _timed(self, deliveries: Sequence[Delivery[Msg]]) -> None:
        """Fold the hand-out -> outcome times of ``deliveries`` into the moving average that gates pulling ahead."""
        now = time.monotonic()
        for delivery in deliveries:
            handed = self._handed.pop(delivery.handle.reply, None)
            if handed is not None:
                took = now - handed
                self._job_time = took if self._job_time is None else 0.8 * self._job_time + 0.2 * took

    async def retry(self, delivery: Delivery[Msg], delay: float, error: str) -> None:
        """Make the job due again in ``delay`` seconds: ``nak`` with that delay (the delivery count stays)."""
        self._timed([delivery])
        body = b"-NAK" if delay <= 0 else b"-NAK " + json.dumps({"delay": int(delay * 1e9)}).encode()
        await self._reply([delivery], body)

    async def dead_letter(self, delivery: Delivery[Msg], error: str) -> None:
        """Publish the job to the dead-letter stream with ``error`` and its attempts, then ack it off the queue."""
        self._timed([delivery])
        js = await self.connection.jetstream()
        headers = {
            HEADER_JOB_ID: delivery.job_id or "",
            HEADER_QUEUE: delivery.queue,
            HEADER_ATTEMPTS: str(delivery.attempt),
            HEADER_ERROR: json.dumps(error),
            HEADER_FAILED_AT: f"{time.time():.3f}",
        }
        data = delivery.data if isinstance(delivery.data, bytes) else delivery.data.encode()
        await js.publish(self.connection.layout.dead_subject(delivery.queue), data, headers=headers)
        await self._reply([delivery], b"+ACK")

    async def give_back(self, deliveries: Sequence[Delivery[Msg]]) -> None:
        """Return interrupted jobs now, refunding the attempt.

        JetStream cannot lower a delivery count, so the job is re-published (same id and data) carrying the
        attempts its earlier deliveries used, and the delivered copy is acked. A crash between the two leaves
        both: the job runs twice, which at-least-once allows; it is never lost.
        """
        js = await self.connection.jetstream()
        subject = self.connection.layout.subject(deliveries[0].queue) if deliveries else ""
        for delivery in deliveries:
            msg = delivery.handle
            self._handed.pop(msg.reply, None)
            headers = {
                HEADER_JOB_ID: delivery.job_id or "",
                HEADER_ATTEMPTS: str(earlier_attempts(msg) + msg.metadata.num_delivered - 1),
            }
            await js.publish(subject, msg.data, headers=headers)
            await self._reply([delivery], b"+ACK")

    async def extend_leases(self, deliveries: Sequence[Delivery[Msg]]) -> None:
        """Reset ``ack_wait`` of these running jobs with an in-progress ack (+WPI)."""
        await self._reply(deliveries, b"+WPI")

    async def _reply(self, deliveries: Sequence[Delivery[Msg]], body: bytes, *, flush: bool = True) -> None:
        # The JetStream ack protocol, sent on each delivery's reply subject. Written here rather than through
        # Msg.ack()/nak(), which refuse a second call: the toolkit writes an outcome again when the first write
        # failed (a lost connection), and the server takes a repeated ack as a no-op. These are fire-and-forget
        # publishes: flushed (a returned call means the server has them) except for plain acks, which the client
        # sends within its next write (a lost ack only means a duplicate run, and the client is flushed on close).
        client = await self.connection.client()
        for delivery in deliveries:
            await client.publish(delivery.handle.reply, body)
        if flush:
            await client.flush(timeout=max(1, round(self.config.connect_timeout)))

    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """Run the toolkit's loop, then cancel the pulls still in flight and give back the jobs pulled ahead."""
        try:
            await super().serve(container, cancel)
        finally:
            # A pull cancelled here stays open on the server until it expires, and the jobs the server sends to it
            # would wait out ack_wait. A busy worker's pull mostly ends at once with jobs: let it end (bounded by its
            # expiry), then give back what it brought. An idle worker's pull is cancelled: it waits for work that
            # is not there, and stopping must not wait for it.
            busy = [task for task, _ in self._fetching.values() if task in self._busy]
            if busy:
                await asyncio.wait(busy, timeout=self._pull_for + _PULL_END_MARGIN)
            await self._stop_pulls()
            await self._give_back_ahead()

    async def _give_back_ahead(self) -> None:
        """Return the jobs pulled ahead and never handed out, attempt refunded (they would wait out ack_wait)."""
        self._collect()
        for queue, sub in self._subs.items():
            self._ahead.extend(self._delivery(queue, msg) for msg in _drain(sub))
        by_queue: dict[str, list[Delivery[Msg]]] = {}
        while self._ahead:
            delivery = self._ahead.popleft()
            by_queue.setdefault(delivery.queue, []).append(delivery)
        for queue, deliveries in by_queue.items():
            try:
                await self.give_back(deliveries)
            except Exception as exc:
                log.warning("could not give back %d job(s) pulled ahead on %s; they return after ack_wait: %s",
                            len(deliveries), queue, exc)
        self._handed.clear()

    async def _stop_pulls(self) -> None:
        """Cancel the pulls in flight; what finished pulls brought joins the jobs at hand (to be given back)."""
        self._collect()
        fetching, self._fetching = self._fetching, {}
        for task, _ in fetching.values():
            task.cancel()
        await asyncio.gather(*(task for task, _ in fetching.values()), return_exceptions=True)
        self._fetching = {queue: pull for queue, pull in fetching.items() if not pull[0].cancelled()}
        self._collect()  # a pull that finished before its cancel took effect
        self._fetching = {}

    async def close(self) -> None:
        """Stop the pulls in flight and drop the subscriptions (the consumers stay for the next worker)."""
        await self._stop_pulls()
        subs, self._subs = self._subs, {}
        for sub in subs.values():
            try:
                await sub.unsubscribe()
            except Exception as exc:
                log.debug("unsubscribe failed: %s", exc)
