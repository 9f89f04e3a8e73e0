"""The operator API: queue depths and dead letters (list, show, redrive, purge) on a :class:`NatsConnection`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from .connection import NatsConnection
from .layout import HEADER_ATTEMPTS, HEADER_ERROR, HEADER_FAILED_AT, HEADER_JOB_ID, HEADER_QUEUE, queue_of_token

__all__ = ["DeadLetter", "NatsAdmin"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter: its sequence in the dead-letter stream (its id for show/redrive), the job and why it died."""

    seq: int
    queue: str
    job_id: str
    data: bytes
    error: str
    attempts: int
    failed_at: float


class NatsAdmin:
    """Reads and repairs the queues of one stream prefix; every call goes to the server."""

    def __init__(self, connection: NatsConnection) -> None:
        self.connection = connection
        self.layout = connection.layout

    async def depth(self, queue: str) -> int:
        """Jobs of ``queue`` accepted and not finished: ready, waiting out a retry delay, or running."""
        js = await self.connection.jetstream()
        subject = self.layout.subject(queue)
        info = await js.stream_info(self.layout.jobs_stream, subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))

    async def depths(self) -> dict[str, int]:
        """Every queue holding jobs, with its depth (a queue whose name was hashed shows as its token)."""
        return await self._counts(self.layout.jobs_stream, self.layout.jobs_subjects)

    async def dead_counts(self) -> dict[str, int]:
        """Every queue holding dead letters, with their number."""
        return await self._counts(self.layout.dead_stream, self.layout.dead_subjects)

    async def _counts(self, stream: str, subjects: str) -> dict[str, int]:
        js = await self.connection.jetstream()
        info = await js.stream_info(stream, subjects_filter=subjects)
        counts = {}
        for subject, count in (info.state.subjects or {}).items():
            token = subject.rsplit(".", 1)[-1]
            counts[queue_of_token(token) or token] = int(count)
        return dict(sorted(counts.items()))

    async def dead_letters(self, queue: str, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters of ``queue``, oldest first (at most ``limit``)."""
        js = await self.connection.jetstream()
        subject = self.layout.dead_subject(queue)
        info = await js.stream_info(self.layout.dead_stream, subjects_filter=subject)
        total = int((info.state.subjects or {}).get(subject, 0))
        wanted = total if limit is None else min(total, limit)
        if wanted == 0:
            return []
        # An ephemeral consumer reading the subject from the start, without acks: listing changes nothing.
        sub = await js.pull_subscribe(
            subject,
            stream=self.layout.dead_stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL,
                                  inactive_threshold=30.0),
        )
        letters: list[DeadLetter] = []
        try:
            while len(letters) < wanted:
                try:
                    msgs = await sub.fetch(min(256, wanted - len(letters)), timeout=2.0)
                except (nats.errors.TimeoutError, TimeoutError):
                    break  # fewer than counted: some were redriven or purged meanwhile
                for msg in msgs:
                    letters.append(_letter(msg.metadata.sequence.stream, queue, msg.headers or {}, msg.data))
        finally:
            await sub.unsubscribe()
        return letters[:wanted]

    async def show(self, seq: int) -> DeadLetter:
        """One dead letter by its sequence (``LookupError`` when there is none)."""
        js = await self.connection.jetstream()
        try:
            raw = await js.get_msg(self.layout.dead_stream, seq)
        except nats.js.errors.NotFoundError:
            raise LookupError(f"no dead letter {seq} in stream {self.layout.dead_stream}") from None
        headers = dict(raw.headers or {})
        token = (raw.subject or "").rsplit(".", 1)[-1]
        queue = headers.get(HEADER_QUEUE) or queue_of_token(token) or token
        return _letter(seq, queue, headers, raw.data or b"")

    async def _owned(self, seqs: Sequence[int], queue: str | None) -> list[DeadLetter]:
        letters = []
        for seq in seqs:
            try:
                letter = await self.show(seq)
            except LookupError:
                continue  # gone meanwhile (redriven or purged by someone else): nothing to do
            if queue is None or letter.queue == queue:
                letters.append(letter)
        return letters

    async def redrive(self, seqs: Sequence[int], *, queue: str | None = None) -> int:
        """Put these dead letters (of ``queue``, when given) back on their queues as fresh jobs; return how many.

        Each is published to its queue first, then deleted from the dead-letter stream, so a failure in between
        leaves a copy in both places, never in neither. Ids that do not exist (or belong to another queue) are
        skipped. Attempts start again from 1.
        """
        js = await self.connection.jetstream()
        moved = 0
        for letter in await self._owned(seqs, queue):
            seq = letter.seq
            await js.publish(self.layout.subject(letter.queue), letter.data, headers={HEADER_JOB_ID: letter.job_id})
            await js.delete_msg(self.layout.dead_stream, seq)
            moved += 1
        return moved

    async def redrive_all(self, queue: str) -> int:
        """Redrive every dead letter of ``queue``."""
        return await self.redrive([letter.seq for letter in await self.dead_letters(queue)])

    async def delete(self, seqs: Sequence[int], *, queue: str | None = None) -> int:
        """Delete these dead letters (of ``queue``, when given) for good; return how many were deleted."""
        js = await self.connection.jetstream()
        deleted = 0
        for letter in await self._owned(seqs, queue):
            await js.delete_msg(self.layout.dead_stream, letter.seq)
            deleted += 1
        return deleted

    async def purge(self, queue: str) -> int:
        """Delete every dead letter of ``queue``; return how many there were."""
        js = await self.connection.jetstream()
        subject = self.layout.dead_subject(queue)
        info = await js.stream_info(self.layout.dead_stream, subjects_filter=subject)
        count = int((info.state.subjects or {}).get(subject, 0))
        await js.purge_stream(self.layout.dead_stream, subject=subject)
        return count


def _letter(seq: int, queue: str, headers: dict[str, str], data: bytes) -> DeadLetter:
    try:
        error = json.loads(headers.get(HEADER_ERROR, '""'))
    except ValueError:
        error = headers.get(HEADER_ERROR, "")
    try:
        attempts = int(headers.get(HEADER_ATTEMPTS, "0"))
    except ValueError:
        attempts = 0
    try:
        failed_at = float(headers.get(HEADER_FAILED_AT, "0"))
    except ValueError:
        failed_at = 0.0
    return DeadLetter(seq, queue, headers.get(HEADER_JOB_ID, ""), data, str(error), attempts, failed_at)
