"""Retry policy: attempts, exponential backoff with a cap and jitter, and the dead-letter decision."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from nestq_spec.errors import ConfigError, EnvelopeError, is_retryable

__all__ = ["MAX_ERROR_CHARS", "Decision", "RetryPolicy", "describe_error"]

MAX_ERROR_CHARS = 4000
"""Longest error text kept on a dead letter; a handler's exception message can be megabytes long."""


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


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a failed attempt: retry after ``delay`` seconds, or dead-letter it (``why`` says why)."""

    retry: bool
    delay: float
    why: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How every driver on the toolkit treats a failed attempt, so that all of them compute it the same way.

    ``max_attempts`` counts the first attempt. After failed attempt ``n`` a retryable error waits
    ``min(backoff_cap, backoff_base * 2**(n-1))`` seconds, lengthened (never shortened, never past the cap) by up to
    ``jitter`` times itself at random so that jobs failing together do not all come back together. Errors
    :func:`~nestq_spec.is_retryable` refuses (``NonRetryableError``, envelope and decode errors) are dead-lettered at
    once, whatever the budget.
    """

    max_attempts: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError(f"RetryPolicy.max_attempts must be an int >= 1, found {self.max_attempts!r}")
        for name in ("backoff_base", "backoff_cap", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"RetryPolicy.{name} must be a finite number >= 0, found {value!r}")
        if self.backoff_cap < self.backoff_base:
            raise ConfigError(
                f"RetryPolicy.backoff_cap ({self.backoff_cap}) is below backoff_base ({self.backoff_base})"
            )
        if self.jitter > 1:
            raise ConfigError(f"RetryPolicy.jitter is a fraction of the delay in [0, 1], found {self.jitter!r}")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (from 1), jitter included."""
        delay = min(self.backoff_cap, self.backoff_base * 2.0 ** min(max(attempt, 1) - 1, 60))
        if self.jitter:
            delay = min(self.backoff_cap, delay * (1.0 + self.jitter * random.random()))
        return delay

    def decide(self, exc: BaseException, attempt: int) -> Decision:
        """Retry (with its delay) or dead-letter the job whose attempt ``attempt`` raised ``exc``."""
        if not is_retryable(exc):
            return Decision(False, 0.0, "not a valid envelope" if isinstance(exc, EnvelopeError) else "not retryable")
        if attempt >= self.max_attempts:
            return Decision(False, 0.0, f"out of attempts ({self.max_attempts})")
        return Decision(True, self.backoff(attempt), "retryable")
