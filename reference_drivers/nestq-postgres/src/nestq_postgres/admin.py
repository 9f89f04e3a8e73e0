"""Operator API: queue depths and dead letters (list, show, redrive, purge), over the driver's pool."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["DeadLetter", "PostgresQueueAdmin", "QueueInfo"]


@dataclass(frozen=True)
class QueueInfo:
    """One queue's counts: ready (due now), delayed (due later), running (leased), dead (dead letters)."""

    name: str
    ready: int
    delayed: int
    running: int
    dead: int

    @property
    def pending(self) -> int:
        """Jobs accepted and not finished: ready + delayed + running."""
        return self.ready + self.delayed + self.running


@dataclass(frozen=True)
class DeadLetter:
    """A job that ran out of attempts or failed for good: the stored bytes, the last error, its attempts."""

    id: str
    queue: str
    data: bytes
    error: str
    attempts: int
    failed_at: datetime


def _ids(ids: Sequence[str]) -> list[int]:
    try:
        return [int(i) for i in ids]
    except ValueError:
        raise ValueError(f"dead letter ids are integers, found {list(ids)!r}") from None


class PostgresQueueAdmin:
    """What an operator does with queues; ``connection.admin`` gives one over the driver's pool."""

    def __init__(self, pool: Any, schema: str, channel: str) -> None:
        self.pool = pool
        self.schema = schema
        self.channel = channel

    async def queues(self) -> list[QueueInfo]:
        """Every queue that has jobs or dead letters, by name."""
        s = self.schema
        rows = await self.pool.fetch(
            f"""SELECT queue,
                    count(*) FILTER (WHERE kind = 'ready') AS ready,
                    count(*) FILTER (WHERE kind = 'delayed') AS delayed,
                    count(*) FILTER (WHERE kind = 'running') AS running,
                    count(*) FILTER (WHERE kind = 'dead') AS dead
                FROM (SELECT queue, CASE WHEN lease_until >= now() THEN 'running'
                                         WHEN available_at > now() THEN 'delayed' ELSE 'ready' END AS kind
                      FROM {s}.jobs
                      UNION ALL SELECT queue, 'dead' FROM {s}.dead_letters) AS t
                GROUP BY queue ORDER BY queue"""
        )
        return [QueueInfo(r["queue"], r["ready"], r["delayed"], r["running"], r["dead"]) for r in rows]

    async def queue(self, name: str) -> QueueInfo:
        """One queue's counts (all zero for a queue nobody used)."""
        for info in await self.queues():
            if info.name == name:
                return info
        return QueueInfo(name, 0, 0, 0, 0)

    async def dead_letters(self, queue: str, *, offset: int = 0, limit: int = 50) -> list[DeadLetter]:
        """Dead letters of ``queue``, newest first."""
        rows = await self.pool.fetch(
            f"SELECT id, queue, data, error, attempts, failed_at FROM {self.schema}.dead_letters WHERE queue = $1 "
            "ORDER BY failed_at DESC, id DESC OFFSET $2 LIMIT $3",
            queue, max(0, offset), max(0, limit),
        )
        return [_letter(r) for r in rows]

    async def dead_letter(self, queue: str, letter_id: str) -> DeadLetter | None:
        """One dead letter of ``queue``, or None."""
        row = await self.pool.fetchrow(
            f"SELECT id, queue, data, error, attempts, failed_at FROM {self.schema}.dead_letters "
            "WHERE queue = $1 AND id = $2",
            queue, _ids([letter_id])[0],
        )
        return None if row is None else _letter(row)

    async def redrive(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Move dead letters (``ids``, or all of ``queue``) back to ready with fresh attempts; return how many."""
        s = self.schema
        moved = await self.pool.fetchval(
            f"""WITH gone AS (DELETE FROM {s}.dead_letters WHERE queue = $1 AND ($2::bigint[] IS NULL OR id = ANY($2))
                              RETURNING queue, data, created_at),
                     back AS (INSERT INTO {s}.jobs (queue, data, created_at) SELECT queue, data, created_at FROM gone
                              RETURNING id)
                SELECT count(*) FROM back""",
            queue, None if ids is None else _ids(ids),
        )
        if moved:
            await self.pool.execute("SELECT pg_notify($1, $2)", self.channel, queue)
        return int(moved)

    async def purge_dead(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters (``ids``, or all of ``queue``) for good; return how many."""
        result = await self.pool.execute(
            f"DELETE FROM {self.schema}.dead_letters WHERE queue = $1 AND ($2::bigint[] IS NULL OR id = ANY($2))",
            queue, None if ids is None else _ids(ids),
        )
        return int(str(result).split()[-1])


def _letter(row: Any) -> DeadLetter:
    return DeadLetter(str(row["id"]), row["queue"], bytes(row["data"]), row["error"], row["attempts"],
                      row["failed_at"])
