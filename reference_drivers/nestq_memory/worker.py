"""The worker side: :class:`MemoryWorker`, the driver's ``Transport``.

``serve`` follows the seed's five numbered places: (1) take the reachable ``@process`` methods, (2) group them
by queue, (3) run receive loops, (4) dispatch each envelope, (5) apply the retry and dead-letter policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from nestq_spec import (
    CancellationToken,
    Container,
    EnvelopeError,
    JobMeta,
    ProcessMethod,
    Transport,
    dispatch,
    is_retryable,
    routes,
)

from .broker import MemoryBroker, StoredJob
from .config import MemoryConfig

__all__ = ["MAX_ERROR_CHARS", "YIELD_EVERY", "MemoryWorker", "describe_error"]

log = logging.getLogger("nestq.memory")

MAX_ERROR_CHARS = 4000
"""Longest error text kept on a dead letter; a handler's exception message can be megabytes long."""


YIELD_EVERY = 32
"""A receive loop gives the event loop a turn once every this many jobs, even when none of them awaited."""


def describe_error(exc: BaseException, limit: int = MAX_ERROR_CHARS) -> str:
    """``Type: message`` for a dead letter or a log line, safe for exceptions whose ``str()`` raises or is huge."""
    name = type(exc).__qualname__
    try:
        text = str(exc)
    except Exception:
        text = "<str() of this exception raised an error>"
    described = f"{name}: {text}" if text else name
    if len(described) > limit:
        described = f"{described[:limit]}... ({len(described)} characters)"
    return described


class MemoryWorker(Transport):
    """Consumes the broker's queues that the app's ``@process`` methods name, ``concurrency`` jobs at a time."""

    def __init__(self, broker: MemoryBroker, config: MemoryConfig) -> None:
        self.broker = broker
        self.config = config

    async def configure(self, container: Container) -> None:
        """Nothing to connect or declare: the broker lives in this process."""

    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """Run jobs until ``cancel``; then finish running jobs within ``shutdown_grace`` and give back the rest."""
        # (1) + (2) The reachable @process methods grouped by queue: an imported processor that no module of the
        # app lists is not in here, and its queue is left alone for a worker that has it.
        by_queue = routes(container)
        if not by_queue:
            log.info("memory worker: no reachable @process method, nothing to consume")
            await cancel.wait()
            return
        queues = tuple(by_queue)
        stop = asyncio.ensure_future(cancel.wait())
        # (3) One receive loop per concurrency slot, each taking jobs from every queue of this worker: the number
        # of loops is the concurrency bound, shared by all the queues.
        runners = [
            asyncio.create_task(self._receive_loop(by_queue, queues, container, stop), name=f"nestq-memory-{i}")
            for i in range(self.config.concurrency)
        ]
        try:
            await asyncio.wait([stop, *runners], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()  # cancelled, or a loop died (a bug): once `stop` is done, no loop takes another job
            await asyncio.wait(runners, timeout=self.config.shutdown_grace)
        finally:
            # Loops still running a job after the grace are cancelled; each gives its job back to the queue.
            for runner in runners:
                runner.cancel()
            stop.cancel()
            await asyncio.gather(stop, *runners, return_exceptions=True)
        for runner in runners:
            if not runner.cancelled() and (failure := runner.exception()) is not None:
                raise failure

    async def _receive_loop(
        self,
        by_queue: dict[str, tuple[ProcessMethod, ...]],
        queues: Sequence[str],
        container: Container,
        stop: asyncio.Future[None],
    ) -> None:
        broker, woken_for, streak = self.broker, None, 0
        while not stop.done():
            # (3) Receive: claim the next ready job of any of our queues; when there is none, wait for a push (or
            # for a delayed job to fall due, or for the stop) without polling, then claim again.
            job = broker.claim(queues, prefer=woken_for)
            woken_for = None
            if job is None:
                woken_for = await broker.wait(queues, stop)
                continue
            try:
                # (4) Dispatch the stored bytes as they are: dispatch unwraps fail-closed, decodes, resolves each
                # processor and runs every method of the queue with this attempt's JobMeta in current_job().
                await dispatch(by_queue[job.queue], job.data, container, JobMeta(job.attempts, job.job_id))
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Cut off after the shutdown grace: the job goes back to the head of its queue, never lost.
                    broker.give_back(job)
                    raise
                self._failed(job, exc)  # the handler raised CancelledError on its own: a failure like any other
            except Exception as exc:
                self._failed(job, exc)
            else:
                broker.ack(job)
            # Claiming a ready job does not yield, nor does a handler that never awaits: give the rest of the
            # event loop (producers, the cancel) a turn now and then, or a long queue would hold it until empty.
            streak += 1
            if streak == YIELD_EVERY:
                streak = 0
                await asyncio.sleep(0)

    def _failed(self, job: StoredJob, exc: BaseException) -> None:
        # (5) The retry and dead-letter policy: retryable errors wait out an exponential backoff until the last
        # attempt; non-retryable ones (NonRetryableError, envelope and decode errors) are dead-lettered at once.
        error = describe_error(exc)
        attempt, limit = job.attempts, self.config.max_attempts
        if is_retryable(exc) and attempt < limit:
            delay = self.config.backoff(attempt)
            self.broker.retry(job, delay, error)
            log.warning("job %s on %s failed (attempt %d of %d), retrying in %.3gs: %s",
                        job.job_id, job.queue, attempt, limit, delay, error)
            return
        self.broker.dead_letter(job, error)
        if isinstance(exc, EnvelopeError):
            why = "not a valid envelope"
        elif not is_retryable(exc):
            why = "not retryable"
        else:
            why = f"out of attempts ({limit})"
        log.error("job %s on %s dead-lettered after attempt %d, %s: %s", job.job_id, job.queue, attempt, why, error,
                  exc_info=exc)
