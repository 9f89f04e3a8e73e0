"""The worker slot the application drives at boot: ``configure(container)``, then ``serve(container, cancel)``."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable

from nestq_spec.container import Container

__all__ = ["CancellationToken", "Transport"]


class CancellationToken:
    """A one-way flag that asks running work to stop, awaitable from any task of one event loop.

    ``child()`` tokens are cancelled with their parent but can be cancelled on their own.
    """

    __slots__ = ("_children", "_event", "_hooks")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._children: list[CancellationToken] = []
        self._hooks: list[Callable[[], None]] = []

    def cancel(self) -> None:
        """Ask for cancellation; idempotent."""
        if self._event.is_set():
            return
        self._event.set()
        for hook in list(self._hooks):
            hook()
        for child in self._children:
            child.cancel()

    @property
    def is_cancelled(self) -> bool:
        """Whether :meth:`cancel` was called (on this token or a parent)."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Return once the token is cancelled."""
        await self._event.wait()

    def _on_cancel(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook()`` the moment :meth:`cancel` is called (at once if it was); return what unregisters it.

        For the driver toolkit's loop, which checks a plain attribute per job rather than :attr:`is_cancelled`.
        """
        if self.is_cancelled:
            hook()
            return lambda: None
        self._hooks.append(hook)

        def forget() -> None:
            if hook in self._hooks:
                self._hooks.remove(hook)

        return forget

    def child(self) -> CancellationToken:
        """Return a token cancelled together with this one."""
        token = CancellationToken()
        if self.is_cancelled:
            token.cancel()
        else:
            self._children.append(token)
        return token


class Transport(ABC):
    """A driver's worker: receives envelopes from its storage and hands them to the registry's handlers.

    The application calls :meth:`configure` once with the assembled container, then :meth:`serve`, which must
    return promptly after ``cancel`` is cancelled (finishing, or returning to the storage, the jobs in flight), and
    :meth:`close` when the application shuts down.
    """

    shutdown_grace: float | None = None
    """Seconds :meth:`serve` lets running jobs finish after cancellation, for a transport that has such a grace.

    ``Application.serve`` warns at boot when the grace leaves no room inside its ``shutdown_timeout``: the app would
    cancel the transport before its jobs are given back, and a deploy would end like a crash.
    """

    async def configure(self, container: Container) -> None:  # noqa: B027 - optional hook, no-op by default
        """Prepare before serving (connect, declare queues); the default does nothing."""

    @abstractmethod
    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """Receive and dispatch jobs until ``cancel`` is cancelled."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release what :meth:`configure` opened (connections, consumers); ``Application.close()`` calls it once.

        Called after ``serve`` returned (or when it never ran), before the container closes its providers.
        """
