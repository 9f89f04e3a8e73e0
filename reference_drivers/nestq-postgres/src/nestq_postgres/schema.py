"""The queue tables, created and upgraded by numbered migrations (``nestq postgres migrate``).

Every migration runs in one transaction under an advisory lock, so two processes migrating at once apply each
step once; running ``migrate`` again on an up-to-date schema changes nothing. The version table
``<schema>.nestq_schema`` holds one row per applied migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nestq_spec import NestqError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "SchemaVersionError", "migrate", "schema_version"]


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its version, what it does, and its statements (``{s}`` is the schema)."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "jobs and dead letters tables, the claim index",
        (
            # data is bytea: the envelope's exact bytes (jsonb would reorder keys and rewrite numbers).
            # Deletes on every ack leave dead tuples: vacuum this table early and without throttling.
            """CREATE TABLE {s}.jobs (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                queue text NOT NULL,
                data bytea NOT NULL,
                priority integer NOT NULL DEFAULT 0,
                available_at timestamptz NOT NULL DEFAULT now(),
                attempts integer NOT NULL DEFAULT 0,
                lease_token uuid,
                lease_until timestamptz,
                error text,
                created_at timestamptz NOT NULL DEFAULT now()
            ) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0)""",
            "CREATE INDEX jobs_claim ON {s}.jobs (queue, priority DESC, id)",
            """CREATE TABLE {s}.dead_letters (
                id bigint PRIMARY KEY,
                queue text NOT NULL,
                data bytea NOT NULL,
                attempts integer NOT NULL,
                error text NOT NULL,
                created_at timestamptz NOT NULL,
                failed_at timestamptz NOT NULL DEFAULT now()
            )""",
            "CREATE INDEX dead_letters_queue ON {s}.dead_letters (queue, id)",
        ),
    ),
)
"""Every migration, oldest first; versions are 1, 2, ... without gaps."""

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The schema version this driver reads and writes."""


class SchemaVersionError(NestqError):
    """The schema in the database is not the version this driver needs."""


async def schema_version(conn: Any, schema: str) -> int:
    """The version of ``schema`` in the database ``conn`` is on; 0 when it has no queue tables yet."""
    table = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.nestq_schema")
    if table is None:
        return 0
    found = await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {schema}.nestq_schema")
    return int(found)


def check_version(found: int, schema: str) -> None:
    """Raise :class:`SchemaVersionError` naming both versions unless ``found`` is :data:`SCHEMA_VERSION`."""
    if found == SCHEMA_VERSION:
        return
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"PostgreSQL schema {schema!r} has version {found}, newer than version {SCHEMA_VERSION} this "
            "nestq-postgres reads: upgrade nestq-postgres on this machine"
        )
    where = "has no queue tables (version 0)" if found == 0 else f"has version {found}"
    raise SchemaVersionError(
        f"PostgreSQL schema {schema!r} {where}, this nestq-postgres needs version {SCHEMA_VERSION}: run "
        "`nestq postgres migrate` (or set NESTQ_POSTGRES__MIGRATE=true to migrate at boot)"
    )


async def migrate(conn: Any, schema: str) -> tuple[int, int]:
    """Bring ``schema`` to :data:`SCHEMA_VERSION`; return (version before, version after).

    Idempotent and safe to run from several processes at once. A schema newer than this driver is refused.
    """
    async with conn.transaction():
        # One migrator per schema at a time; the lock ends with the transaction.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"nestq-migrate:{schema}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {schema}.nestq_schema (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
        )
        before = await schema_version(conn, schema)
        if before > SCHEMA_VERSION:
            check_version(before, schema)
        for step in MIGRATIONS:
            if step.version <= before:
                continue
            for statement in step.statements:
                await conn.execute(statement.format(s=schema))
            await conn.execute(
                f"INSERT INTO {schema}.nestq_schema (version, description) VALUES ($1, $2)",
                step.version, step.description,
            )
    return before, SCHEMA_VERSION
