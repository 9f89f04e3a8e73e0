"""The operator API: depths and dead letters (list, show, redrive, purge) of the driver's queues.

Dead letters are read without removing them: ``basic.get`` without ack, then the channel is closed so that the
broker puts them back in order. Redrive moves them to the work queue (attempts reset to 0) with confirms before
acking each one; purge removes them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

from aio_pika.abc import AbstractIncomingMessage
from nestq_spec import redact

from .connection import ATTEMPTS_HEADER, ERROR_HEADER, RabbitmqConnection, RabbitmqUnavailableError

__all__ = ["DeadLetter", "QueueDepth", "RabbitmqAdmin"]


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """How many jobs of one queue are where."""

    queue: str
    ready: int
    """In the work queue, waiting for a consumer."""
    delayed: int
    """In the delay queues this process knows (retries waiting out their backoff, delayed pushes)."""
    held: int
    """Delivered to workers and not settled yet: this process's, or every process's with ``management_url``."""
    dead: int
    """In the dead-letter queue."""

    @property
    def pending(self) -> int:
        """Jobs that will still run: ready + delayed + held."""
        return self.ready + self.delayed + self.held


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter: the stored envelope bytes, the last error, the attempts made, the job id."""

    queue: str
    data: bytes
    error: str
    attempts: int
    job_id: str | None
    dead_at: float | None


def _letter(queue: str, message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    error = headers.get(ERROR_HEADER)
    attempts = headers.get(ATTEMPTS_HEADER)
    dead_at = headers.get("x-nestq-dead-at")
    return DeadLetter(
        queue,
        message.body,
        error if isinstance(error, str) else "",
        attempts if isinstance(attempts, int) else 0,
        message.message_id,
        float(dead_at) if isinstance(dead_at, int | float) else None,
    )


class RabbitmqAdmin:
    """Inspect and repair the driver's queues through a :class:`RabbitmqConnection`."""

    def __init__(self, connection: RabbitmqConnection) -> None:
        self.connection = connection

    async def depth(self, queue: str) -> QueueDepth:
        """Ready, delayed, held and dead counts of ``queue``.

        With the ``management_url`` setting the counts come from the management API and cover every process (held:
        all consumers' unacked deliveries; delayed: every delay queue of ``queue``), as of the broker's last
        statistics sample. Without it, AMQP: ready and dead from the broker, delayed from the delay queues this
        process declared, held by this process's workers.
        """
        if self.connection.config.management_url:
            return await asyncio.to_thread(self._depth_from_management, queue)
        names = self.connection.names
        ready = await self.connection.count(names.work(queue)) or 0
        dead = await self.connection.count(names.dead(queue)) or 0
        delayed = 0
        for name in self.connection.delay_queues(queue):
            delayed += await self.connection.count(name) or 0
        held = sum(holder(queue) for holder in self.connection.holders)
        return QueueDepth(queue, ready, delayed, held, dead)

    def _depth_from_management(self, queue: str) -> QueueDepth:
        names = self.connection.names
        vhost = unquote(urlsplit(self.connection.config.url).path[1:]) or "/"
        pattern = rf"^{re.escape(names.prefix)}\.(q|dead|delay\.[0-9]+)\.{re.escape(queue)}$"
        query = {"page": "1", "page_size": "500", "name": pattern, "use_regex": "true",
                 "columns": "name,messages,messages_ready,messages_unacknowledged"}
        found = _management_get(self.connection.config.management_url, f"queues/{quote(vhost, safe='')}", query,
                                self.connection.config.connect_timeout)
        rows = {str(row.get("name")): row for row in found.get("items", [])}

        def count(name: str, field: str) -> int:
            value = rows.get(name, {}).get(field)  # absent before the queue's first statistics sample
            return value if isinstance(value, int) else 0

        delayed = sum(count(name, "messages") for name in rows if names.queue_of(name) == ("delay", queue))
        return QueueDepth(queue, count(names.work(queue), "messages_ready"), delayed,
                          count(names.work(queue), "messages_unacknowledged"), count(names.dead(queue), "messages"))

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters of ``queue``, oldest first, left in place."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, found {limit!r}")
        connection = await self.connection.connection()
        channel = await connection.channel(publisher_confirms=False)
        letters: list[DeadLetter] = []
        try:
            if await self.connection.count(self.connection.names.dead(queue)) is None:
                return []
            amqp_queue = await channel.get_queue(self.connection.names.dead(queue), ensure=False)
            while len(letters) < limit:
                message = await amqp_queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                letters.append(_letter(queue, message))
        finally:
            await channel.close()  # unacked gets go back to the queue, in their order
        return letters

    async def show(self, queue: str, job_id: str) -> DeadLetter | None:
        """The dead letter of ``queue`` with id ``job_id``, or None."""
        for letter in await self.dead_letters(queue, limit=1_000_000):
            if letter.job_id == job_id:
                return letter
        return None

    async def _take(self, queue: str, job_ids: Sequence[str] | None, redrive: bool) -> int:
        connection = await self.connection.connection()
        channel = await connection.channel(publisher_confirms=False)
        wanted = None if job_ids is None else set(job_ids)
        moved = 0
        try:
            if await self.connection.count(self.connection.names.dead(queue)) is None:
                return 0
            amqp_queue = await channel.get_queue(self.connection.names.dead(queue), ensure=False)
            while True:
                message = await amqp_queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                if wanted is not None and message.message_id not in wanted:
                    continue  # left unacked: back in place when the channel closes
                if redrive:
                    await self.connection.publish(queue, message.body, headers={ATTEMPTS_HEADER: 0},
                                                  message_id=message.message_id)
                await message.ack()
                moved += 1
        finally:
            await channel.close()
        return moved

    async def redrive(self, queue: str, job_ids: Sequence[str] | None = None) -> int:
        """Move dead letters of ``queue`` (those ids, or all) back to its work queue with attempts reset."""
        return await self._take(queue, job_ids, redrive=True)

    async def purge(self, queue: str, job_ids: Sequence[str] | None = None) -> int:
        """Delete dead letters of ``queue`` (those ids, or all); return how many."""
        return await self._take(queue, job_ids, redrive=False)



def _management_get(url: str, path: str, query: dict[str, str], timeout: float) -> dict[str, Any]:
    """GET ``<url>/api/<path>?<query>`` with the URL's credentials; the parsed JSON object."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path.rstrip("/"), "", ""))
    request = urllib.request.Request(f"{base}/api/{path}?{urlencode(query)}")
    if parts.username is not None:
        token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # http(s): checked at load
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RabbitmqUnavailableError(f"the management API at {redact(url, as_repr=False)} answered {exc.code} "
                                       f"{exc.reason} for /api/{path}") from None
    except (OSError, ValueError) as exc:
        raise RabbitmqUnavailableError(f"the management API at {redact(url, as_repr=False)} did not answer: "
                                       f"{type(exc).__name__}: {exc}") from None
    if not isinstance(body, dict):
        raise RabbitmqUnavailableError(f"the management API at {redact(url, as_repr=False)} sent {type(body).__name__}"
                                       f" for /api/{path}, expected an object")
    return body
