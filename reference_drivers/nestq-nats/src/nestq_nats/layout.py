"""Where a queue lives in JetStream: stream names, subjects and consumer names, derived from the settings.

Subjects are dot-separated tokens where ``*`` and ``>`` are wildcards; queue names may hold ``.`` and ``:``. Each
queue name maps to one subject token by an injective escaping (:func:`queue_token`), so ``a.b`` and ``a:b`` never
share a subject, and the token is also a valid consumer name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["HEADER_ATTEMPTS", "HEADER_ERROR", "HEADER_FAILED_AT", "HEADER_JOB_ID", "HEADER_QUEUE", "Layout",
           "queue_of_token", "queue_token"]

HEADER_JOB_ID = "Nestq-Job-Id"
"""The job id when it is not the message's stream sequence: set on re-published copies (give-backs, redrives)."""
HEADER_ATTEMPTS = "Nestq-Attempts"
"""On a job: attempts used by earlier copies (a give-back re-publishes the job); on a dead letter: all attempts."""
HEADER_ERROR = "Nestq-Error"
"""On a dead letter: the last error, JSON-quoted so it stays one header line."""
HEADER_QUEUE = "Nestq-Queue"
"""On a dead letter: the queue it came from."""
HEADER_FAILED_AT = "Nestq-Failed-At"
"""On a dead letter: when it failed for good (Unix seconds)."""

_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_LONGEST_TOKEN = 120  # consumer names longer than this are replaced by a digest (see queue_token)


def queue_token(queue: str) -> str:
    """The subject token (and consumer name part) of ``queue``: injective, ``[A-Za-z0-9_-]`` only.

    Letters, digits and ``-`` stay; ``_`` becomes ``__``; any other character becomes ``_`` and two hex digits of
    each UTF-8 byte (``.`` -> ``_2e``, ``:`` -> ``_3a``). A token that would be longer than 120 characters (consumer
    names must stay short) is ``_h`` and the SHA-256 digest of the name instead: an escaped token never holds
    ``_h`` (after ``_`` comes ``_`` or a hex digit), so the two kinds never meet, and digests are collision-resistant.
    """
    out = []
    for char in queue:
        if char in _PLAIN:
            out.append(char)
        elif char == "_":
            out.append("__")
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode())
    token = "".join(out)
    if len(token) > _LONGEST_TOKEN:
        return "_h" + hashlib.sha256(queue.encode()).hexdigest()
    return token


def queue_of_token(token: str) -> str | None:
    """The queue name a token was made from, or None for a digest token (see :func:`queue_token`)."""
    if token.startswith("_h"):
        return None
    raw = bytearray()
    i = 0
    while i < len(token):
        char = token[i]
        if char != "_":
            raw.extend(char.encode())
            i += 1
        elif token[i + 1 : i + 2] == "_":
            raw.append(ord("_"))
            i += 2
        else:
            raw.append(int(token[i + 1 : i + 3], 16))
            i += 3
    return raw.decode()


@dataclass(frozen=True, slots=True)
class Layout:
    """The stream layout under one prefix: a work-queue stream for jobs and a stream for dead letters."""

    prefix: str

    @property
    def jobs_stream(self) -> str:
        """The work-queue stream holding every queue's jobs until they are acknowledged."""
        return f"{self.prefix}_jobs"

    @property
    def dead_stream(self) -> str:
        """The stream holding dead letters (limits retention: kept until redriven or purged)."""
        return f"{self.prefix}_dead"

    @property
    def jobs_subjects(self) -> str:
        """The jobs stream's subject filter."""
        return f"{self.prefix}.q.*"

    @property
    def dead_subjects(self) -> str:
        """The dead-letter stream's subject filter."""
        return f"{self.prefix}.dead.*"

    def subject(self, queue: str) -> str:
        """The subject ``queue``'s jobs are published on."""
        return f"{self.prefix}.q.{queue_token(queue)}"

    def dead_subject(self, queue: str) -> str:
        """The subject ``queue``'s dead letters are published on."""
        return f"{self.prefix}.dead.{queue_token(queue)}"

    def consumer(self, queue: str) -> str:
        """The durable pull consumer every worker of ``queue`` shares."""
        return f"q-{queue_token(queue)}"
