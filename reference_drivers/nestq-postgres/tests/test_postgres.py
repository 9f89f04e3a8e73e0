"""The driver against a real PostgreSQL (a private cluster with a password): what the suite does not cover.

Transactional enqueue, exact bytes, migrations and version mismatches, bad DSNs, connections killed with
``pg_terminate_backend`` mid-claim, the operator API. The private cluster is this session's alone, so killing its
backends and restarting it touch nobody else.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from nestq_spec import Application, CancellationToken, ConfigError, module, process, processor

from nestq_postgres import PostgresConnection, PostgresQueueModule, PostgresQueueWorkerModule, load_config
from nestq_postgres.connection import PostgresConnectionError
from nestq_postgres.schema import SCHEMA_VERSION, SchemaVersionError, migrate, schema_version
from nestq_postgres.server import PostgresServer, find_bindir

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="session")
def server() -> Iterator[PostgresServer]:
    if find_bindir() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no PostgreSQL server binaries (initdb, pg_ctl) to start a private cluster")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl)")
    started = PostgresServer().start()
    yield started
    started.stop()


@pytest.fixture
def schema() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def settings(server: PostgresServer, schema: str, **more: object) -> dict[str, object]:
    return {"dsn": server.dsn, "schema": schema, "migrate": True, "poll_interval": 0.05,
            "visibility_timeout": 2.0, "heartbeat_interval": 0.3, "backoff_base": 0.01, "backoff_cap": 0.05,
            "shutdown_grace": 1.0, **more}


async def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def serving(root: type[Any]) -> AsyncIterator[Application]:
    app = Application.create(root)
    cancel = CancellationToken()
    task = asyncio.create_task(app.serve(cancel, shutdown_timeout=10))
    try:
        yield app
    finally:
        cancel.cancel()
        await asyncio.wait_for(asyncio.shield(task), 15)
        await app.close()


def worker_app(config: dict[str, object], queue: str, seen: list[int]) -> type[Any]:
    @processor
    class Recorder:
        @process(queue=queue)
        async def handle(self, job: dict[str, Any]) -> None:
            seen.append(int(job["n"]))

    return module(imports=[PostgresQueueModule.for_root(config), PostgresQueueWorkerModule],
                  providers=[Recorder])(type("App", (), {}))


async def test_a_push_inside_a_rolled_back_transaction_leaves_no_job(server: PostgresServer, schema: str) -> None:
    conn = PostgresConnection(load_config(settings(server, schema), env={}))
    try:
        pool = await conn.client()
        async with pool.acquire() as own:
            async with own.transaction():
                await conn.push_json("orders", {"n": 1}, connection=own)
                assert await own.fetchval(f"SELECT count(*) FROM {schema}.jobs") == 1  # visible inside
            # committed: one job
            assert await pool.fetchval(f"SELECT count(*) FROM {schema}.jobs") == 1
            tx = own.transaction()
            await tx.start()
            await conn.push_json("orders", {"n": 2}, connection=own)
            await conn.push_many("orders", [{"n": 3}, {"n": 4}], connection=own)
            await tx.rollback()
        rows = await pool.fetch(f"SELECT data FROM {schema}.jobs")
        assert [bytes(r["data"]) for r in rows] == [b'{"v":1,"payload":{"n":1}}']
    finally:
        await conn.aclose()


async def test_only_the_committed_push_of_a_caller_transaction_runs(server: PostgresServer, schema: str) -> None:
    seen: list[int] = []
    config = settings(server, schema)
    async with serving(worker_app(config, "tx", seen)) as app:
        conn = app.container.get(PostgresConnection)
        pool = await conn.client()
        async with pool.acquire() as own:
            tx = own.transaction()
            await tx.start()
            await conn.push_json("tx", {"n": 1}, connection=own)
            await tx.rollback()
            async with own.transaction():
                await conn.push_json("tx", {"n": 2}, connection=own)
        await eventually(lambda: seen == [2], "the committed job", timeout=10)
        left = -1

        async def count() -> None:
            nonlocal left
            left = await pool.fetchval(f"SELECT count(*) FROM {schema}.jobs")

        deadline = time.monotonic() + 10
        while left != 0 and time.monotonic() < deadline:
            await count()
        assert left == 0, "the job's row was not deleted after it ran (ack)"
        assert seen == [2]


async def test_the_envelope_is_stored_as_its_exact_bytes(server: PostgresServer, schema: str) -> None:
    conn = PostgresConnection(load_config(settings(server, schema), env={}))
    try:
        raw = b'{"v":1,"payload":{"z":1,"a":1.50,"big":12345678901234567890,"dup":1,"dup":2,"e":1E3}}'
        await conn.push_raw("exact", raw)
        stored = await (await conn.client()).fetchval(f"SELECT data FROM {schema}.jobs")
        assert bytes(stored) == raw
    finally:
        await conn.aclose()


async def test_migrations_are_idempotent_and_safe_to_run_at_once(server: PostgresServer, schema: str) -> None:
    conns = [await asyncpg.connect(server.dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c, schema) for c in conns))
        assert sorted(results) == [(0, SCHEMA_VERSION), (SCHEMA_VERSION, SCHEMA_VERSION),
                                   (SCHEMA_VERSION, SCHEMA_VERSION)]
        assert await migrate(conns[0], schema) == (SCHEMA_VERSION, SCHEMA_VERSION)
        assert await schema_version(conns[0], schema) == SCHEMA_VERSION
        assert await conns[0].fetchval(f"SELECT count(*) FROM {schema}.nestq_schema") == SCHEMA_VERSION
    finally:
        for c in conns:
            await c.close()


async def test_an_older_or_newer_schema_fails_naming_both_versions(server: PostgresServer, schema: str) -> None:
    pinned = settings(server, schema, migrate=False)
    conn = PostgresConnection(load_config(pinned, env={}))
    with pytest.raises(SchemaVersionError, match=rf"version 0\).*needs version {SCHEMA_VERSION}.*migrate"):
        await conn.client()
    admin = await asyncpg.connect(server.dsn)
    try:
        await migrate(admin, schema)
        newer = SCHEMA_VERSION + 1
        await admin.execute(f"INSERT INTO {schema}.nestq_schema (version, description) VALUES ($1, 'future')", newer)
        with pytest.raises(SchemaVersionError, match=rf"version {newer}, newer than version {SCHEMA_VERSION}"):
            await PostgresConnection(load_config(pinned, env={})).client()
        with pytest.raises(SchemaVersionError, match=f"version {newer}"):
            await migrate(admin, schema)
    finally:
        await admin.close()
    # A worker app meeting it fails at boot with the same message.
    app = Application.create(worker_app(pinned, "v", []))
    with pytest.raises(SchemaVersionError, match=f"version {SCHEMA_VERSION + 1}"):
        await app.serve(CancellationToken(), shutdown_timeout=1)
    await app.close()


@pytest.mark.parametrize("kind", ["wrong password", "unreachable", "no such database"])
async def test_a_bad_dsn_is_one_clear_error_with_the_password_masked(
    server: PostgresServer, schema: str, kind: str
) -> None:
    secret = "hunter2-" + uuid.uuid4().hex[:6]
    dsn = {
        "wrong password": f"postgresql://postgres:{secret}@127.0.0.1:{server.port}/postgres",
        "unreachable": f"postgresql://postgres:{secret}@127.0.0.1:1/postgres",
        "no such database": f"postgresql://postgres:{server.password}@127.0.0.1:{server.port}/nope_{secret}",
    }[kind]
    expected = {"wrong password": "password", "unreachable": "is PostgreSQL running there",
                "no such database": "does not exist"}[kind]
    conn = PostgresConnection(load_config(settings(server, schema, dsn=dsn, connect_timeout=5), env={}))
    with pytest.raises(PostgresConnectionError) as caught:
        await conn.client()
    message = str(caught.value)
    assert expected in message
    assert "cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1" in message
    assert server.password not in message or kind != "no such database"
    if kind != "no such database":
        assert secret not in message


async def test_a_malformed_dsn_fails_at_boot_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="NESTQ_POSTGRES__DSN") as caught:
        Application.create(module(imports=[PostgresQueueModule.for_root({"dsn": "http://u:topsecret@h/db"})])(
            type("App", (), {})))
    assert "topsecret" not in str(caught.value)


async def test_jobs_survive_connections_killed_mid_claim(server: PostgresServer, schema: str) -> None:
    seen: list[int] = []
    total = 300
    config = settings(server, schema, concurrency=5)
    async with serving(worker_app(config, "kill", seen)) as app:
        conn = app.container.get(PostgresConnection)
        killer = await asyncpg.connect(server.dsn)
        try:
            await conn.push_many("kill", [{"n": n} for n in range(total)])
            killed = 0
            while len(set(seen)) < total and killed < 20:
                # Every other backend: the pool's (claims, acks in flight) and the LISTEN connection.
                killed += await killer.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND datname = current_database()"
                )
                await asyncio.sleep(0.05)
            assert killed > 0
            await eventually(lambda: set(seen) == set(range(total)), f"all {total} jobs after the kills", 60)
            # A handler that ran has its ack written a moment later (retried after a killed connection): wait, with
            # a deadline, for the table to empty rather than read it once.
            deadline = time.monotonic() + 30
            while True:
                left = await killer.fetchval(f"SELECT count(*) FROM {schema}.jobs")
                if not left or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            dead = await killer.fetchval(f"SELECT count(*) FROM {schema}.dead_letters")
            assert (left, dead) == (0, 0), f"{left} job(s) still stored 30 s after every job ran, {dead} dead letter(s)"
        finally:
            await killer.close()


async def test_the_operator_api_lists_redrives_and_purges_dead_letters(server: PostgresServer, schema: str) -> None:
    conn = PostgresConnection(load_config(settings(server, schema), env={}))
    try:
        pool = await conn.client()
        await conn.push_json("ops", {"n": 1})
        await conn.push_json("ops", {"n": 2}, delay=60)
        for n in (3, 4):
            job_id = int(await conn.enqueue("ops", {"n": n}))
            await pool.execute(
                f"WITH g AS (DELETE FROM {schema}.jobs WHERE id = $1 RETURNING *) INSERT INTO {schema}.dead_letters "
                "(id, queue, data, attempts, error, created_at) SELECT id, queue, data, 3, 'boom', created_at FROM g",
                job_id)
        admin = await conn.admin()
        (info,) = await admin.queues()
        assert (info.name, info.ready, info.delayed, info.running, info.dead) == ("ops", 1, 1, 0, 2)
        letters = await admin.dead_letters("ops")
        assert [d.error for d in letters] == ["boom", "boom"]
        assert await admin.dead_letter("ops", letters[0].id) == letters[0]
        assert await admin.redrive("ops", [letters[0].id]) == 1
        assert await admin.purge_dead("ops") == 1
        assert (await admin.queue("ops")).dead == 0
        assert (await admin.queue("ops")).ready == 2
    finally:
        await conn.aclose()


async def test_the_workers_own_writes_commit_without_waiting_for_the_flush_and_pushes_do(
    server: PostgresServer, schema: str
) -> None:
    from nestq_postgres.worker import PostgresWorker

    config = load_config(settings(server, schema), env={})
    conn = PostgresConnection(config)
    worker = PostgresWorker(conn, config)
    try:
        pool = await conn.client()
        await conn.push_json("orders", {"n": 1})
        async with pool.acquire() as own:
            # Each statement as the worker sends it, but inside a transaction of ours, to read the setting it left.
            async with own.transaction():
                await conn.push_json("orders", {"n": 2}, connection=own)
                assert await own.fetchval("SHOW synchronous_commit") == "on", "a push must flush at commit"
            token = uuid.uuid4()
            statements: list[tuple[str, tuple[object, ...] | None]] = [
                (worker._sql_claim, (["orders"], 2, token, 30.0)),
                (worker._sql_extend, None),
                (worker._sql_ack, None),
            ]
            for sql, args in statements:
                async with own.transaction():
                    if args is None:
                        ids = [r["id"] for r in await own.fetch(f"SELECT id FROM {schema}.jobs")]
                        args = (ids, [token] * len(ids)) + ((30.0,) if sql is worker._sql_extend else ())
                    await own.execute(sql, *args)
                    assert await own.fetchval("SHOW synchronous_commit") == "off", sql
                # transaction-local: a pooled connection keeps nothing of it
                assert await own.fetchval("SHOW synchronous_commit") == "on"
        assert await pool.fetchval(f"SELECT count(*) FROM {schema}.jobs") == 0
    finally:
        await conn.aclose()
