"""An in-process storage for the filled template: named FIFO queues of envelope bytes, shared by the process.

Copied into the rendered package as ``store.py`` by the fill test. Every app of the process that names the same
URL shares the same queues, so a producer-only app and a worker app meet, as they would on a real broker. It is
ephemeral on purpose: jobs live as long as the process.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field

__all__ = ["DeadLetter", "Message", "Queues", "queues_for"]

_ids = itertools.count(1)


@dataclass(slots=True)
class Message:
    """One stored job: the envelope bytes as pushed, its id, and the attempt its next delivery will be."""

    data: bytes
    job_id: str
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job that failed for good, with its last error."""

    data: bytes
    error: str
    attempts: int
    job_id: str


@dataclass(slots=True)
class _Queue:
    ready: deque[Message] = field(default_factory=deque)
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    running: int = 0
    delayed: int = 0
    dead: list[DeadLetter] = field(default_factory=list)


class Queues:
    """Named queues: push, take (waiting a bounded time), ack, retry later, give back, dead-letter, inspect."""

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}

    def _q(self, name: str) -> _Queue:
        return self._queues.setdefault(name, _Queue())

    def push(self, queue: str, data: bytes) -> str:
        """Append ``data`` to ``queue``; return the new job's id."""
        message = Message(data, f"fill-{next(_ids)}")
        self._q(queue).ready.append(message)
        self._wake(queue)
        return message.job_id

    def _wake(self, queue: str) -> None:
        waiters = self._q(queue).waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_result(None)
                return

    async def take(self, queue: str, max_wait: float) -> Message | None:
        """The oldest ready job of ``queue``, waiting at most ``max_wait`` seconds for one; it counts as running."""
        q = self._q(queue)
        if not q.ready:
            waiter = asyncio.get_running_loop().create_future()
            q.waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max_wait)
            except TimeoutError:
                pass
            finally:
                if waiter in q.waiters:
                    q.waiters.remove(waiter)
        if not q.ready:
            return None
        q.running += 1
        message = q.ready.popleft()
        if q.ready:
            self._wake(queue)  # more work left: hand it to the next idle taker at once
        return message

    def ack(self, queue: str) -> None:
        """A running job finished."""
        self._q(queue).running -= 1

    def retry(self, queue: str, message: Message, delay: float) -> None:
        """A running job failed and gets another attempt after ``delay`` seconds (at the tail of the queue)."""
        q = self._q(queue)
        q.running -= 1
        q.delayed += 1
        message.attempt += 1

        def due() -> None:
            q.delayed -= 1
            q.ready.append(message)
            self._wake(queue)

        asyncio.get_running_loop().call_later(delay, due)

    def give_back(self, queue: str, message: Message) -> None:
        """A running job was interrupted: back to the head of the queue, the attempt not counted."""
        q = self._q(queue)
        q.running -= 1
        q.ready.appendleft(message)
        self._wake(queue)

    def dead_letter(self, queue: str, message: Message, error: str) -> None:
        """A running job failed for good: keep it as a dead letter."""
        q = self._q(queue)
        q.running -= 1
        q.dead.append(DeadLetter(message.data, error, message.attempt, message.job_id))

    def depth(self, queue: str) -> int:
        """Jobs accepted and not finished: ready, waiting out a retry delay, or running."""
        q = self._q(queue)
        return len(q.ready) + q.delayed + q.running

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        """The dead letters of ``queue``, oldest first."""
        return list(self._q(queue).dead)


_BY_URL: dict[str, Queues] = {}


def queues_for(url: str) -> Queues:
    """The process-wide queues behind ``url`` (created on first use)."""
    return _BY_URL.setdefault(url, Queues())
