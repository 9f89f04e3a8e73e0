{%- set P = cookiecutter.__class_prefix -%}
{%- set FILE = "src/" ~ cookiecutter.package_name ~ "/worker.py" -%}
"""The consumer side: :class:`{{ P }}Worker`, the ``Transport`` the worker module contributes.

It follows the seed's five numbered places:

- (1) snapshot the reachable ``@process`` methods and (2) group them by queue: done, by ``nestq_spec.routes``;
- (3) the receive loop: one task per queue, all bounded together by ``concurrency``, stopping promptly on
  cancel. The loop is done; the receive primitive, :meth:`{{ P }}Worker.receive`, is yours;
- (4) dispatch each envelope to its queue's methods: done, by ``nestq_spec.dispatch`` (it unwraps the envelope,
  failing closed, decodes the job, and runs every method in the job context);
- (5) the outcome of each job: acknowledge a success, retry or dead-letter a failure, give back a job the
  shutdown interrupted. That policy is your storage's, in :meth:`{{ P }}Worker.settle`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from nestq_spec import CancellationToken, Container, JobMeta, ProcessMethod, Transport, dispatch, routes

from .config import {{ P }}Config
from .connection import {{ P }}Connection

__all__ = [
{%- for name in ["JobInterrupted", "Received", P ~ "Worker"]|sort(case_sensitive=true) %}
    "{{ name }}",
{%- endfor %}
    "error_text",
]

log = logging.getLogger("{{ cookiecutter.package_name }}")

# How long jobs cancelled at the end of the shutdown grace may take to unwind before serve() returns anyway.
_UNWIND_SECONDS = 0.5
_MAX_ERROR_TEXT = 4000


@dataclass(frozen=True, slots=True)
class Received:
    """One envelope taken from the storage by ``receive``, with what the storage knows of it."""

    queue: str
    data: bytes | str
    """The stored envelope, exactly as the producer's ``push_raw`` stored it."""
    attempt: int = 1
    """Which attempt this delivery is, from 1 (storages that count deliveries report them here)."""
    job_id: str | None = None
    """The storage's id for the job, if it has one (``current_job().job_id`` in the handler)."""
    receipt: Any = None
    """Whatever ``settle`` needs to acknowledge or retry it: a receipt handle, a lease token..."""


class JobInterrupted(Exception):  # noqa: N818 - it names what happened to the job, not an error of the caller
    """What ``settle`` receives for a job still running when the shutdown grace ran out."""


def error_text(exc: BaseException) -> str:
    """``"Type: message"`` for a dead letter or a log line, built defensively: ``str(exc)`` may raise or be huge."""
    try:
        message = str(exc)
    except Exception as inner:
        message = f"<str() of the exception failed: {type(inner).__name__}>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if len(text) > _MAX_ERROR_TEXT:
        suffix = f" ... ({len(text)} chars, truncated)"
        text = text[: _MAX_ERROR_TEXT - len(suffix)] + suffix
    return text


class _Run:
    """The state of one ``serve`` call: its stop token, the concurrency slots, the running jobs, a fatal error."""

    def __init__(self, cancel: CancellationToken, concurrency: int) -> None:
        self.halt = cancel.child()
        self.slots = asyncio.Semaphore(concurrency)
        self.jobs: set[asyncio.Task[None]] = set()
        self.error: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        """Stop the worker because of ``exc``; ``serve`` raises the first such error once it has stopped."""
        if self.error is None:
            self.error = exc
        self.halt.cancel()

    async def slot(self) -> bool:
        """Wait for a free concurrency slot; False (and no slot held) once the worker is stopping."""
        if self.halt.is_cancelled:
            return False
        if not self.slots.locked():
            await self.slots.acquire()
            return True
        acquire = asyncio.ensure_future(self.slots.acquire())
        stop = asyncio.ensure_future(self.halt.wait())
        try:
            await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not acquire.done():
                acquire.cancel()  # a cancelled Semaphore.acquire hands its wake-up on; no slot is lost
        if acquire.done() and not acquire.cancelled():
            if not self.halt.is_cancelled:
                return True
            self.slots.release()
        return False

    def start(self, job: Coroutine[Any, Any, None], name: str) -> None:
        """Run one job in its own task, tracked until it ends."""
        task = asyncio.create_task(job, name=name)
        self.jobs.add(task)
        task.add_done_callback(self.jobs.discard)


