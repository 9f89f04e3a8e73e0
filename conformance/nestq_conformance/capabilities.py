"""The capability manifest a driver declares; the suite holds the driver to exactly what it declares."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

__all__ = ["Capabilities", "ManifestError"]


class ManifestError(ValueError):
    """A capability manifest contradicts itself; the message lists every contradiction."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a driver guarantees. Rules that need a capability are skipped, naming it, when it is not declared.

    New capabilities get conservative defaults (not declared), so a new suite version never fails a driver for
    something it never claimed.
    """

    durability: Literal["ephemeral", "durable"] = "ephemeral"
    """``durable``: accepted jobs survive the worker process (and, with ``storage_restart``, the storage)."""
    delivery: Literal["at-most-once", "at-least-once"] = "at-most-once"
    """``at-least-once``: a job is never lost once accepted; duplicates may happen after a lost lease."""
    ordering: Literal["none", "fifo"] = "none"
    """``fifo``: one worker with concurrency 1 receives jobs of one queue in push order."""
    retries: bool = False
    """A job whose handler raises is attempted again, up to ``max_attempts``."""
    max_attempts: int | None = None
    """Attempts per job (first delivery included) when ``retries``; the suite configures its own value."""
    backoff: bool = False
    """Retries wait at least the configured backoff before the next attempt."""
    dead_letters: bool = False
    """A job out of attempts, or non-retryable, is kept as a dead letter with its error (inspectable)."""
    visibility_timeout: bool = False
    """A job whose worker died mid-job is delivered again (needs ``cross_process``): once its lease expires on a
    storage that leases claims by time, or once the worker's connection closes on a broker that holds deliveries
    per connection (RabbitMQ); and a live worker keeps its running jobs however long they take."""
    delayed_jobs: bool = False
    """The driver's producer can schedule a job for later (its own API, probed through the harness)."""
    priority: bool = False
    """The driver's producer can push with a priority (its own API, probed through the harness)."""
    precise_delays: bool = False
    """With ``delayed_jobs``: an idle worker starts a delayed job within ``poll_interval`` of its due time (a timer,
    or a poll that often). Not declared: it may start up to a second late (storages that schedule in whole seconds,
    such as SQS's ``DelaySeconds``). Changes what SCH-004 accepts, not whether it runs."""
    cross_process: bool = False
    """A producer in one process and a worker in another share the queue."""
    max_payload_bytes: int = 256 * 1024
    """The largest encoded envelope the driver accepts; the suite pushes payloads up to this size."""
    max_concurrency: bool = False
    """The worker never runs more jobs at once than its configured concurrency."""
    storage_restart: bool = False
    """After the storage restarts, a running worker reconnects by itself and loses nothing accepted."""

    def problems(self) -> list[str]:
        """Return every contradiction in this manifest (empty when it is consistent)."""
        found = []
        if self.dead_letters and not self.retries:
            found.append("dead_letters without retries: a job only becomes a dead letter after its last attempt")
        if self.retries and (self.max_attempts is None or self.max_attempts < 2):
            found.append("retries needs max_attempts >= 2")
        if not self.retries and self.max_attempts not in (None, 1):
            found.append("max_attempts is set but retries is not declared")
        if self.backoff and not self.retries:
            found.append("backoff without retries")
        if self.durability == "durable" and not self.cross_process:
            found.append("durable without cross_process: a job that survives the process must be readable by another")
        if self.visibility_timeout and not self.cross_process:
            found.append("visibility_timeout without cross_process: crash redelivery is tested with a killed process")
        if self.visibility_timeout and self.delivery != "at-least-once":
            found.append("visibility_timeout redelivers, so delivery must be at-least-once")
        if self.storage_restart and self.durability != "durable":
            found.append("storage_restart without durability: an ephemeral store loses its jobs on restart")
        if self.precise_delays and not self.delayed_jobs:
            found.append("precise_delays without delayed_jobs: only delayed jobs have a due time")
        if self.max_payload_bytes < 1024:
            found.append(f"max_payload_bytes={self.max_payload_bytes} is below the 1024 bytes every driver must carry")
        return found

    def validate(self) -> Capabilities:
        """Raise :class:`ManifestError` listing every contradiction; return ``self`` when consistent."""
        found = self.problems()
        if found:
            raise ManifestError("capability manifest contradicts itself: " + "; ".join(found))
        return self

    def declared(self, name: str) -> bool:
        """Tell whether capability ``name`` is declared (a flag that is true, or a level above the weakest)."""
        value = getattr(self, name)
        weakest = {"durability": "ephemeral", "delivery": "at-most-once", "ordering": "none"}
        if name in weakest:
            return bool(value != weakest[name])
        return bool(value)

    def as_dict(self) -> dict[str, object]:
        """The manifest as plain data, for reports."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
