"""The SQLite driver's harness, filled: what it declares, and its probes (a patch, like the others)."""

from nestq_conformance.capabilities import Capabilities
from nestq_conformance.harness import DeadLetterInfo, DriverHarness, SuiteSettings
from nestq_sqlite.connection import SqliteConnection

from nestq_spec import Container


class SqliteHarness(DriverHarness):
    capabilities = Capabilities(
        durability="durable", delivery="at-least-once", ordering="fifo", retries=True, backoff=True,
        max_attempts=SuiteSettings().max_attempts, dead_letters=True, visibility_timeout=True, cross_process=True,
        max_concurrency=True,
    )

    async def dead_letters(self, container: Container, queue: str) -> list[DeadLetterInfo]:
        db = await container.get(SqliteConnection).client()
        rows = db.execute("SELECT data, error, attempts, id FROM jobs WHERE queue = ? AND dead = 1 ORDER BY id",
                          (queue,))
        return [DeadLetterInfo(data, error, attempts, str(id_)) for data, error, attempts, id_ in rows]

    async def queue_depth(self, container: Container, queue: str) -> int:
        db = await container.get(SqliteConnection).client()
        return int(db.execute("SELECT count(*) FROM jobs WHERE queue = ? AND dead = 0", (queue,)).fetchone()[0])
