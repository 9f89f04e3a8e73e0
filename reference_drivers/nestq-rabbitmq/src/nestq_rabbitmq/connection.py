"""The producer side: :class:`RabbitmqConnection`, the driver's ``JobProducer``, and the topology it declares.

Per nestq queue ``q`` (names from :class:`Names`): a durable work queue ``<prefix>.q.q`` (classic with
``x-max-priority``, or quorum), a durable dead-letter queue ``<prefix>.dead.q``, and delay queues
``<prefix>.delay.<ms>.q`` (classic, durable, ``x-message-ttl=<ms>``, dead-lettering into the work queue through
the default exchange, deleted by the broker after ``x-expires`` of disuse). Every message is persistent and
published with publisher confirms: a push returns once the broker has the job.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.robust_connection import RobustConnection
from nestq_spec import BootError, ConfigError, JobProducer, JSONValue, encode_job, redact, validate_queue_name

from .config import RabbitmqConfig

__all__ = [
    "ATTEMPTS_HEADER",
    "ERROR_HEADER",
    "BackoffConnection",
    "Names",
    "RabbitmqConnection",
    "RabbitmqUnavailableError",
    "TopologyError",
]

ATTEMPTS_HEADER = "x-nestq-attempts"
"""Attempts already made (failed, or cut off by a lost connection) before this message was published."""
ERROR_HEADER = "x-nestq-error"
"""The last attempt's error text."""
JOB_ID_HEADER = "x-nestq-job-id"
PUBLISH_WINDOW = 500
"""Publishes of one ``push_many_json`` awaiting their confirms at once."""
DECLARED_NAMES: set[str] = set()
"""Every broker queue this process declared (the harness deletes its session's when it has no virtual host)."""
DELAY_EXPIRES_MARGIN_MS = 600_000
"""A delay queue is deleted by the broker this long after its TTL once nobody declared it again."""


_LINK_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aio_pika.exceptions.ChannelInvalidStateError,
    ConnectionError,
    asyncio.IncompleteReadError,
    RuntimeError,  # aio-pika: "<Connection ...> closed" while the robust connection is between two links
)


class TopologyError(ConfigError):
    """A queue exists with other arguments than the driver declares (RabbitMQ's ``PRECONDITION_FAILED``)."""


class RabbitmqUnavailableError(BootError, ConnectionError):
    """The broker cannot be reached, refused the credentials, or did not confirm a push in time."""


class Names:
    """Queue names on the broker, collision-free: the kind is the segment right after the prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def work(self, queue: str) -> str:
        """The work queue of nestq queue ``queue``."""
        return f"{self.prefix}.q.{queue}"

    def dead(self, queue: str) -> str:
        """The dead-letter queue of ``queue``."""
        return f"{self.prefix}.dead.{queue}"

    def delay(self, queue: str, ms: int) -> str:
        """The delay queue holding ``queue``'s messages for ``ms`` milliseconds."""
        return f"{self.prefix}.delay.{ms}.{queue}"

    def queue_of(self, name: str) -> tuple[str, str] | None:
        """``(kind, queue)`` of a broker queue name this driver declared, or None."""
        head = f"{self.prefix}."
        if not name.startswith(head):
            return None
        kind, _, rest = name[len(head):].partition(".")
        if kind == "delay":
            _, _, rest = rest.partition(".")
        return (kind, rest) if kind in ("q", "dead", "delay") and rest else None


def delay_bucket(delay: float) -> int:
    """Milliseconds a delay waits: rounded UP to two significant digits, so few delay queues serve any delays."""
    ms = max(1, math.ceil(delay * 1000))
    if ms < 100:
        return ms
    step = 10 ** (len(str(ms)) - 2)
    return int(math.ceil(ms / step) * step)


