"""The worker side: :class:`PostgresWorker`, the storage primitives under nestq's worker loop.

``nestq_spec.driverkit.QueueWorker`` runs the loop: concurrency, cancel and shutdown grace, dispatch in the job
context, the retry policy and error text, batched outcomes, heartbeats that extend running jobs' leases. This
class only claims and settles rows.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from nestq_spec import Container
from nestq_spec.driverkit import Delivery, QueueWorker, Wakeup, poll_receive

from .config import PostgresConfig
from .connection import PostgresConnection

__all__ = ["PostgresWorker"]

log = logging.getLogger("nestq_postgres")

Handle = tuple[int, uuid.UUID]
"""A claimed row: its id and the lease token of the claim (settling checks both)."""

_LISTEN_RETRY = 1.0  # seconds between attempts to re-open a lost LISTEN connection (polling covers the gap)

_NO_FLUSH = "(SELECT set_config('synchronous_commit', 'off', true) OFFSET 0) AS nestq_async_commit"
"""A FROM item that turns ``synchronous_commit`` off for the statement's own (implicit) transaction.

The worker's writes (claims, acks, retries, dead letters, give-backs, lease extensions) then commit without waiting
for the WAL flush, which is most of a write's latency with fsync on. At-least-once still holds: pushes flush, and
a write lost in a server crash only puts a job back to run again (a lost claim or ack) or makes it due sooner (a
lost retry delay or extension). A dead letter's move is one statement, so it is lost whole or kept whole. The
setting is transaction-local, so a pooled connection keeps nothing of it. ``OFFSET 0`` keeps the planner from
flattening the subquery away; a row the statement writes is joined to it, so the setting is in force whenever the
statement writes anything.
"""


class PostgresWorker(QueueWorker[Handle]):
    """Claims rows of the queues the app's ``@process`` methods name, and settles them by id and lease token."""

    def __init__(self, connection: PostgresConnection, config: PostgresConfig) -> None:
        super().__init__(
            concurrency=config.concurrency,
            shutdown_grace=config.shutdown_grace,
            retry_policy=config.retry_policy(),
            heartbeat_interval=config.heartbeat_interval,
        )
        self.connection = connection
        self.config = config
        self.wakeup = Wakeup()
        self._queues: frozenset[str] = frozenset()
        self._listener: Any = None
        self._listen_tried = -_LISTEN_RETRY
        s = config.schema
        vt = float(config.visibility_timeout)
        self._vt = vt
        # One statement claims: rows others hold are skipped, expired leases are due again, the attempt is counted.
        self._sql_claim = (
            f"UPDATE {s}.jobs AS j SET lease_token = $3, lease_until = now() + $4 * interval '1 second', "
            "attempts = j.attempts + 1 "
            f"FROM (SELECT id FROM {s}.jobs WHERE queue = ANY($1::text[]) AND available_at <= now() "
            "AND (lease_until IS NULL OR lease_until < now()) ORDER BY priority DESC, id LIMIT $2 "
            f"FOR UPDATE SKIP LOCKED) AS c, {_NO_FLUSH} WHERE j.id = c.id "
            "RETURNING j.id, j.queue, j.data, j.attempts, j.priority"
        )
        self._sql_ack = (
            f"DELETE FROM {s}.jobs AS j USING unnest($1::bigint[], $2::uuid[]) AS u(id, token), {_NO_FLUSH} "
            "WHERE j.id = u.id AND j.lease_token = u.token"
        )
        self._sql_retry = (
            f"UPDATE {s}.jobs SET lease_token = NULL, lease_until = NULL, error = $4, "
            f"available_at = now() + $3 * interval '1 second' FROM {_NO_FLUSH} WHERE id = $1 AND lease_token = $2"
        )
        self._sql_dead = (
            f"WITH gone AS (DELETE FROM {s}.jobs USING {_NO_FLUSH} WHERE id = $1 AND lease_token = $2 "
            "RETURNING id, queue, data, attempts, created_at) "
            f"INSERT INTO {s}.dead_letters (id, queue, data, attempts, error, created_at) "
            "SELECT id, queue, data, attempts, $3, created_at FROM gone"
        )
        self._sql_give_back = (
            f"UPDATE {s}.jobs AS j SET lease_token = NULL, lease_until = NULL, "
            "attempts = greatest(j.attempts - 1, 0) "
            f"FROM unnest($1::bigint[], $2::uuid[]) AS u(id, token), {_NO_FLUSH} "
            "WHERE j.id = u.id AND j.lease_token = u.token"
        )
        self._sql_extend = (
            f"UPDATE {s}.jobs AS j SET lease_until = now() + $3 * interval '1 second' "
            f"FROM unnest($1::bigint[], $2::uuid[]) AS u(id, token), {_NO_FLUSH} "
            "WHERE j.id = u.id AND j.lease_token = u.token"
        )

    async def configure(self, container: Container) -> None:
        """Open the pool now (a wrong DSN or schema version fails at boot), then LISTEN for pushes."""
        await self.connection.client()
        await self._listen()

    async def _listen(self) -> None:
        """Open the LISTEN connection if it is not open; a failure only costs latency (polling goes on)."""
        if self._listener is not None and not self._listener.is_closed():
            return
        now = time.monotonic()
        if now - self._listen_tried < _LISTEN_RETRY:
            return
        self._listen_tried = now
        self._listener = None
        try:
            listener = await asyncpg.connect(self.config.dsn, timeout=self.config.connect_timeout)
            await listener.add_listener(self.connection.channel, self._notified)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.debug("LISTEN %s not open (%s); polling every %ss", self.connection.channel, exc,
                      self.config.poll_interval)
            return
        self._listener = listener
        self.wakeup.notify()  # jobs pushed while nobody listened: claim once now

    def _notified(self, connection: Any, pid: int, channel: str, queue: str) -> None:
        if queue in self._queues:
            self.wakeup.notify()

    async def close(self) -> None:
        """Close the LISTEN connection (the pool belongs to the connection, which the container closes)."""
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            try:
                await listener.close(timeout=5)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                listener.terminate()
        await super().close()

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[Handle]]:
        """Claim with :meth:`claim`, polling every ``poll_interval`` at most, sooner when a push NOTIFYs."""
        self._queues = frozenset(queues)
        await self._listen()
        return await poll_receive(lambda n: self.claim(queues, n), limit, wait, interval=self.config.poll_interval,
                                  wakeup=self.wakeup, stop=self.stopping)

    async def claim(self, queues: Sequence[str], limit: int) -> Sequence[Delivery[Handle]]:
        """Claim up to ``limit`` due rows of ``queues`` in one statement (``FOR UPDATE SKIP LOCKED``)."""
        pool = await self.connection.client()
        token = uuid.uuid4()
        rows = await pool.fetch(self._sql_claim, list(queues), limit, token, self._vt)
        rows = sorted(rows, key=lambda r: (-r["priority"], r["id"]))
        return [Delivery(r["queue"], bytes(r["data"]), r["attempts"], str(r["id"]), (r["id"], token)) for r in rows]

    async def _many(self, sql: str, deliveries: Sequence[Delivery[Handle]], *args: object) -> None:
        ids = [d.handle[0] for d in deliveries]
        tokens = [d.handle[1] for d in deliveries]
        await (await self.connection.client()).execute(sql, ids, tokens, *args)

    async def ack(self, deliveries: Sequence[Delivery[Handle]]) -> None:
        """These jobs succeeded: delete their rows (only while this worker's lease holds them)."""
        await self._many(self._sql_ack, deliveries)

    async def retry(self, delivery: Delivery[Handle], delay: float, error: str) -> None:
        """Release the row, due again in ``delay`` seconds, with the error; its attempt stays counted."""
        row_id, token = delivery.handle
        await (await self.connection.client()).execute(self._sql_retry, row_id, token, float(delay), error)

    async def dead_letter(self, delivery: Delivery[Handle], error: str) -> None:
        """Move the row to the dead letters table with ``error`` and its attempts, in one statement."""
        row_id, token = delivery.handle
        await (await self.connection.client()).execute(self._sql_dead, row_id, token, error)

    async def give_back(self, deliveries: Sequence[Delivery[Handle]]) -> None:
        """The worker stopped mid-job: release the rows, due now, refunding the attempt."""
        await self._many(self._sql_give_back, deliveries)

    async def extend_leases(self, deliveries: Sequence[Delivery[Handle]]) -> None:
        """Push the lease deadline of these running jobs ``visibility_timeout`` seconds ahead."""
        await self._many(self._sql_extend, deliveries, self._vt)
