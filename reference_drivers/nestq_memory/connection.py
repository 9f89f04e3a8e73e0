"""The producer side: :class:`MemoryConnection`, the driver's ``JobProducer`` and its operator API."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from nestq_spec import JobProducer, JSONValue, encode_job, validate_queue_name

from .broker import DeadLetter, MemoryBroker, QueueStats
from .config import MemoryConfig

__all__ = ["MemoryConnection"]


class MemoryConnection(JobProducer):
    """The driver's connection handle: pushes to the broker, and inspects it for operators and tests.

    Apps ask the container for ``JobProducer`` and get this object; code that knows it runs on the memory driver
    may ask for ``MemoryConnection`` to use the options (``delay``, ``priority``) and the operator API.
    """

    def __init__(self, broker: MemoryBroker, config: MemoryConfig) -> None:
        self.broker = broker
        """The storage this connection pushes to (the process-wide one unless the module was given another)."""
        self.config = config
        self.closed = False
        """Whether the application shut down (:meth:`aclose`); pushing through a closed connection is an error."""

    async def aclose(self) -> None:
        """Called by the container at app shutdown: later pushes fail instead of landing in a queue nobody serves.

        The broker itself stays: it is shared by every app of the process and holds no connection.
        """
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this MemoryConnection was closed with its application; push through a running app")

    async def push_json(self, queue: str, payload: JSONValue, *, delay: float = 0.0, priority: int = 0) -> None:
        """Wrap ``payload`` in the wire envelope once and store it on ``queue``.

        ``delay``: seconds before the job becomes due. ``priority``: higher runs first; equal priorities keep push
        order. Raises ``QueueNameError``, ``TypeError`` (payload not JSON) or ``ValueError`` (bad option) before
        anything is stored.
        """
        # (1) Wrap in the wire envelope and encode it, exactly once: the queue name and the payload are checked here.
        data = encode_job(queue, payload)
        if self.closed:
            self._check_open()
        if delay != 0 or priority != 0:
            _check_options(delay, priority)
        # (2) Push the envelope bytes onto the storage for `queue`.
        self.broker.push(queue, data, delay=delay, priority=priority)

    async def push_many_json(
        self, queue: str, payloads: Sequence[JSONValue], *, delay: float = 0.0, priority: int = 0
    ) -> list[str]:
        """Wrap and store many payloads on ``queue``, in order; return their job ids.

        Every payload is encoded (and checked) before any is stored, so a bad one stores none. Same options as
        :meth:`push_json`.
        """
        items = [encode_job(queue, payload) for payload in payloads]
        self._check_open()
        if delay != 0 or priority != 0:
            _check_options(delay, priority)
        push = self.broker.push
        return [push(queue, data, delay=delay, priority=priority) for data in items]

    async def push_raw(self, queue: str, data: bytes, *, delay: float = 0.0, priority: int = 0) -> None:
        """Store ``data`` on ``queue`` as it is, bypassing the envelope: for tests that plant foreign messages."""
        validate_queue_name(queue)
        self._check_open()
        if not isinstance(data, bytes):
            raise TypeError(f"push_raw stores bytes, found {type(data).__name__}")
        _check_options(delay, priority)
        self.broker.push(queue, data, delay=delay, priority=priority)

    # Operator API: a thin layer over the broker, so an app can inspect and repair through its connection.

    def stats(self, queue: str) -> QueueStats:
        """Counts of ``queue``'s jobs: ready, delayed, running, dead (``.depth`` sums the first three)."""
        return self.broker.stats(queue)

    def queue_depth(self, queue: str) -> int:
        """Jobs of ``queue`` accepted and not finished: ready, delayed and running."""
        return self.broker.depth(queue)

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        """The dead letters of ``queue``, oldest first, each with its envelope bytes, error and attempts."""
        return self.broker.dead_letters(queue)

    def redrive(self, queue: str, job_ids: Iterable[str] | None = None) -> int:
        """Put dead letters of ``queue`` (all, or those in ``job_ids``) back on the queue with fresh attempts."""
        return self.broker.redrive(queue, job_ids)

    def purge_dead_letters(self, queue: str, job_ids: Iterable[str] | None = None) -> int:
        """Delete dead letters of ``queue`` (all, or those in ``job_ids``); return how many."""
        return self.broker.purge_dead_letters(queue, job_ids)


def _check_options(delay: float, priority: int) -> None:
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
        raise ValueError(f"delay must be a finite number of seconds >= 0, found {delay!r}")
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValueError(f"priority must be an int (higher runs first), found {priority!r}")