def describe_amqp_error(exc: BaseException) -> str:
    """The broker's reply text (``PRECONDITION_FAILED - inequivalent arg 'x-max-priority' ...``) or the error."""
    args = getattr(exc, "args", ())
    for arg in args:
        text = getattr(arg, "reply_text", None)
        if text:
            return str(text)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class BackoffConnection(RobustConnection):
    """aio-pika's robust connection, with pauses between reconnection attempts that grow while the broker is away.

    aio-pika waits a fixed ``reconnect_interval`` between attempts, so a broker that stays down for minutes gets
    an attempt from every client every interval, and all of them at once when it comes back. Here the pause
    before the next attempt is about as long as the outage has lasted so far (so the attempts come at roughly
    1, 2, 4, 8... times ``reconnect_interval``), at least ``reconnect_interval`` and at most ``reconnect_cap``,
    scaled by a jitter factor drawn once per outage in [0.5, 1] so that clients cut off together spread out. The
    first attempt after a loss comes after ``reconnect_interval``, and the schedule starts again once a link is
    up.

    The pause is derived from the time of the loss rather than from a count of attempts because aio-pika reads
    ``reconnect_interval`` in several places per attempt (its log lines and its sleep) and offers no hook per
    attempt.
    """

    reconnect_cap: float = 30.0
    """Longest pause between two attempts, in seconds (set by :meth:`RabbitmqConnection.connect`)."""

    _base_interval: float = 1.0
    _lost_at: float | None = None
    _jitter: float = 1.0

    @property  # aio-pika assigns it as a plain attribute in __init__: the setter takes that as the base
    def reconnect_interval(self) -> float:
        """The pause before the next reconnection attempt (the base pause while the link is up)."""
        if self._lost_at is None:
            return self._base_interval
        down_for = time.monotonic() - self._lost_at
        return self._jitter * min(self.reconnect_cap, max(self._base_interval, down_for))

    @reconnect_interval.setter
    def reconnect_interval(self, value: float) -> None:
        self._base_interval = float(value)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if self._lost_at is None and not self._close_called:
            self._lost_at = time.monotonic()
            self._jitter = random.uniform(0.5, 1.0)  # spreads clients cut off together; not a secret
        await super()._on_connection_close(closing)

    async def _on_connected(self) -> None:
        await super()._on_connected()
        self._lost_at = None


