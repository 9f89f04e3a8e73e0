"""Markers (3) and (5) of the template, filled: a patch for ``src/nestq_fill/worker.py``."""

from __future__ import annotations

from nestq_fill.worker import JobInterrupted, Received, error_text

from nestq_spec import Transport, is_retryable


class FillWorker(Transport):
    async def receive(self, queue: str, max_wait: float) -> Received | None:
        """Take the oldest ready job of ``queue``, waiting at most ``max_wait`` seconds."""
        message = await self.connection.store.take(queue, max_wait)
        if message is None:
            return None
        return Received(queue, message.data, message.attempt, message.job_id, receipt=message)

    async def settle(self, received: Received, error: BaseException | None) -> None:
        """Ack a success; retry a retryable failure with backoff; give back an interrupted job; else dead-letter."""
        store = self.connection.store
        if error is None:
            store.ack(received.queue)
        elif isinstance(error, JobInterrupted):
            store.give_back(received.queue, received.receipt)
        elif is_retryable(error) and received.attempt < self.config.max_attempts:
            store.retry(received.queue, received.receipt, self.config.backoff(received.attempt))
        else:
            store.dead_letter(received.queue, received.receipt, error_text(error))
