"""The preflight: before any rule, boot the driver's modules once and round-trip one job through its storage.

A broken environment (a server that is down, a URL that does not parse, a driver module that raises) would
otherwise fail every rule that touches the storage, one timeout at a time, while the few rules that touch none
still pass. The preflight turns that into one message: the driver, what the harness says it uses (redacted), and
the error.
"""

from __future__ import annotations

import logging
import traceback

from nestq_conformance.harness import DriverHarness, SuiteSettings
from nestq_conformance.kit import Scenario
from nestq_conformance.redaction import redact_text

__all__ = ["PREFLIGHT_SECONDS", "preflight", "unfinished_driver"]

PREFLIGHT_SECONDS = 5.0
"""How long (times the timeout scale) one job may take to go through the driver's producer and worker."""


def _error_text(exc: BaseException) -> str:
    """The error, with the file and line it came from when it was raised outside the kit (a driver's module)."""
    if isinstance(exc, AssertionError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = next(
        (f for f in reversed(frames) if "nestq_conformance" not in f.filename and "asyncio" not in f.filename), None
    )
    text = f"{type(exc).__name__}: {exc}"
    if where is not None:
        text += f" (raised at {where.filename}:{where.lineno}, in {where.name})"
    return text


def unfinished_driver(problem: str) -> bool:
    """Whether a preflight failure is a driver still being written (``NotImplementedError``, the template's markers).

    That is no broken environment: the rules run, and each failure names the place to fill in.
    """
    return "NotImplementedError" in problem


def preflight(harness: DriverHarness, settings: SuiteSettings, *, scale: float, driver_spec: str) -> str | None:
    """Round-trip one job through ``harness``'s producer and worker modules; return what went wrong, or ``None``.

    Call it after ``session_start``. The message is redacted (it may quote a storage URL).
    """
    nq = Scenario(harness, settings, scale=scale, rule_id="PRE-000", driver_spec=driver_spec)
    within = PREFLIGHT_SECONDS * scale

    async def round_trip() -> None:
        rec = nq.recorder()
        queue = nq.queue("preflight")
        async with nq.worker(rec.processor(queue), label="preflight") as worker:
            await worker.producer.push_json(queue, {"preflight": queue})
            await nq.eventually(
                lambda: rec.count(queue) >= 1,
                f"one job pushed on {queue} to reach the worker",
                within=within,
                seen=rec.summary,
            )

    # The driver's own log lines (a reconnect loop's warnings, say) would bury the one message the preflight gives.
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [logging.NullHandler()]
    try:
        nq.run(round_trip, timeout=within + nq.stop_deadline() + nq.seconds(1.0))
    except Exception as exc:  # anything at all: the point is to report it once, clearly
        return redact_text(_error_text(exc))
    finally:
        root.handlers = saved
    return None
