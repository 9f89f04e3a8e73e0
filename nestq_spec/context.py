"""The ambient job context: which job the current task is running, for handlers that need it."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nestq_spec.errors import NoJobContextError

if TYPE_CHECKING:
    from nestq_spec.container import Container
    from nestq_spec.registry import ProcessMethod

__all__ = ["JobContext", "JobMeta", "current_job"]


@dataclass(frozen=True, slots=True)
class JobMeta:
    """What a driver knows about a delivery, passed to the handler beside the envelope (never inside it).

    ``attempt`` counts from 1; ``job_id`` is the storage's id where it has one.
    """

    attempt: int = 1
    job_id: str | None = None

    def __post_init__(self) -> None:
        # A driver that counts from 0 would otherwise show handlers attempt 0 and skew every retry decision by one.
        if isinstance(self.attempt, bool) or not isinstance(self.attempt, int) or self.attempt < 1:
            raise ValueError(
                f"JobMeta(attempt={self.attempt!r}): attempts start at 1 (the first delivery is attempt 1); "
                "attempt 0 or less means the driver counts from 0 or passes the attempts *before* this one"
            )


@dataclass(frozen=True, slots=True)
class JobContext:
    """The job the current task runs: its queue, attempt (from 1), storage id, handler and the container."""

    queue: str
    attempt: int
    job_id: str | None
    method: str
    container: Container


_CURRENT: ContextVar[list[Any]] = ContextVar("nestq_current_job")
"""Set by the registry around each handler call to ``[method, attempt, job_id, container, None]``;
:func:`current_job` builds the :class:`JobContext` on first use and keeps it in the last slot (most handlers never
ask for it, and a driver on the toolkit need not build a :class:`JobMeta` per job)."""


def current_job() -> JobContext:
    """Return the context of the job being handled; raise :class:`NoJobContextError` outside a job."""
    try:
        job = _CURRENT.get()
        if job[4] is None:
            method: ProcessMethod = job[0]
            job[4] = JobContext(method.queue, job[1], job[2], method.qualname, job[3])
        context: JobContext = job[4]
        return context
    except LookupError:
        raise NoJobContextError(
            "current_job() was called outside a job; it only works inside a @process handler "
            "(or code it awaits) while a driver runs it"
        ) from None