class RabbitmqConnection(JobProducer):
    """Pushes envelopes to RabbitMQ with publisher confirms; the container closes it when the app shuts down.

    One robust connection (it reconnects by itself after a loss, with growing pauses: :class:`BackoffConnection`), one
    confirming channel for publishing, one channel for declarations (a refused declaration closes its channel).
    Each worker opens one of its own (``nestq-worker`` on the broker), so consuming and publishing keep separate
    connections and a worker's connection closes when it stops serving.
    """

    def __init__(self, config: RabbitmqConfig, *, name: str = "nestq-producer") -> None:
        self.config = config
        self.name = name
        self.names = Names(config.prefix)
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._declarer: AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self._channel_lock = asyncio.Lock()
        self._declared: dict[str, float] = {}
        self.holders: list[Callable[[str], int]] = []
        """Callbacks of this process's workers: how many jobs of a queue they hold unacked (for depths)."""

    # ------------------------------------------------------------------------------------------------ connecting

    async def connection(self) -> AbstractRobustConnection:
        """The robust connection, opened on first use (inside the event loop that uses it)."""
        if self._connection is None:
            async with self._lock:
                if self._connection is None:
                    self._connection = await self.connect(self.name)
        return self._connection

    async def connect(self, name: str) -> AbstractRobustConnection:
        """Open a robust connection; a bad URL, refused credentials or no broker raise one clear error."""
        where = redact(self.config.url, as_repr=False)
        try:
            connection = await asyncio.wait_for(
                aio_pika.connect_robust(
                    self.config.url,
                    reconnect_interval=self.config.reconnect_interval,
                    client_properties={"connection_name": name},
                    connection_class=BackoffConnection,
                ),
                self.config.connect_timeout,
            )
        except TimeoutError:
            raise RabbitmqUnavailableError(
                f"RabbitMQ at {where} did not answer within {self.config.connect_timeout:g}s "
                "(NESTQ_RABBITMQ__CONNECT_TIMEOUT)"
            ) from None
        except aiormq.exceptions.ProbableAuthenticationError:
            raise RabbitmqUnavailableError(
                f"RabbitMQ at {where} refused the user name or password (or the user may not open that virtual "
                "host); check NESTQ_RABBITMQ__URL"
            ) from None
        except (aiormq.exceptions.AMQPConnectionError, OSError) as exc:
            raise RabbitmqUnavailableError(
                f"cannot connect to RabbitMQ at {where}: {redact(describe_amqp_error(exc), as_repr=False)}; check "
                "NESTQ_RABBITMQ__URL and that the broker runs"
            ) from None
        except ValueError as exc:
            raise ConfigError(
                f"NESTQ_RABBITMQ__URL={where} is not a valid AMQP URL: {redact(str(exc), as_repr=False)}"
            ) from None
        if isinstance(connection, BackoffConnection):
            connection.reconnect_cap = max(self.config.reconnect_cap, self.config.reconnect_interval)
        return connection

    async def publisher(self) -> AbstractChannel:
        """The channel pushes go through, with publisher confirms."""
        if self._publisher is None or self._publisher.is_closed:
            async with self._channel_lock:  # concurrent first pushes share one channel
                if self._publisher is None or self._publisher.is_closed:
                    connection = await self.connection()
                    self._publisher = await connection.channel(publisher_confirms=True)
        return self._publisher

    async def aclose(self) -> None:
        """Close the connection (conformance rule LIF-009 checks that nothing stays open)."""
        connection, self._connection = self._connection, None
        self._publisher = self._declarer = None
        self._declared.clear()
        if connection is not None:
            await connection.close()

    # ------------------------------------------------------------------------------------------------ topology

    def work_arguments(self) -> dict[str, Any]:
        """The arguments of every work queue (compared by the broker on each declaration)."""
        if self.config.queue_type == "quorum":
            return {"x-queue-type": "quorum"}
        arguments: dict[str, Any] = {"x-queue-type": "classic"}
        if self.config.max_priority:
            arguments["x-max-priority"] = self.config.max_priority
        return arguments

    async def _declare(self, name: str, arguments: Mapping[str, Any]) -> int:
        async with self._channel_lock:
            if self._declarer is None or self._declarer.is_closed:
                self._declarer = await (await self.connection()).channel(publisher_confirms=False)
        try:
            declared = await self._declarer.declare_queue(name, durable=True, arguments=dict(arguments))
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            self._declarer = None  # the broker closed that channel
            raise TopologyError(
                f"RabbitMQ queue {name!r} already exists with other arguments than this driver declares "
                f"{dict(arguments)}: {describe_amqp_error(exc)}. Delete the queue (after draining it) or set "
                "NESTQ_RABBITMQ__QUEUE_TYPE / NESTQ_RABBITMQ__MAX_PRIORITY to what it was declared with"
            ) from None
        DECLARED_NAMES.add(name)
        count = declared.declaration_result.message_count
        return int(count or 0)

    async def declare(self, queue: str) -> None:
        """Declare ``queue``'s work and dead-letter queues (idempotent; once per connection)."""
        if queue in self._declared:
            return
        validate_queue_name(queue)
        await self._declare(self.names.work(queue), self.work_arguments())
        dead = {"x-queue-type": self.config.queue_type}
        await self._declare(self.names.dead(queue), dead)
        self._declared[queue] = time.monotonic()

    def delay_queues(self, queue: str) -> list[str]:
        """The delay queues of ``queue`` this process declared (the broker may have more, declared elsewhere)."""
        head = f"{self.names.prefix}.delay."
        return [n for n in self._declared if n.startswith(head) and self.names.queue_of(n) == ("delay", queue)]

    async def count(self, name: str) -> int | None:
        """Ready messages of broker queue ``name`` (passive declare), or None when it does not exist."""
        connection = await self.connection()
        channel = await connection.channel(publisher_confirms=False)
        try:
            declared = await channel.declare_queue(name, passive=True)
            return int(declared.declaration_result.message_count or 0)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        finally:
            if not channel.is_closed:
                await channel.close()

    async def declare_delay(self, queue: str, ms: int) -> str:
        """Declare the delay queue of ``queue`` for ``ms`` milliseconds, again before its ``x-expires`` could pass."""
        name = self.names.delay(queue, ms)
        seen = self._declared.get(name)
        if seen is not None and time.monotonic() - seen < DELAY_EXPIRES_MARGIN_MS / 2000:
            return name
        await self._declare(name, {
            "x-queue-type": "classic",
            "x-message-ttl": ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.names.work(queue),
            "x-expires": ms + DELAY_EXPIRES_MARGIN_MS,
        })
        self._declared[name] = time.monotonic()
        return name

    # ------------------------------------------------------------------------------------------------ pushing

    async def publish(
        self,
        queue: str,
        data: bytes,
        *,
        delay: float = 0.0,
        priority: int = 0,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> str:
        """Publish ``data`` for ``queue`` (after ``delay`` seconds) and wait for the broker's confirm.

        Waits at most ``push_timeout`` seconds, reconnection included, then raises
        :class:`RabbitmqUnavailableError`: a push during an outage never hangs.
        """
        if not 0 <= priority <= 255:
            raise ValueError(f"priority must be 0..255, found {priority!r}")
        if priority and (self.config.queue_type != "classic" or not self.config.max_priority):
            raise ValueError(
                f"priority={priority} but this driver's queues have no priorities: set NESTQ_RABBITMQ__MAX_PRIORITY "
                "(classic queues) before the queues are first declared"
            )
        message_id = message_id or uuid.uuid4().hex
        deadline = time.monotonic() + self.config.push_timeout
        last = "no confirm"
        while (left := deadline - time.monotonic()) > 0:
            try:
                return await asyncio.wait_for(
                    self._publish(queue, data, delay, priority, dict(headers or {}), message_id), left
                )
            except TimeoutError:
                break
            except _LINK_ERRORS as exc:
                # The connection went down under this publish: the robust connection reconnects by itself; try
                # again on it until the deadline (the broker may hold the first copy: at-least-once).
                last = describe_amqp_error(exc)
                await asyncio.sleep(min(self.config.reconnect_interval, max(0.0, deadline - time.monotonic())))
        raise RabbitmqUnavailableError(
            f"the push to queue {queue!r} was not confirmed by RabbitMQ at "
            f"{redact(self.config.url, as_repr=False)} within {self.config.push_timeout:g}s "
            f"(NESTQ_RABBITMQ__PUSH_TIMEOUT; last error: {redact(last, as_repr=False)}); the broker is unreachable "
            "or blocked. The job may or may not be stored: push again to be sure (a duplicate is possible)"
        )

    async def _publish(
        self, queue: str, data: bytes, delay: float, priority: int, headers: dict[str, Any], message_id: str
    ) -> str:
        await self.declare(queue)
        target = self.names.work(queue)
        if delay > 0:
            target = await self.declare_delay(queue, delay_bucket(delay))
        headers.setdefault(ATTEMPTS_HEADER, 0)
        message = aio_pika.Message(
            data,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=min(priority, self.config.max_priority) if self.config.queue_type == "classic" else None,
            message_id=message_id,
            headers=headers,
            content_type="application/json",
        )
        channel = await self.publisher()
        await channel.default_exchange.publish(message, routing_key=target, mandatory=False)
        return message_id

    async def publish_dead(
        self, queue: str, data: bytes, headers: Mapping[str, Any], message_id: str | None
    ) -> None:
        """Publish a dead letter of ``queue`` (its error and attempts in ``headers``) and wait for the confirm."""
        try:
            await asyncio.wait_for(self._publish_dead(queue, data, dict(headers), message_id), self.config.push_timeout)
        except TimeoutError:
            raise RabbitmqUnavailableError(
                f"a dead letter of queue {queue!r} was not confirmed within {self.config.push_timeout:g}s"
            ) from None

    async def _publish_dead(self, queue: str, data: bytes, headers: dict[str, Any], message_id: str | None) -> None:
        await self.declare(queue)
        headers["x-nestq-queue"] = queue
        headers["x-nestq-dead-at"] = time.time()
        message = aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message_id,
                                   headers=headers, content_type="application/json")
        channel = await self.publisher()
        await channel.default_exchange.publish(message, routing_key=self.names.dead(queue))

    async def push_json(
        self, queue: str, payload: JSONValue, *, delay: float = 0.0, priority: int = 0
    ) -> None:
        """Wrap ``payload`` once and push it to ``queue``; return once the broker confirmed it.

        ``delay``: seconds before it is delivered (through a delay queue). ``priority``: 0 (default) to
        ``max_priority``, higher first (classic queues).
        """
        await self.enqueue(queue, payload, delay=delay, priority=priority)

    async def enqueue(self, queue: str, payload: JSONValue, *, delay: float = 0.0, priority: int = 0) -> str:
        """Like :meth:`push_json`, returning the job's id (the AMQP ``message_id``)."""
        return await self.publish(queue, encode_job(queue, payload), delay=delay, priority=priority)

    async def push_many_json(
        self, queue: str, payloads: Sequence[JSONValue], *, delay: float = 0.0, priority: int = 0
    ) -> list[str]:
        """Push many payloads, their confirms awaited together; return their ids in order.

        Every payload is encoded before anything is published. When one publish fails the call raises after all
        were tried; the others may be stored.
        """
        items = [encode_job(queue, p) for p in payloads]
        await self.declare(queue)
        ids: list[str] = []
        for start in range(0, len(items), PUBLISH_WINDOW):
            window = items[start:start + PUBLISH_WINDOW]
            ids.extend(await asyncio.gather(*(self.publish(queue, d, delay=delay, priority=priority) for d in window)))
        return ids

    async def push_raw(self, queue: str, data: bytes) -> None:
        """Store ``data`` (bytes, unchanged) on ``queue``: for tests and tools that plant messages."""
        validate_queue_name(queue)
        await self.publish(queue, data)
