"""How nestq queues and envelopes map onto SQS: queue names, message bodies and the attributes the driver keeps.

SQS queue names allow 80 characters of ``[A-Za-z0-9_-]``; nestq queue names allow 128 of ``[A-Za-z0-9_.:-]``
and are case-sensitive. :func:`sqs_names` maps them without collisions: letters and digits stay, ``_`` becomes
``__`` and ``.`` ``:`` ``-`` become ``_d`` ``_c`` ``_h`` (so the mapped part never holds ``-``); a name that
is still too long keeps its first characters and ends in ``-`` and 16 hex digits of its SHA-256. The dead-letter
queue is the same name with ``-dlq``, which no main queue name can end with.

SQS bodies are XML text (no NUL, no lone surrogates, no U+FFFE/U+FFFF): an envelope that is such text is sent as
it is; any other bytes (a malformed envelope pushed raw) travel base64-encoded, marked by an attribute, and are
handed to the worker as the original bytes.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any, Final

__all__ = [
    "ATTEMPTS",
    "ENCODING",
    "ERROR",
    "JOB_ID",
    "MAX_MESSAGE_BYTES",
    "MAX_PAYLOAD_BYTES",
    "QUEUE",
    "PayloadTooLargeError",
    "decode_body",
    "encode_body",
    "message_size",
    "sqs_names",
]

MAX_MESSAGE_BYTES: Final = 256 * 1024
"""SQS's limit for one message: body plus every message attribute's name, type and value."""
ATTRIBUTE_ROOM: Final = 8 * 1024
"""Bytes kept free for the driver's own attributes (a dead letter's error text is cut to fit them)."""
MAX_PAYLOAD_BYTES: Final = MAX_MESSAGE_BYTES - ATTRIBUTE_ROOM
"""The largest envelope (encoded bytes) the driver accepts: what the harness declares as ``max_payload_bytes``."""

ENCODING: Final = "nestq-encoding"
"""``base64`` when the body is the base64 of the stored bytes."""
ATTEMPTS: Final = "nestq-attempts"
"""Attempts spent before this copy of the message (a give-back re-sends with the attempt refunded)."""
JOB_ID: Final = "nestq-job-id"
"""The job's id when it differs from the message id (a re-sent copy, a dead letter)."""
ERROR: Final = "nestq-error"
"""A dead letter's last error."""
QUEUE: Final = "nestq-queue"
"""A dead letter's nestq queue name."""

_ESCAPES: Final = {"_": "__", ".": "_d", ":": "_c", "-": "_h"}
_INVALID_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MAX_NAME: Final = 80


class PayloadTooLargeError(ValueError):
    """An envelope larger than SQS carries in one message; nothing was sent."""


def sqs_names(prefix: str, queue: str, *, fifo: bool) -> tuple[str, str]:
    """The SQS names of ``queue``'s queue and its dead-letter queue (``prefix`` as the configuration checked it)."""
    mapped = "".join(_ESCAPES.get(ch, ch) for ch in queue)
    suffix = ".fifo" if fifo else ""
    room = _MAX_NAME - len(prefix) - len("-dlq") - len(suffix)
    if len(mapped) > room:
        digest = hashlib.sha256(queue.encode()).hexdigest()[:16]
        mapped = mapped[: room - 17].rstrip("_") + "-" + digest
    return f"{prefix}{mapped}{suffix}", f"{prefix}{mapped}-dlq{suffix}"


def encode_body(data: bytes) -> tuple[str, dict[str, Any]]:
    """The SQS body for the stored bytes ``data`` and the attributes that say how to read it back."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not _INVALID_XML.search(text):
        return text, {}
    return base64.b64encode(data).decode("ascii"), {ENCODING: {"DataType": "String", "StringValue": "base64"}}


def decode_body(body: str, attributes: dict[str, Any]) -> bytes:
    """The stored bytes of a received message (the inverse of :func:`encode_body`)."""
    if attributes.get(ENCODING, {}).get("StringValue") == "base64":
        return base64.b64decode(body)
    return body.encode("utf-8")


def message_size(body: str, attributes: dict[str, Any]) -> int:
    """A message's size as SQS counts it against :data:`MAX_MESSAGE_BYTES`."""
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        size += len(name.encode()) + len(value["DataType"].encode()) + len(str(value["StringValue"]).encode())
    return size


def check_size(queue: str, data: bytes, body: str, attributes: dict[str, Any]) -> None:
    """Refuse an envelope that would not leave room for the driver's attributes, naming the limit."""
    if len(data) > MAX_PAYLOAD_BYTES or message_size(body, attributes) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(
            f"the job for queue {queue!r} is {len(data)} bytes encoded ({message_size(body, attributes)} as an SQS "
            f"message); nestq-sqs carries at most {MAX_PAYLOAD_BYTES} bytes (SQS's 256 KiB message limit less "
            f"{ATTRIBUTE_ROOM} bytes for the driver's attributes): store large data elsewhere and push a reference"
        )
