"""The worker side: :class:`RabbitmqWorker`, RabbitMQ's primitives under nestq's worker loop.

RabbitMQ pushes: a consumer per queue (manual acks, prefetch = ``concurrency``) puts deliveries in a buffer and
:meth:`RabbitmqWorker.receive` returns what is buffered, waiting on the buffer (never polling). A delivery is held
by the channel, not leased by time: a live worker keeps it however long its job runs, and the broker requeues it
when the connection closes (a killed worker, a dropped link). Such a requeued message comes back ``redelivered``;
the worker counts the lost attempt by publishing it again with its attempt header raised (or dead-letters it once
out of attempts), so a job that kills its worker still runs out of attempts.

Every outcome that moves a message (retry, dead letter, give back, lost attempt) publishes the new message with
confirms first and acks the old one after: a crash in between duplicates a job, never loses it.

The consumers sit on aiormq's channel under aio-pika's (the handle is aiormq's ``DeliveredMessage``): aio-pika's
consumer wraps every delivery in an ``IncomingMessage`` and a second task, which the profile of a busy worker showed
as a large part of its time. Successes are acked with one ``basic.ack(multiple=True)`` for the oldest run of
unsettled deliveries that all finished (:class:`_Unsettled`), never covering one that has not: a socket write per
job was the largest cost.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from aio_pika.abc import AbstractChannel
from aiormq.abc import AbstractChannel as AmqpChannel
from aiormq.abc import DeliveredMessage
from nestq_spec import CancellationToken, Container
from nestq_spec.driverkit import Delivery, QueueWorker, describe_error

from .config import RabbitmqConfig
from .connection import ATTEMPTS_HEADER, ERROR_HEADER, RabbitmqConnection

__all__ = ["RabbitmqWorker", "attempts_of"]

log = logging.getLogger("nestq.rabbitmq")

Message = DeliveredMessage


def _headers(message: Message) -> dict[str, Any]:
    return message.header.properties.headers or {}


def attempts_of(message: Message) -> int:
    """Attempts made before this delivery, from the driver's header (0 for a message with none or a bad one)."""
    value = _headers(message).get(ATTEMPTS_HEADER, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _stale(message: Message) -> bool:
    """The channel that delivered ``message`` is gone: the broker has requeued it, nothing can settle it now."""
    return message.channel.is_closed


def _tag(message: Message) -> int:
    tag = message.delivery_tag
    assert tag is not None  # a consumer's delivery always has one
    return tag


class _Unsettled:
    """The delivery tags of one channel not settled yet, in delivery order (tags grow on a channel).

    ``basic.ack(multiple=True)`` settles every unsettled tag up to the one named, so it may only name the end of a run
    of the oldest tags that all finished; a tag settled on its own (after its move was confirmed) leaves first.
    """

    __slots__ = ("tags",)

    def __init__(self) -> None:
        self.tags: dict[int, None] = {}

    def split(self, finished: set[int]) -> tuple[int | None, list[int]]:
        """Remove ``finished``; return the last tag of the oldest run they cover (for one multiple ack), the rest."""
        upto: int | None = None
        run = 0
        for tag in self.tags:
            if tag not in finished:
                break
            upto, run = tag, run + 1
        if run < 2:
            upto = None  # one ack either way: a plain one
        rest = [t for t in finished if upto is None or t > upto]
        tags = self.tags
        for tag in finished:
            tags.pop(tag, None)
        return upto, rest


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Stopping(asyncio.Event):
    """The worker's :attr:`~QueueWorker.stopping`, which also wakes a receive waiting for deliveries when set."""

    def __init__(self, wake: Callable[[], None]) -> None:
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        """Set the event and wake the waiting receive."""
        super().set()
        self._wake()


class RabbitmqWorker(QueueWorker[Message]):
    """Consumes the queues the app's ``@process`` methods name; ``Delivery.handle`` is aiormq's delivered message."""

    def __init__(self, connection: RabbitmqConnection, config: RabbitmqConfig) -> None:
        super().__init__(
            concurrency=config.concurrency,
            shutdown_grace=config.shutdown_grace,
            retry_policy=config.retry_policy(),
        )
        self.connection = connection
        self.config = config
        self.link = RabbitmqConnection(config, name="nestq-worker")
        """The worker's own connection: consuming, and publishing retries and dead letters (closed after serve)."""
        self._buffer: deque[Delivery[Message]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        """What a receive with an empty buffer awaits: one future the consumer or stopping resolves (no tasks)."""
        self.stopping = _Stopping(self._wake)
        self._channel: AbstractChannel | None = None
        self._amqp: AmqpChannel | None = None
        """aiormq's channel under ``_channel`` the consumers are on (a new one after a reconnection)."""
        self._consumers: dict[str, str] = {}
        self._unsettled: dict[AmqpChannel, _Unsettled] = {}
        self._finished: dict[AmqpChannel, set[int]] = {}
        """Tags :meth:`ack` took, by channel, for the acker task to write (several runners' successes in one frame)."""
        self._acker: asyncio.Task[None] | None = None
        self._recounting: set[asyncio.Task[None]] = set()
        connection.holders.append(self._holding)

    def _holding(self, queue: str) -> int:
        """Jobs of ``queue`` this worker holds unacked: buffered, running, or settling."""
        held = self.held().get(queue, [])
        return len(held) + sum(1 for d in self._buffer if d.queue == queue)

    async def configure(self, container: Container) -> None:
        """Declare the topology of every routed queue at boot: a queue with other arguments fails the boot here."""
        for queue in self.routes(container):
            await self.link.declare(queue)

    # ------------------------------------------------------------------------------------------------ receiving

    async def _consume(self, queues: Sequence[str]) -> None:
        if self._channel is None or self._channel.is_closed:
            connection = await self.link.connection()
            self._channel = await connection.channel(publisher_confirms=False)
            # Per consumer: quorum queues refuse a channel-wide (global) prefetch. The robust channel sets it again
            # on the channel it opens after a reconnection.
            await self._channel.set_qos(prefetch_count=self.config.prefetch or self.concurrency)
            self._amqp = None
        if self._amqp is None or self._amqp.is_closed:
            # Consumers live on aiormq's channel, so after a reconnection they are started again here, on the new one.
            self._amqp = await self._channel.get_underlay_channel()
            self._consumers.clear()
            for channel in [c for c in self._unsettled if c.is_closed]:
                del self._unsettled[channel]  # the broker requeued what that channel held
            self._unsettled[self._amqp] = _Unsettled()
        amqp = self._amqp
        for queue in queues:
            if queue in self._consumers:
                continue
            await self.link.declare(queue)
            name = self.link.names.work(queue)
            await self._channel.declare_queue(name, durable=True, arguments=self.link.work_arguments())

            async def on_message(message: Message, queue: str = queue) -> None:
                self._arrived_message(queue, message)

            ok = await amqp.basic_consume(name, on_message, no_ack=False)
            assert ok.consumer_tag is not None
            self._consumers[queue] = ok.consumer_tag

    def _arrived_message(self, queue: str, message: Message) -> None:
        unsettled = self._unsettled.get(message.channel)
        if unsettled is None:
            return  # from a channel given up already: it is closed, the broker requeues the message
        unsettled.tags[_tag(message)] = None
        delivery: Any = message.delivery
        if delivery.redelivered:
            # Requeued by the broker because a connection that held it closed: that attempt is lost, count it.
            task = asyncio.get_running_loop().create_task(self._count_lost_attempt(queue, message))
            self._recounting.add(task)
            task.add_done_callback(self._recounting.discard)
            return
        attempt = attempts_of(message) + 1
        self._buffer.append(Delivery(queue, message.body, attempt, message.header.properties.message_id, message))
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[Message]]:
        """What the consumers buffered (at most ``limit``), waiting up to ``wait`` seconds for the first."""
        await self._consume(queues)
        if not self._buffer and not self.stopping.is_set():
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(wait, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        batch: list[Delivery[Message]] = []
        while self._buffer and len(batch) < limit and not self.stopping.is_set():
            delivery = self._buffer.popleft()
            if not _stale(delivery.handle):  # from a channel lost since: the broker redelivers it
                batch.append(delivery)
        return batch

    # ------------------------------------------------------------------------------------------------ settling

    async def _ack_one(self, message: Message) -> None:
        """Ack one message on its own, leaving the unsettled tags first so no multiple ack covers it meanwhile."""
        unsettled = self._unsettled.get(message.channel)
        if unsettled is not None:
            unsettled.tags.pop(_tag(message), None)
        await message.channel.basic_ack(_tag(message))

    async def _move(self, delivery: Delivery[Message], *, attempts: int, error: str | None, delay: float = 0.0,
                    dead: bool = False) -> None:
        """Publish the job again (to its queue, a delay queue or its dead letters) with confirms, then ack it."""
        message = delivery.handle
        if _stale(message):
            return  # the broker requeued it when its channel closed; it comes back redelivered and is counted
        headers: dict[str, Any] = {ATTEMPTS_HEADER: attempts}
        if error is not None:
            headers[ERROR_HEADER] = error
        properties = message.header.properties
        if dead:
            await self.link.publish_dead(delivery.queue, message.body, headers, properties.message_id)
        else:
            await self.link.publish(delivery.queue, message.body, delay=delay, priority=properties.priority or 0,
                                    headers=headers, message_id=properties.message_id)
        if not _stale(message):
            await self._ack_one(message)

    async def ack(self, deliveries: Sequence[Delivery[Message]]) -> None:
        """Hand the messages to the acker task, which writes the acks of one event-loop turn together.

        Returning before the frame is written keeps at-least-once: a worker killed in between has its messages
        requeued by the broker and runs them again, and serve waits for the acker before closing the channel.
        """
        for delivery in deliveries:
            message = delivery.handle
            if not _stale(message):  # acks of a lost channel are moot: the broker requeued its messages
                self._finished.setdefault(message.channel, set()).add(_tag(message))
        if self._acker is None and self._finished:
            # Started now, run after the runners of this turn have recorded their successes too.
            self._acker = asyncio.get_running_loop().create_task(self._write_acks(), name="nestq-rabbitmq-acks")

    async def _write_acks(self) -> None:
        try:
            while self._finished:
                finished, self._finished = self._finished, {}
                for channel, tags in finished.items():
                    await self._ack_tags(channel, tags)
        finally:
            self._acker = None

    async def _ack_tags(self, channel: AmqpChannel, tags: set[int]) -> None:
        """One multiple ack for the oldest run of the channel's unsettled tags, then the others one by one."""
        unsettled = self._unsettled.get(channel)
        upto, rest = unsettled.split(tags) if unsettled is not None else (None, sorted(tags))
        try:
            # Not waiting for each frame to drain: frames go out in order, and an ack has no reply to wait for.
            if upto is not None:
                await channel.basic_ack(upto, multiple=True, wait=False)
            for tag in rest:
                await channel.basic_ack(tag, wait=False)
        except Exception as exc:
            if channel.is_closed:  # closed under the write: the broker requeued what it held (they come back)
                log.debug("acks on a closed channel dropped: %s", describe_error(exc))
            else:  # not seen: basic.ack fails only on a closed channel; those stay held until the channel closes
                log.warning("acking %d job(s) failed: %s", len(tags), describe_error(exc))

    async def retry(self, delivery: Delivery[Message], delay: float, error: str) -> None:
        """Through the delay queue for ``delay`` (TTL, then dead-lettered back into the work queue)."""
        await self._move(delivery, attempts=delivery.attempt, error=error, delay=delay)

    async def dead_letter(self, delivery: Delivery[Message], error: str) -> None:
        """Into ``<prefix>.dead.<queue>`` with the error and the attempts in headers."""
        await self._move(delivery, attempts=delivery.attempt, error=error, dead=True)

    async def give_back(self, deliveries: Sequence[Delivery[Message]]) -> None:
        """Published again unchanged (its attempt header as it was: the attempt is refunded), then acked.

        Not ``basic.nack(requeue)``: that marks the message redelivered, which this driver counts as a lost attempt.
        """
        for delivery in deliveries:
            message = delivery.handle
            error = _headers(message).get(ERROR_HEADER)
            await self._move(delivery, attempts=attempts_of(message), error=error if isinstance(error, str) else None)

    async def _count_lost_attempt(self, queue: str, message: Message) -> None:
        attempts = attempts_of(message) + 1
        error = (f"the worker's connection closed during attempt {attempts} (worker killed, or connection lost); "
                 "the broker delivered the job again")
        message_id = message.header.properties.message_id
        delivery = Delivery(queue, message.body, attempts, message_id, message, error)
        try:
            if attempts >= self.retry_policy.max_attempts:
                log.error("job %s on %s dead-lettered: %s", message_id, queue, error)
                await self._move(delivery, attempts=attempts, error=error, dead=True)
            else:
                log.warning("job %s on %s: %s", message_id, queue, error)
                await self._move(delivery, attempts=attempts, error=error)
        except Exception as exc:
            log.warning("could not count the lost attempt of job %s on %s (%s); requeueing it", message_id,
                        queue, describe_error(exc))
            if not _stale(message):
                try:
                    unsettled = self._unsettled.get(message.channel)
                    if unsettled is not None:
                        unsettled.tags.pop(_tag(message), None)
                    await message.channel.basic_nack(_tag(message), requeue=True)
                except Exception as again:
                    log.warning("requeueing job %s failed too: %s", message_id, describe_error(again))

    # ------------------------------------------------------------------------------------------------ stopping

    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """The toolkit's loop; afterwards stop consuming and give back what was buffered but never started."""
        try:
            await super().serve(container, cancel)
        finally:
            await self._stop_consuming()

    async def _stop_consuming(self) -> None:
        if self._acker is not None:
            await asyncio.gather(self._acker, return_exceptions=True)  # the last successes, before the channel closes
        amqp = self._amqp
        for tag in list(self._consumers.values()):
            try:
                if amqp is not None and not amqp.is_closed:
                    await amqp.basic_cancel(tag)
            except Exception as exc:
                log.debug("cancelling consumer %s failed: %s", tag, describe_error(exc))
        self._consumers.clear()
        if self._recounting:
            await asyncio.gather(*self._recounting, return_exceptions=True)
        left = [d for d in self._buffer if not _stale(d.handle)]
        self._buffer.clear()
        by_queue: dict[str, list[Delivery[Message]]] = {}
        for delivery in left:
            by_queue.setdefault(delivery.queue, []).append(delivery)
        for deliveries in by_queue.values():
            try:
                await self.give_back(deliveries)
            except Exception as exc:
                log.warning("giving back %d buffered job(s) failed (the broker requeues them when the channel "
                            "closes): %s", len(deliveries), describe_error(exc))
        channel, self._channel, self._amqp = self._channel, None, None
        self._unsettled.clear()
        if channel is not None and not channel.is_closed:
            await channel.close()
        await self.link.aclose()

    async def close(self) -> None:
        """Close the worker's connection if serving left it open (or the app closes without serving)."""
        await self._stop_consuming()
