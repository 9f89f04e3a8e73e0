"""The one exception family of nestq.

Every error the seam raises derives from :class:`NestqError`. Errors a retry cannot fix derive from
:class:`NonRetryableError`; a driver asks :func:`is_retryable` before it spends an attempt on a job.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BootError",
    "CircularImportError",
    "ConfigError",
    "DispatchError",
    "EnvelopeError",
    "MalformedEnvelopeError",
    "MissingProviderError",
    "NestqError",
    "NoJobContextError",
    "NonRetryableError",
    "PayloadDecodeError",
    "QueueNameError",
    "RegistrationError",
    "UnsupportedVersionError",
    "is_retryable",
]


class NestqError(Exception):
    """Base class of every error raised by nestq."""


class NonRetryableError(NestqError):
    """A job failure that another attempt cannot fix.

    Handlers raise it (or a subclass) to send a job straight to the dead letters; drivers must not retry it.
    """


class EnvelopeError(NonRetryableError):
    """A message is not a valid wire envelope; the consumer fails closed."""


class MalformedEnvelopeError(EnvelopeError):
    """The message is not JSON, not an object, or lacks or adds keys."""


class UnsupportedVersionError(EnvelopeError):
    """The envelope's ``v`` is not the wire format version this consumer speaks."""

    def __init__(self, expected: int, found: object) -> None:
        self.expected = expected
        self.found = found
        super().__init__(
            f"unsupported wire format version: expected v={expected}, found v={found!r}; "
            "the producer and the consumer disagree on the envelope (wrap exactly once, with "
            "nestq_spec.WIRE_FORMAT_VERSION)"
        )


class PayloadDecodeError(NonRetryableError):
    """The payload is valid JSON but does not fit the job type the handler declares."""


class QueueNameError(NestqError, ValueError):
    """A queue name is empty, too long, or holds characters a storage key cannot safely hold."""


class RegistrationError(NestqError, TypeError):
    """A ``@processor``/``@process`` declaration is wrong; raised at import time."""


class BootError(NestqError):
    """The application's module graph cannot be assembled."""


class CircularImportError(BootError):
    """Two or more modules import each other."""

    def __init__(self, chain: Sequence[str]) -> None:
        self.chain = tuple(chain)
        super().__init__("circular module import: " + " -> ".join(self.chain))


class MissingProviderError(BootError, LookupError):
    """Something asked the container for a type that no reachable module provides."""

    def __init__(self, wanted: str, chain: Sequence[str] = (), hint: str = "") -> None:
        self.wanted = wanted
        self.chain = tuple(chain)
        path = " -> ".join((*self.chain, wanted))
        message = f"no provider for {wanted}"
        if self.chain:
            message += f" (needed by {path})"
        message += "; " + (hint or f"add {wanted} to a module's providers or import a module that provides it")
        super().__init__(message)


class ConfigError(BootError, ValueError):
    """A configuration value is invalid; the message names the setting and, unless secret, the value."""


class NoJobContextError(NestqError, LookupError):
    """``current_job()`` was called outside a running job."""


class DispatchError(NestqError):
    """One or more handlers of a queue failed for one job.

    ``failures`` maps the qualified name of each failing method to its exception. The job counts as failed as a
    whole: a retry runs every handler of the queue again, so handlers must be idempotent.
    """

    def __init__(self, queue: str, failures: dict[str, BaseException]) -> None:
        self.queue = queue
        self.failures = failures
        parts = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in failures.items())
        super().__init__(f"{len(failures)} handler(s) failed on queue {queue!r}: {parts}")


def is_retryable(exc: BaseException) -> bool:
    """Tell whether a failed job may be attempted again.

    A :class:`DispatchError` is retryable when at least one of its failures is; anything that is not a
    :class:`NonRetryableError` is retryable.
    """
    if isinstance(exc, DispatchError):
        return any(is_retryable(inner) for inner in exc.failures.values())
    return not isinstance(exc, NonRetryableError)
