"""Booting an application from its root module and running every contributed transport until cancelled."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from nestq_spec.container import Container
from nestq_spec.driverkit.lease import check_grace
from nestq_spec.errors import BootError, ConfigError
from nestq_spec.modules import ModuleLike, TransportContribution, assemble
from nestq_spec.transport import CancellationToken, Transport

__all__ = ["Application"]

log = logging.getLogger("nestq")


@dataclass(slots=True)
class Application:
    """An assembled module graph: its container and the transports its modules contribute."""

    container: Container
    root: str
    _built: list[Transport] = field(default_factory=list, repr=False)

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

        Every transport is configured before any serves. If one transport fails, the others are cancelled (through
        the token) and the first error is raised once they have returned. A transport still running
        ``shutdown_timeout`` seconds after cancellation has its task cancelled and is reported as a
        :class:`BootError`. Returns when every transport has returned.
        """
        built: list[tuple[str, Transport]] = []
        for contribution in self.transports:
            transport = contribution.build(self.container)
            self._built.append(transport)
            await transport.configure(self.container)
            built.append((contribution.name, transport))
        if not built:
            log.info("%s contributes no transport; nothing to serve", self.root)
            return
        _warn_on_grace(built, shutdown_timeout)
        inner = cancel.child()
        tasks = {
            asyncio.create_task(t.serve(self.container, inner), name=f"nestq-transport-{name}"): name
            for name, t in built
        }
        log.info("%s serving %s", self.root, ", ".join(tasks.values()))
        stop = asyncio.create_task(inner.wait())
        pending = set(tasks)
        error: BaseException | None = None
        late_error: BootError | None = None
        late: set[asyncio.Task[None]] = set()
        finished: dict[asyncio.Task[None], float] = {}

        def collect(done: set[asyncio.Task[None]]) -> None:
            nonlocal error
            for task in done:
                failure = _failure(task)
                if failure is None:
                    if not inner.is_cancelled:
                        log.warning("transport %s returned before cancellation", tasks[task])
                    continue
                log.error("transport %s failed: %s: %s", tasks[task], type(failure).__name__, failure)
                if error is None:
                    error = failure
                    inner.cancel()

        try:
            while pending and not inner.is_cancelled:
                done, _ = await asyncio.wait(pending | {stop}, return_when=asyncio.FIRST_COMPLETED)
                done.discard(stop)
                pending -= done
                collect(done)
            if pending:
                loop = asyncio.get_running_loop()
                stopping = loop.time()
                done, late = await asyncio.wait(pending, timeout=shutdown_timeout)
                collect(done)
                if late:
                    for task in late:
                        task.add_done_callback(lambda t: finished.setdefault(t, loop.time()))
                    names = ", ".join(sorted(tasks[t] for t in late))
                    log.error("transport(s) %s still running %ss after cancellation; cancelling", names,
                              shutdown_timeout)
                    late_error = BootError(
                        f"transport(s) {names} did not return within {shutdown_timeout}s of cancellation"
                    )
                    error = error or late_error
        finally:
            leftovers = [t for t in (*tasks, stop) if not t.done()]
            for task in leftovers:
                task.cancel()
            if leftovers:
                # Let cancelled transports run their cleanup, but never wait forever on one that ignores it.
                await asyncio.wait(leftovers, timeout=_CANCEL_GRACE)
            if late_error is not None:
                # Say by how much each one overran, so a too-short timeout is told apart from a hung transport.
                overran = "; ".join(
                    f"{tasks[t]} " + (f"returned {finished[t] - stopping:.1f}s after cancellation, "
                                      f"{finished[t] - stopping - shutdown_timeout:.1f}s over, once cancelled"
                                      if t in finished else f"was still running {loop.time() - stopping:.1f}s "
                                      "after cancellation and was abandoned")
                    for t in sorted(late, key=lambda t: tasks[t])
                )
                late_error.args = (f"{late_error.args[0]} ({overran}); give the transports a shorter grace of "
                                   "their own or raise the shutdown timeout (nestq run --shutdown-timeout)",)
            for task in tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved, so asyncio does not log it as never retrieved
        if error is not None:
            raise error

    async def close(self) -> None:
        """Shut the application down: close its transports (newest first), then the container's providers.

        ``serve`` does not close (an app may be served again, and its producer used after a worker stopped);
        :meth:`run` does, and so does ``async with app``. Idempotent. Every closer runs even if one fails; the first
        failure is raised afterwards.
        """
        first: BaseException | None = None
        transports, self._built[:] = list(self._built), []
        for transport in reversed(transports):
            try:
                await transport.close()
            except Exception as exc:
                log.error("closing transport %s failed: %s: %s", type(transport).__qualname__, type(exc).__name__, exc)
                first = first or exc
        try:
            await self.container.aclose()
        except Exception as exc:
            first = first or exc
        if first is not None:
            raise first

    async def __aenter__(self) -> Application:
        """``async with Application.create(Root) as app:`` closes the app when the block ends."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the application (see :meth:`close`)."""
        await self.close()

    async def run(self, *, shutdown_timeout: float = 30.0) -> None:
        """Serve until SIGINT or SIGTERM, then shut down gracefully and :meth:`close` the application.

        The signal handlers are installed for the duration of the call and the previous ones restored after it.
        Outside the main thread (where signals cannot be handled) it serves until the task is cancelled.
        """
        cancel = CancellationToken()
        loop = asyncio.get_running_loop()
        installed: list[tuple[signal.Signals, Any]] = []

        def on_signal(sig: signal.Signals) -> None:
            log.info("%s received %s; shutting down", self.root, sig.name)
            cancel.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, on_signal, sig)
            except (ValueError, RuntimeError, NotImplementedError) as exc:
                log.warning("cannot handle %s here (%s); stop the app by cancelling its task", sig.name, exc)
                continue
            installed.append((sig, previous))
        try:
            await self.serve(cancel, shutdown_timeout=shutdown_timeout)
        finally:
            try:
                await self.close()
            except Exception as exc:
                log.error("%s: closing failed: %s: %s", self.root, type(exc).__name__, exc)
            for sig, previous in installed:
                loop.remove_signal_handler(sig)
                if previous is not None:
                    signal.signal(sig, previous)


_CANCEL_GRACE = 5.0
"""Seconds a cancelled transport task gets to finish its cleanup before serve gives up on it."""


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    if task.cancelled():
        return None
    return task.exception()


GIVE_BACK_MARGIN = 1.0
"""Seconds a transport is assumed to need after its grace to give unfinished jobs back to the storage."""


def _warn_on_grace(built: list[tuple[str, Transport]], shutdown_timeout: float) -> None:
    # A warning, not a boot error: the app still works, but a long job at shutdown would be cut off by the app's
    # timeout instead of given back, which an operator should hear about before the first deploy, not after.
    for name, transport in built:
        grace = transport.shutdown_grace
        if grace is None:
            continue
        try:
            check_grace(grace, shutdown_timeout, margin=GIVE_BACK_MARGIN,
                        names=(f"transport {name}'s shutdown_grace", "the app's shutdown_timeout"))
        except ConfigError as exc:
            log.warning("%s; lower the driver's shutdown_grace or raise nestq run --shutdown-timeout", exc)