class {{ P }}Worker(Transport):
    """The driver's worker: receives envelopes from the storage and hands them to the ``@process`` handlers."""

    def __init__(self, connection: {{ P }}Connection, config: {{ P }}Config) -> None:
        self.connection = connection
        self.config = config

    async def configure(self, container: Container) -> None:
        """Prepare before serving: connect, declare queues or subscriptions. Nothing to do by default."""

    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """Receive and dispatch jobs until ``cancel``; then let running jobs finish within the shutdown grace."""
        # (1) Snapshot the reachable @process methods: a processor that is imported but not listed in the app's
        #     modules is skipped. (2) Group them by queue name. Done: routes() does both.
        by_queue = routes(container)
        if not by_queue:
            log.info("no @process method is reachable from the app's modules; nothing to consume")
            await cancel.wait()
            return
        run = _Run(cancel, self.config.concurrency)
        # (3) For each queue, a task that loops: take a free slot, receive one envelope, run it in its own task.
        loops = [
            asyncio.create_task(self._receive_loop(queue, methods, container, run), name=f"receive:{queue}")
            for queue, methods in by_queue.items()
        ]
        try:
            await asyncio.wait(loops)
        finally:
            for task in loops:
                task.cancel()
            await self._drain(run)
        if run.error is not None:
            raise run.error

    async def _receive_loop(
        self, queue: str, methods: Sequence[ProcessMethod], container: Container, run: _Run
    ) -> None:
        try:
            # A receive holds a slot while it waits, so the worker never takes a job it has no room to run.
            while await run.slot():
                try:
                    received = await self.receive(queue, self.config.poll_interval)
                except BaseException:
                    run.slots.release()
                    raise
                if received is None:
                    run.slots.release()
                    continue
                run.start(self._job(received, methods, container, run), name=f"job:{queue}:{received.job_id}")
        except Exception as exc:
            run.fail(exc)

    async def _job(self, received: Received, methods: Sequence[ProcessMethod], container: Container,
                   run: _Run) -> None:
        try:
            try:
                # (4) Dispatch: unwrap the envelope (fail closed), decode the job, run every method of the queue
                #     inside the job context. Done.
                meta = JobMeta(received.attempt, received.job_id)
                await dispatch(methods, received.data, container, meta)
            except asyncio.CancelledError:
                await self.settle(received, JobInterrupted(f"the worker stopped while the job ran on {received.queue}"))
                raise
            except Exception as exc:
                # (5) On failure, apply your retry / dead-letter policy: settle() with the error.
                await self.settle(received, exc)
            else:
                await self.settle(received, None)
        except Exception as exc:
            run.fail(exc)  # settle() itself failed: stop the worker and let serve() raise it
        finally:
            run.slots.release()

    async def _drain(self, run: _Run) -> None:
        """Let running jobs finish within the shutdown grace, then interrupt the rest (settled as interrupted)."""
        if run.jobs:
            await asyncio.wait(set(run.jobs), timeout=self.config.shutdown_grace)
        late = set(run.jobs)
        for task in late:
            task.cancel()
        if late:
            log.warning("%d job(s) still running after the shutdown grace were interrupted", len(late))
            await asyncio.wait(late, timeout=_UNWIND_SECONDS)

    async def receive(self, queue: str, max_wait: float) -> Received | None:
        """Marker (3): wait at most ``max_wait`` seconds for the next envelope of ``queue``; None when none came.

        Return promptly: the loop checks for shutdown between calls. Never hold an envelope only in memory if
        your storage can keep it: mark it received (a lease, a visibility timeout) so a crash does not lose it.
        """
        # (3) Your code: your storage's receive primitive with a finite wait: `BRPOP queue timeout`,
        #     `ReceiveMessage(WaitTimeSeconds=...)`, a NATS `fetch(timeout=...)`, `SELECT ... FOR UPDATE SKIP
        #     LOCKED` with LISTEN/NOTIFY, an asyncio channel's `get()`... Return Received(queue, data, attempt,
        #     job_id, receipt). Catch your storage's transient errors (a lost connection) and retry with a backoff.
        raise NotImplementedError(
            "{{ FILE }} marker (3): "
            "receive the next envelope of `queue` from your storage (waiting at most `max_wait` seconds) "
            "and return it as Received(queue, data, attempt, job_id, receipt), or None, "
            "in {{ P }}Worker.receive"
        )

    async def settle(self, received: Received, error: BaseException | None) -> None:
        """Marker (5): record the outcome of one job with the storage.

        ``error`` is ``None`` when every method succeeded; the handler's exception when the job failed (see
        ``nestq_spec.is_retryable``: envelope and decoding errors are never worth a retry); a
        :class:`JobInterrupted` when the shutdown grace ran out while it ran.
        """
        # (5) Your code, decided with your storage and documented in the README's "Semantics" section:
        #     - success: acknowledge / delete the message (nothing to do if receive() already removed it);
        #     - failure: `if is_retryable(error) and received.attempt < self.config.max_attempts`, schedule a
        #       retry after `self.config.backoff(received.attempt)`, else keep a dead letter with
        #       `error_text(error)` (or drop it, at most once, and log it);
        #     - JobInterrupted: give the job back to the storage without counting the attempt (or drop it).
        raise NotImplementedError(
            "{{ FILE }} marker (5): "
            "acknowledge a success, and retry or dead-letter a failure (`error`), "
            "with your storage, in {{ P }}Worker.settle"
        )
