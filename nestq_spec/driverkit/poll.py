"""Receiving from a storage without a blocking pop: poll with a bounded interval, woken early by a notification."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

__all__ = ["Wakeup", "poll_receive"]

T = TypeVar("T")


class Wakeup:
    """A notification an idle poller waits on: call :meth:`notify` when the storage says work may be ready.

    For example from a PostgreSQL ``LISTEN`` callback, or by the producer of the same process. A notification is a
    hint: it makes the next poll happen now, it never carries the job. :meth:`notify_threadsafe` is for callbacks
    that run on another thread.
    """

    __slots__ = ("_event", "_loop")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def notify(self) -> None:
        """Wake the poller now (from the event loop's thread)."""
        self._event.set()

    def notify_threadsafe(self) -> None:
        """Wake the poller from another thread; a no-op before the poller first waited."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._event.set)

    async def wait(self, within: float, stop: asyncio.Event | None = None) -> bool:
        """Wait up to ``within`` seconds for a notification or ``stop``; return whether a notification came."""
        self._loop = asyncio.get_running_loop()
        if not self._event.is_set() and within > 0 and not (stop is not None and stop.is_set()):
            waits: list[asyncio.Future[object]] = [asyncio.ensure_future(self._event.wait())]
            if stop is not None:
                waits.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
        notified = self._event.is_set()
        self._event.clear()
        return notified


async def poll_receive(
    fetch: Callable[[int], Awaitable[Sequence[T]]],
    limit: int,
    wait: float,
    *,
    interval: float,
    wakeup: Wakeup | None = None,
    stop: asyncio.Event | None = None,
) -> Sequence[T]:
    """Call ``fetch(limit)`` until it returns something or ``wait`` seconds pass; return what it returned.

    Between empty fetches it sleeps ``interval`` seconds at most, less when ``wakeup`` is notified, and returns at once
    (empty) when ``stop`` is set, so a worker that is shutting down is never stuck in a poll. ``fetch`` must claim
    atomically (an ``UPDATE ... RETURNING``, a Lua script): it is a receive, not a peek.
    """
    if interval <= 0:
        raise ValueError(f"poll interval must be > 0 seconds, found {interval!r}")
    deadline = time.monotonic() + max(0.0, wait)
    sleeper = wakeup or Wakeup()
    while True:
        found = await fetch(limit)
        if found:
            return found
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (stop is not None and stop.is_set()):
            return ()
        await sleeper.wait(min(interval, remaining), stop)
        if stop is not None and stop.is_set():
            return ()
