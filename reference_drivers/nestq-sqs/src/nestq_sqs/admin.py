"""The operator API: dead letters (with their error and attempts), queue depths, redrive and purge.

SQS has no "peek": listing a dead-letter queue receives its messages, hiding them for ``hold`` seconds, then makes
them visible again. Two operators listing at once may each see part of it; counts from SQS are approximate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .connection import SqsConnection
from .wire import ATTEMPTS, ERROR, JOB_ID, decode_body

__all__ = ["DeadLetter", "SqsAdmin"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter: the stored envelope bytes, the last error, the attempts it had, its job id."""

    queue: str
    data: bytes
    error: str
    attempts: int
    job_id: str
    receipt: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` output (the envelope as text, or its repr when it is not UTF-8)."""
        try:
            envelope: object = json.loads(self.data)
        except ValueError:
            envelope = self.data.decode("utf-8", "replace")
        return {"queue": self.queue, "job_id": self.job_id, "attempts": self.attempts, "error": self.error,
                "envelope": envelope}


class SqsAdmin:
    """Inspect and repair queues through the driver's connection."""

    def __init__(self, connection: SqsConnection) -> None:
        self.connection = connection

    async def depth(self, queue: str) -> dict[str, int]:
        """Messages waiting, in flight (received, not yet deleted), delayed, and dead letters (approximate)."""
        url, dlq = await self.connection.queue_urls(queue)
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        main = (await self.connection.call("get_queue_attributes", QueueUrl=url, AttributeNames=names))["Attributes"]
        dead = (await self.connection.call("get_queue_attributes", QueueUrl=dlq, AttributeNames=names))["Attributes"]
        return {
            "waiting": int(main.get(names[0], 0)),
            "in_flight": int(main.get(names[1], 0)),
            "delayed": int(main.get(names[2], 0)),
            "dead": sum(int(dead.get(n, 0)) for n in names),
        }

    async def dead_letters(self, queue: str, *, limit: int = 1000, hold: int = 30) -> list[DeadLetter]:
        """The dead letters of ``queue`` (at most ``limit``), left in place.

        A message SQS's redrive policy moved (its worker died on every attempt) carries no error of ours: it is
        shown with that explanation and ``max_attempts`` attempts.
        """
        letters, receipts = await self._take(queue, limit, hold)
        if receipts:
            _, dlq = await self.connection.queue_urls(queue)
            await self._release(dlq, receipts)
        return letters

    async def redrive(self, queue: str, *, limit: int = 1000) -> int:
        """Send dead letters back to ``queue`` as new jobs (attempts start again); return how many moved."""
        letters, _ = await self._take(queue, limit, 60)
        _, dlq = await self.connection.queue_urls(queue)
        for letter in letters:
            await self.connection.push_raw(queue, letter.data, job_id=letter.job_id)
            await self.connection.call("delete_message", QueueUrl=dlq, ReceiptHandle=letter.receipt)
        return len(letters)

    async def purge_dead_letters(self, queue: str) -> None:
        """Delete every dead letter of ``queue`` (SQS allows one purge per queue per 60 s)."""
        _, dlq = await self.connection.queue_urls(queue)
        await self.connection.call("purge_queue", QueueUrl=dlq)

    async def _take(self, queue: str, limit: int, hold: int) -> tuple[list[DeadLetter], list[str]]:
        _, dlq = await self.connection.queue_urls(queue)
        letters: list[DeadLetter] = []
        receipts: list[str] = []
        while len(letters) < limit:
            got = await self.connection.call(
                "receive_message", QueueUrl=dlq, MaxNumberOfMessages=min(10, limit - len(letters)),
                WaitTimeSeconds=0, VisibilityTimeout=hold, MessageAttributeNames=["All"],
            )
            messages = got.get("Messages", [])
            if not messages:
                break
            for message in messages:
                attributes = message.get("MessageAttributes", {})
                receipts.append(message["ReceiptHandle"])
                before = int(attributes.get(ATTEMPTS, {}).get("StringValue", 0))
                if ERROR in attributes:
                    error, attempts = attributes[ERROR]["StringValue"], before
                else:
                    attempts = before + self.connection.config.max_attempts
                    error = (f"moved to the dead-letter queue by SQS's redrive policy after "
                             f"{self.connection.config.max_attempts} receives: no attempt recorded an outcome "
                             "(the worker died or lost its lease each time)")
                letters.append(DeadLetter(
                    queue, decode_body(message["Body"], attributes), error, attempts,
                    attributes.get(JOB_ID, {}).get("StringValue") or message["MessageId"], message["ReceiptHandle"],
                ))
        return letters, receipts

    async def _release(self, url: str, receipts: list[str]) -> None:
        for start in range(0, len(receipts), 10):
            entries = [{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                       for i, r in enumerate(receipts[start:start + 10])]
            await self.connection.call("change_message_visibility_batch", QueueUrl=url, Entries=entries)
