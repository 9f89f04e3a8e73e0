"""The worker side: :class:`SqsWorker`, the SQS primitives under nestq's worker loop.

``nestq_spec.driverkit.QueueWorker`` runs the loop (concurrency, cancel and grace, dispatch, retry policy,
batched outcomes, heartbeats). Here: long polls that stay in flight across ``receive`` calls (one per queue, never
asking for more messages than there are free slots), deletes in batches of 10, retries as a visibility change,
dead letters re-sent to the dead-letter queue with their error, and lease extension by ``ChangeMessageVisibility``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nestq_spec import Container
from nestq_spec.driverkit import MAX_ERROR_CHARS, Delivery, QueueWorker
from nestq_spec.transport import CancellationToken

from .config import MAX_VISIBILITY_SECONDS, SqsConfig
from .connection import SqsConnection, SqsError
from .wire import ATTEMPTS, ERROR, JOB_ID, MAX_MESSAGE_BYTES, QUEUE, decode_body, encode_body, message_size

__all__ = ["SqsHandle", "SqsWorker"]

log = logging.getLogger("nestq.sqs")


@dataclass(slots=True, frozen=True)
class SqsHandle:
    """What settling a received message needs: its queue URLs, receipt handle, and attempts spent before it."""

    url: str
    dlq_url: str
    receipt: str
    message_id: str
    attempts_before: int
    attributes: dict[str, Any]


class SqsWorker(QueueWorker[SqsHandle]):
    """Receives from the queues the app's ``@process`` methods name."""

    def __init__(self, connection: SqsConnection, config: SqsConfig) -> None:
        super().__init__(
            concurrency=config.concurrency,
            shutdown_grace=config.shutdown_grace,
            retry_policy=config.retry_policy(),
            heartbeat_interval=config.heartbeat_interval,
        )
        self.connection = connection
        self.config = config
        self._polls: dict[str, tuple[asyncio.Task[list[Delivery[SqsHandle]]], int]] = {}
        self._ready: list[Delivery[SqsHandle]] = []
        self._turn = 0
        self._landed = asyncio.Event()

    # ------------------------------------------------------------------------------------------------ receiving

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[SqsHandle]]:
        """Start long polls for up to ``limit`` messages, and return what any poll brought within ``wait`` seconds.

        The polls stay in flight across calls (a message arriving on one queue is not held up by another queue's
        idle poll), and the messages they may still bring always fit the free slots: ready + in flight <= limit.
        """
        self._collect()
        budget = limit - len(self._ready) - sum(n for _, n in self._polls.values())
        idle = [q for q in queues if q not in self._polls]
        if budget > 0 and idle:
            start = self._turn % len(idle)
            self._turn += 1
            for offset in range(len(idle)):
                if budget <= 0:
                    break
                queue = idle[(start + offset) % len(idle)]
                share = min(10, max(1, budget // max(1, len(idle) - offset)))
                self._polls[queue] = (asyncio.ensure_future(self._poll(queue, share)), share)
                budget -= share
        if not self._ready and self._polls:
            self._landed.clear()
            waits = [asyncio.ensure_future(self._landed.wait()), asyncio.ensure_future(self.stopping.wait())]
            try:
                await asyncio.wait([*waits, *(task for task, _ in self._polls.values())], timeout=wait,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
            self._collect()
        batch, self._ready = self._ready[:limit], self._ready[limit:]
        return batch

    def _collect(self) -> None:
        """Move the messages of finished polls to ``_ready``; re-raise the first failure."""
        failure: BaseException | None = None
        for queue, (task, _) in list(self._polls.items()):
            if not task.done():
                continue
            del self._polls[queue]
            if task.cancelled():
                continue
            if (exc := task.exception()) is not None:
                failure = failure or exc
                continue
            self._ready.extend(task.result())
        if failure is not None:
            raise failure

    async def _poll(self, queue: str, limit: int) -> list[Delivery[SqsHandle]]:
        url, dlq_url = await self.connection.queue_urls(queue)
        got = await self.connection.call(
            "receive_message", QueueUrl=url, MaxNumberOfMessages=limit, WaitTimeSeconds=self.config.receive_wait,
            VisibilityTimeout=self.config.lease_seconds, MessageSystemAttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
        out: list[Delivery[SqsHandle]] = []
        for message in got.get("Messages", []):
            attributes = message.get("MessageAttributes", {})
            before = int(attributes.get(ATTEMPTS, {}).get("StringValue", 0))
            received = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
            job_id = attributes.get(JOB_ID, {}).get("StringValue") or message["MessageId"]
            handle = SqsHandle(url, dlq_url, message["ReceiptHandle"], message["MessageId"], before, attributes)
            delivery = Delivery(queue, decode_body(message["Body"], attributes), before + received, job_id, handle)
            if delivery.attempt > self.retry_policy.max_attempts:
                # A job whose earlier attempts ended with no outcome (its worker died): it has run out of attempts.
                await self.dead_letter(delivery, f"attempt {delivery.attempt} is over max_attempts "
                                       f"{self.retry_policy.max_attempts}: earlier attempts ended without an outcome "
                                       "(the worker died or lost its lease)")
                continue
            out.append(delivery)
        self._landed.set()
        return out

    async def serve(self, container: Container, cancel: CancellationToken) -> None:
        """Run the toolkit's loop; then end the polls still in flight and give back what they brought."""
        try:
            await super().serve(container, cancel)
        finally:
            await self._stop_polls()

    async def _stop_polls(self) -> None:
        polls, self._polls = list(self._polls.values()), {}
        for task, _ in polls:
            if not task.done():
                # An idle long poll holds nothing; one cut off as a message arrives leaves it hidden for one
                # visibility timeout, then SQS delivers it again (at-least-once holds).
                task.cancel()
        for task, _ in polls:
            with contextlib.suppress(BaseException):
                self._ready.extend(await task)
        ready, self._ready = self._ready, []
        by_queue: dict[str, list[Delivery[SqsHandle]]] = {}
        for delivery in ready:
            by_queue.setdefault(delivery.queue, []).append(delivery)
        for items in by_queue.values():
            try:
                await self.give_back(items)
            except SqsError as exc:
                log.warning("could not give back %d received job(s) on %s; SQS delivers them again after the "
                            "visibility timeout: %s", len(items), items[0].queue, exc)

    # ------------------------------------------------------------------------------------------------ settling

    async def ack(self, deliveries: Sequence[Delivery[SqsHandle]]) -> None:
        """These jobs (one queue) succeeded: ``DeleteMessageBatch``, 10 per call."""
        await self._batch("delete_message_batch", deliveries, {})

    async def retry(self, delivery: Delivery[SqsHandle], delay: float, error: str) -> None:
        """Hide the message for ``delay`` seconds (rounded up): SQS delivers it again then, counting a receive."""
        await self.connection.call(
            "change_message_visibility", QueueUrl=delivery.handle.url, ReceiptHandle=delivery.handle.receipt,
            VisibilityTimeout=min(MAX_VISIBILITY_SECONDS, math.ceil(delay)),
        )

    async def dead_letter(self, delivery: Delivery[SqsHandle], error: str) -> None:
        """Send the job to the dead-letter queue with its error and attempts, then delete it from its queue."""
        data = delivery.data if isinstance(delivery.data, bytes) else delivery.data.encode()
        body, attributes = encode_body(data)
        attributes[QUEUE] = {"DataType": "String", "StringValue": delivery.queue}
        attributes[ATTEMPTS] = {"DataType": "Number", "StringValue": str(delivery.attempt)}
        attributes[JOB_ID] = {"DataType": "String", "StringValue": delivery.job_id or delivery.handle.message_id}
        attributes[ERROR] = {"DataType": "String", "StringValue": "-"}
        room = MAX_MESSAGE_BYTES - message_size(body, attributes) - 16
        text = (error or "(no error text)")[:MAX_ERROR_CHARS]
        while len(text.encode()) > room and text:
            text = text[: max(0, min(len(text) - 1, room))]
        attributes[ERROR]["StringValue"] = text or "-"
        # On FIFO queues each dead letter is a message group of its own: dead letters need no order, and in one
        # group a listing (which receives them) could see only the first 10 until it let them go.
        group = attributes[JOB_ID]["StringValue"] if self.config.fifo else None
        await self.connection.call(
            "send_message", QueueUrl=delivery.handle.dlq_url, MessageBody=body, MessageAttributes=attributes,
            **self.connection.fifo_fields(delivery.queue, group),
        )
        await self.connection.call("delete_message", QueueUrl=delivery.handle.url,
                                   ReceiptHandle=delivery.handle.receipt)

    async def give_back(self, deliveries: Sequence[Delivery[SqsHandle]]) -> None:
        """Make these jobs due now with the attempt refunded.

        SQS cannot lower a message's receive count, so on a standard queue the job is sent again carrying the
        attempts it had spent before (its id kept), then the received copy is deleted. On a FIFO queue a re-send
        would go behind the rest of its group, so the message is made visible again and the attempt stays
        counted (said in the driver's docs).
        """
        if self.config.fifo:
            await self._batch("change_message_visibility_batch", deliveries, {"VisibilityTimeout": 0})
            return
        for delivery in deliveries:
            data = delivery.data if isinstance(delivery.data, bytes) else delivery.data.encode()
            await self.connection.push_raw(delivery.queue, data, attempts=delivery.attempt - 1,
                                           job_id=delivery.job_id)
        await self._batch("delete_message_batch", deliveries, {})

    async def extend_leases(self, deliveries: Sequence[Delivery[SqsHandle]]) -> None:
        """Push the running jobs' visibility ``visibility_timeout`` seconds ahead, 10 per call."""
        await self._batch("change_message_visibility_batch", deliveries,
                          {"VisibilityTimeout": self.config.lease_seconds})

    async def _batch(self, operation: str, deliveries: Sequence[Delivery[SqsHandle]], fields: dict[str, Any]) -> None:
        """One batch call per 10 messages; entries SQS refused raise (the toolkit tries them again)."""
        started = time.monotonic()
        refused: list[str] = []
        for start in range(0, len(deliveries), 10):
            chunk = deliveries[start:start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": d.handle.receipt, **fields} for i, d in enumerate(chunk)]
            result = await self.connection.call(operation, QueueUrl=chunk[0].handle.url, Entries=entries)
            for failed in result.get("Failed", []):
                delivery = chunk[int(failed["Id"])]
                if failed.get("Code") == "ReceiptHandleIsInvalid":
                    # The lease was lost (the message went to another worker): nothing left to settle here.
                    log.warning("%s for job %s on %s refused, its lease was lost: %s", operation, delivery.job_id,
                                delivery.queue, failed.get("Message", failed.get("Code")))
                    continue
                refused.append(f"{delivery.job_id}: {failed.get('Code')} {failed.get('Message', '')}")
        if refused:
            raise SqsError(f"{operation} refused {len(refused)} message(s) after {time.monotonic() - started:.2f}s: "
                           + "; ".join(refused[:3]))
