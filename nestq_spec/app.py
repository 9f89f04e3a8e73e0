"""Booting an application from its root module and running every contributed transport until cancelled."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from nestq_spec.container import Container
from nestq_spec.errors import BootError
from nestq_spec.modules import ModuleLike, TransportContribution, assemble
from nestq_spec.transport import CancellationToken, Transport

__all__ = ["Application"]

log = logging.getLogger("nestq")


@dataclass(slots=True)
class Application:
    """An assembled module graph: its container and the transports its modules contribute."""

    container: Container
    root: str

    @classmethod
    def create(cls, root: ModuleLike) -> Application:
        """Assemble ``root``'s module graph; boot errors (cycles, clashes) surface here."""
        name = getattr(root, "__qualname__", type(root).__qualname__)
        return cls(assemble(root), name)

    @property
    def transports(self) -> tuple[TransportContribution, ...]:
        """The transport contributions of the graph (empty for a producer-only app)."""
        return self.container.get_all(TransportContribution)

    async def serve(self, cancel: CancellationToken, *, shutdown_timeout: float = 30.0) -> None:
        """Configure every transport, then serve them concurrently until ``cancel`` is cancelled.

        If one transport fails, the others are cancelled and the error is raised. A transport still running
        ``shutdown_timeout`` seconds after cancellation is interrupted and reported as a :class:`BootError`.
        """
        built: list[tuple[str, Transport]] = []
        for contribution in self.transports:
            transport = contribution.build(self.container)
            await transport.configure(self.container)
            built.append((contribution.name, transport))
        if not built:
            log.info("%s contributes no transport; nothing to serve", self.root)
            return
        inner = cancel.child()
        tasks = {
            asyncio.create_task(t.serve(self.container, inner), name=f"nestq-transport-{name}"): name
            for name, t in built
        }
        stop = asyncio.create_task(inner.wait())
        pending = set(tasks)
        error: BaseException | None = None
        try:
            while pending and not inner.is_cancelled:
                done, pending = await asyncio.wait(pending | {stop}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(stop)
                for task in done - {stop}:
                    if task.exception() is not None and error is None:
                        error = task.exception()
                        inner.cancel()
            if pending:
                _, late = await asyncio.wait(pending, timeout=shutdown_timeout)
                for task in late:
                    task.cancel()
                if late:
                    names = ", ".join(sorted(tasks[t] for t in late))
                    error = error or BootError(
                        f"transport(s) {names} did not return within {shutdown_timeout}s of cancellation"
                    )
                for task in pending - late:
                    if task.exception() is not None and error is None:
                        error = task.exception()
        finally:
            stop.cancel()
            for task in tasks:
                if not task.done():
                    task.cancel()
        if error is not None:
            raise error

    async def run(self, *, shutdown_timeout: float = 30.0) -> None:
        """Serve until SIGINT or SIGTERM, then shut down gracefully."""
        cancel = CancellationToken()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, cancel.cancel)
        try:
            await self.serve(cancel, shutdown_timeout=shutdown_timeout)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
