"""The push side of the seam: ``JobProducer``, queue names, and the one encoding step a driver calls."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Final

from nestq_spec.envelope import dumps_envelope
from nestq_spec.errors import QueueNameError
from nestq_spec.jsonvalue import JSONValue, to_json_value

__all__ = ["MAX_QUEUE_NAME_LENGTH", "JobProducer", "encode_job", "validate_queue_name"]

MAX_QUEUE_NAME_LENGTH: Final = 128
"""Longest queue name accepted; short enough for SQS (80 with a prefix), NATS subjects and Redis keys alike."""

# Characters every storage we know takes in a key, subject or table value without quoting.
_QUEUE_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")
_valid_names: set[str] = set()


def validate_queue_name(queue: object) -> str:
    """Return ``queue`` if it is a valid queue name, else raise :class:`QueueNameError` saying why.

    Valid: 1 to 128 ASCII letters, digits, ``_``, ``-``, ``.`` or ``:``, not starting with ``-``, ``.`` or ``:``.
    """
    if type(queue) is str and queue in _valid_names:
        return queue
    if not isinstance(queue, str):
        raise QueueNameError(f"queue name must be a string, found {type(queue).__name__} {queue!r}")
    if not queue:
        raise QueueNameError("queue name is empty")
    if len(queue) > MAX_QUEUE_NAME_LENGTH:
        raise QueueNameError(
            f"queue name is {len(queue)} characters long, the limit is {MAX_QUEUE_NAME_LENGTH}: {queue[:40]!r}..."
        )
    if _QUEUE_NAME.fullmatch(queue) is None:
        position, char = next(
            (i, c) for i, c in enumerate(queue) if _QUEUE_NAME.fullmatch(("a" if i else "") + c) is None
        )
        raise QueueNameError(
            f"invalid queue name {queue!r}: {char!r} at position {position} is not allowed; use ASCII letters, "
            "digits, '_', '-', '.', ':' (and not '-', '.', ':' first)"
        )
    if len(_valid_names) < 10_000:  # a cache of names seen, bounded so generated names cannot grow it forever
        _valid_names.add(queue)
    return queue


def encode_job(queue: str, payload: JSONValue) -> bytes:
    """Step (1) of every ``push_json``: validate the queue name, wrap once, encode as compact UTF-8 JSON.

    Raises :class:`QueueNameError` or :class:`TypeError` before anything reaches the storage.
    """
    validate_queue_name(queue)
    return dumps_envelope(payload)


class JobProducer(ABC):
    """The push side of a queue driver; apps ask the container for it and never name the driver.

    A driver implements :meth:`push_json` only; :meth:`push` is written once, here, on top of it.
    """

    @abstractmethod
    async def push_json(self, queue: str, payload: JSONValue) -> None:
        """Wrap ``payload`` in the wire envelope exactly once and store it on ``queue``.

        Implementations start with ``data = encode_job(queue, payload)`` so that bad queue names and payloads
        that cannot become JSON are refused before anything is stored.
        """

    async def push(self, queue: str, job: object) -> None:
        """Push a typed job: a dataclass, a dict or TypedDict, or an object with ``model_dump()`` (pydantic).

        Raises :class:`TypeError` naming the part that cannot become JSON, and :class:`QueueNameError` for a bad
        queue name, before anything is sent.
        """
        validate_queue_name(queue)
        await self.push_json(queue, to_json_value(job))
