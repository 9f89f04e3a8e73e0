"""Leases: the settings checks that go with a visibility timeout, and the keeper that extends running jobs' leases."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Generic, TypeVar

from nestq_spec.errors import ConfigError

__all__ = ["LeaseKeeper", "check_grace", "check_heartbeat"]

log = logging.getLogger("nestq.driverkit")

T = TypeVar("T")


def check_heartbeat(heartbeat_interval: float, visibility_timeout: float, *, names: tuple[str, str] = (
        "heartbeat_interval", "visibility_timeout")) -> None:
    """Refuse a heartbeat that cannot keep a lease alive: it must be shorter than the visibility timeout.

    ``names`` are the settings (or environment variables) to name in the error. Half the timeout or less is the
    advice: one late heartbeat (a slow round trip, a busy event loop) then still lands before the lease expires.
    """
    if heartbeat_interval <= 0:
        raise ConfigError(f"{names[0]} must be > 0 seconds, found {heartbeat_interval!r}")
    if heartbeat_interval >= visibility_timeout:
        raise ConfigError(
            f"{names[0]}={heartbeat_interval} is not below {names[1]}={visibility_timeout}: leases of running jobs "
            "would expire between heartbeats and the jobs would be delivered twice; use at most half of it"
        )


def check_grace(shutdown_grace: float, shutdown_timeout: float, *, margin: float = 0.0, names: tuple[str, str] = (
        "shutdown_grace", "the app's shutdown_timeout")) -> None:
    """Refuse a shutdown grace the application would cut short: below the timeout, with ``margin`` to spare.

    ``Application.serve(shutdown_timeout=...)`` cancels a transport still running after that many seconds, so a
    longer grace would never be honoured and jobs would be interrupted without being given back. ``margin`` is
    the time the transport needs after its grace to give the rest back.
    """
    if shutdown_grace >= shutdown_timeout or shutdown_grace + margin > shutdown_timeout:
        room = f" plus {margin:g}s to give the rest back" if margin else ""
        raise ConfigError(
            f"{names[0]}={shutdown_grace}{room} is not below {names[1]}={shutdown_timeout}: the application "
            "would cancel the worker before its grace ends"
        )


class LeaseKeeper(Generic[T]):
    """Extends the leases of running jobs every ``interval`` seconds, per queue, until :meth:`stop`.

    ``running()`` returns what is held now, grouped by queue; ``extend(queue, items)`` extends their leases in one
    call. Queues are extended concurrently and independently: one queue whose call fails or hangs never delays or
    stops the heartbeats of another. An extension is never cancelled because it is slow (a cancelled write may or
    may not have reached the storage, and under load a late extension is still the one that keeps the lease): a
    queue whose previous extension is still in flight skips a beat instead of stacking another call. A job stops
    being extended as soon as ``running()`` no longer returns it, which is when its outcome is settled.
    """

    def __init__(
        self,
        interval: float,
        running: Callable[[], dict[str, list[T]]],
        extend: Callable[[str, Sequence[T]], Awaitable[None]],
    ) -> None:
        if interval <= 0:
            raise ConfigError(f"heartbeat interval must be > 0 seconds, found {interval!r}")
        self.interval = interval
        self._running = running
        self._extend = extend
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self.failures = 0
        """How many per-queue extensions failed so far (each is logged)."""
        self.skipped = 0
        """How many per-queue beats were skipped because that queue's previous extension was still in flight."""

    def start(self) -> None:
        """Start beating in a task of the running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._beat(), name="nestq-lease-keeper")

    async def stop(self) -> None:
        """Stop beating; extensions in flight get ``interval`` seconds to finish, then are cancelled."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=self.interval)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        pending = list(self._in_flight.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.interval)
            for extension in late:
                extension.cancel()  # the worker is stopping: its leases lapse anyway once it has gone
            await asyncio.gather(*pending, return_exceptions=True)
        self._in_flight.clear()

    async def beat_once(self) -> None:
        """Extend every held lease now, queue by queue, concurrently; wait up to ``interval`` for the calls.

        A call still running after that goes on in the background (the next beat of its queue is skipped until it
        ends), so one hanging queue cannot hold the other queues' beats back.
        """
        held = {queue: items for queue, items in self._running().items() if items}
        started = []
        for queue, items in held.items():
            if queue in self._in_flight:
                self.skipped += 1
                log.debug("lease extension on %s still in flight; skipping this beat", queue)
                continue
            extension = asyncio.create_task(self._extend_one(queue, list(items)), name=f"nestq-lease-{queue}")
            self._in_flight[queue] = extension
            extension.add_done_callback(functools.partial(self._finished, queue))
            started.append(extension)
        if started:
            await asyncio.wait(started, timeout=self.interval)

    def _finished(self, queue: str, extension: asyncio.Task[None]) -> None:
        if self._in_flight.get(queue) is extension:
            del self._in_flight[queue]

    async def _extend_one(self, queue: str, items: Collection[T]) -> None:
        try:
            await self._extend(queue, list(items))
        except Exception as exc:
            self.failures += 1
            log.warning("extending %d lease(s) on %s failed: %s: %s", len(items), queue, type(exc).__name__, exc)

    async def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
                return
            except TimeoutError:
                pass
            await self.beat_once()
