"""Markers (1) and (2) filled for SQLite: a patch for ``src/nestq_sqlite/connection.py`` (see ``filling.py``)."""

import sqlite3
from typing import Any

from nestq_spec import JobProducer, validate_queue_name


class SqliteConnection(JobProducer):
    schema = """CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
        data BLOB NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, available_at REAL NOT NULL DEFAULT 0,
        lease_until REAL, lease_token TEXT, dead INTEGER NOT NULL DEFAULT 0, error TEXT)"""

    async def connect(self) -> Any:
        db = sqlite3.connect(self.config.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(self.schema)
        return db

    async def disconnect(self, client: Any) -> None:
        client.close()

    async def push_raw(self, queue: str, data: bytes) -> None:
        validate_queue_name(queue)
        (await self.client()).execute("INSERT INTO jobs (queue, data) VALUES (?, ?)", (queue, data))
