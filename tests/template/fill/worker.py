"""Markers (3) to (8) filled for SQLite: a patch for ``src/nestq_sqlite/worker.py``: rows leased with a deadline."""

import time
import uuid
from collections.abc import Sequence
from typing import Any

from nestq_spec.driverkit import Delivery, QueueWorker


class SqliteWorker(QueueWorker[Any]):
    async def claim(self, queues: Sequence[str], limit: int) -> Sequence[Delivery[Any]]:
        db, now, token = await self.connection.client(), time.time(), uuid.uuid4().hex
        db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes: a row is claimed once
        try:
            rows = db.execute(
                f"SELECT id, queue, data, attempts FROM jobs WHERE queue IN ({','.join('?' * len(queues))})"
                " AND dead = 0 AND available_at <= ? AND (lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?",
                (*queues, now, now, limit)).fetchall()
            db.executemany("UPDATE jobs SET lease_until = ?, lease_token = ?, attempts = attempts + 1 WHERE id = ?",
                           [(now + self.config.visibility_timeout, token, row[0]) for row in rows])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return [Delivery(queue, data, attempts + 1, str(id_), (id_, token)) for id_, queue, data, attempts in rows]

    async def _update(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        (await self.connection.client()).executemany(f"{sql} WHERE id = ? AND lease_token = ?", rows)

    async def ack(self, deliveries: Sequence[Delivery[Any]]) -> None:
        await self._update("DELETE FROM jobs", [d.handle for d in deliveries])

    async def retry(self, delivery: Delivery[Any], delay: float, error: str) -> None:
        await self._update("UPDATE jobs SET lease_until = NULL, available_at = ?, error = ?",
                           [(time.time() + delay, error, *delivery.handle)])

    async def dead_letter(self, delivery: Delivery[Any], error: str) -> None:
        await self._update("UPDATE jobs SET lease_until = NULL, dead = 1, error = ?", [(error, *delivery.handle)])

    async def give_back(self, deliveries: Sequence[Delivery[Any]]) -> None:
        await self._update("UPDATE jobs SET lease_until = NULL, attempts = attempts - 1",
                           [d.handle for d in deliveries])

    async def extend_leases(self, deliveries: Sequence[Delivery[Any]]) -> None:
        until = time.time() + self.config.visibility_timeout
        await self._update("UPDATE jobs SET lease_until = ?", [(until, *d.handle) for d in deliveries])
