"""The Redis driver on Redis Cluster (issue 20): a private cluster of three masters and three replicas.

URLs and their errors; every queue's keys in one slot and queues spread over masters; what spans queues (the
registry, the operator API) with no cross-slot command; WAIT after writes; a clear error when no node answers;
a master killed while 2,000 jobs flow (its replica takes over, 0 lost, duplicates counted); and the whole
conformance suite run on the cluster (``NESTQ_REDIS_CLUSTER=1``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis
from nestq_conformance.report import REPORT_FILES
from nestq_redis import RedisConnection, load_config
from nestq_redis.cli import main
from nestq_redis.cluster import ClusterUnavailableError, NestqRedisCluster, make_cluster_client, parse_cluster_url
from nestq_redis.connection import check_access, make_client
from nestq_redis.harness import _delete_prefix
from nestq_redis.server import PrivateRedisCluster, RedisServer, free_port, node_command
from nestq_redis.store import RedisQueueStore
from nestq_redis_testkit import require_redis_server, until
from redis.exceptions import RedisError

from nestq_spec import ConfigError

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateRedisCluster]:
    """A private 3 + 3 cluster shared by the module's tests that do not kill nodes."""
    require_redis_server()
    with PrivateRedisCluster() as started:
        yield started


@pytest.fixture
def own_cluster() -> Iterator[PrivateRedisCluster]:
    """A private 3 + 3 cluster for one test, which may kill its nodes."""
    require_redis_server()
    with PrivateRedisCluster() as started:
        yield started


def _connection(url: str, prefix: str, **pinned: object) -> RedisConnection:
    return RedisConnection(load_config({"url": url, "key_prefix": prefix, **pinned}))



# --------------------------------------------------------------------------- the private cluster itself


def test_a_node_whose_bus_port_was_taken_meanwhile_starts_on_another_pair() -> None:
    """A port pair taken between the pick and the start moves the node; pairs sit below the ephemeral range."""
    require_redis_server()
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    cluster = PrivateRedisCluster()
    try:
        assert all(node.port + 10000 < low for node in cluster.nodes), [n.port for n in cluster.nodes]
        node = cluster.nodes[0]
        first = node.port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
            squatter.bind(("127.0.0.1", first + 10000))  # another process took the cluster bus port
            squatter.listen()
            cluster._start_node(node)
        assert node.port != first
        assert node_command(node.port, "PING") == "PONG"
    finally:
        cluster.stop()


# --------------------------------------------------------------------------- URLs (no server)


def test_cluster_urls_are_read_and_their_errors_never_show_the_password() -> None:
    parsed = parse_cluster_url("redis+cluster://me:s%2Fcret@10.0.0.1:7000,[::1]:7001,node-c/0")
    assert parsed == {"nodes": [("10.0.0.1", 7000), ("::1", 7001), ("node-c", 6379)], "username": "me",
                      "password": "s/cret", "ssl": False}
    assert parse_cluster_url("rediss+cluster://h:1")["ssl"] is True
    config = load_config({"url": "redis+cluster://:pa/ss#w?rd@h1:7000,h2:7000", "wait_replicas": 1})
    assert "pa/ss" not in repr(config)
    assert config.wait_replicas == 1
    for bad, why in [
        ("redis+cluster://:hunter2@h:7000/3", "only database 0"),
        ("redis+cluster://:hunter2@", "at least one node"),
        ("redis+cluster://:hunter2@h:port", "not a number"),
        ("redis+cluster://:hunter2@h:7000?ssl_cert_reqs=none", "no query string"),
    ]:
        with pytest.raises(ConfigError, match=why) as caught:
            load_config({"url": bad})
        assert "hunter2" not in str(caught.value)


@pytest.mark.asyncio
async def test_no_reachable_node_is_a_clear_connection_error(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis+cluster://:hunter2@127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    conn = _connection(url, "nqt", connect_timeout=0.2)
    try:
        with pytest.raises(ClusterUnavailableError) as caught:
            await conn.push_json("q", {"n": 1})
    finally:
        await conn.aclose()
    text = str(caught.value)
    assert isinstance(caught.value, RedisError)  # the worker's loops back off and retry it, as for one Redis
    assert "no node of the Redis Cluster" in text
    assert "127.0.0.1" in text
    assert "hunter2" not in text


@pytest.mark.asyncio
async def test_a_wrong_password_or_a_server_not_in_cluster_mode_fails_the_boot_check() -> None:
    require_redis_server()
    with RedisServer(extra_args=("--requirepass", "right-one")) as server:
        for url, why in [
            (f"redis+cluster://:hunter2@127.0.0.1:{server.port}", "refused the credentials"),
            (f"redis+cluster://:right-one@127.0.0.1:{server.port}", "not in cluster mode"),
        ]:
            config = load_config({"url": url, "connect_timeout": 1.0})
            client = make_client(config, resend=False)
            try:
                with pytest.raises(ConfigError, match=why) as caught:
                    await check_access(RedisQueueStore(client, prefix="nqt"), config, ["q"])
            finally:
                await client.aclose()
            assert "hunter2" not in str(caught.value)
            assert "right-one" not in str(caught.value)


# --------------------------------------------------------------------------- on a running cluster


@pytest.mark.asyncio
async def test_queues_spread_over_masters_with_no_cross_slot_command(cluster: PrivateRedisCluster) -> None:
    prefix = f"nqt-{uuid.uuid4().hex[:8]}"
    conn = _connection(cluster.url, prefix, wait_replicas=1)
    queues = [f"spread-{i}" for i in range(12)]
    try:
        masters = {cluster.master_of(conn.store.keys(q).jobs).port for q in queues}
        assert len(masters) == 3, "twelve queues should land on all three masters"
        for queue in queues:
            keys = conn.store.keys(queue)
            assert len({cluster.slot_of(k) for k in (*keys.all, keys.batches)}) == 1, f"{queue} spans slots"
            await conn.push_json(queue, {"n": 1})
            await conn.push_many_json(queue, [{"n": i} for i in range(5)])
            await conn.push_json(queue, {"n": "later"}, delay=60)
            await conn.push_json(queue, {"n": "urgent"}, priority=9)
        # The registry and the operator API: every queue, whatever master holds it.
        listed = {q.name: q for q in await conn.admin.queues()}
        assert set(listed) == set(queues)
        assert all((q.ready, q.delayed) == (7, 1) for q in listed.values())
        # Claim, fail to the dead letters, list, redrive: each per queue, each one slot.
        for queue in queues[:3]:
            jobs = await conn.store.claim(queue, limit=2, lease_seconds=10)
            assert next(j.data for j in jobs).find(b"urgent") > 0
            await conn.store.confirm(queue, jobs[0].lease_token, [j.id for j in jobs])
            assert await conn.store.fail(queue, jobs[0].id, jobs[0].lease_token, "boom", retry_in=None,
                                         max_attempts=1) == "dead"
            assert await conn.store.ack(queue, [(jobs[1].id, jobs[1].lease_token)]) == 1
            assert [d.error for d in await conn.admin.dead_letters(queue)] == ["boom"]
            assert await conn.admin.redrive(queue) == 1
            assert (await conn.admin.queue(queue)).ready == 6
            assert await conn.store.sweep(queue, max_attempts=3) == (0, 0)
        client = conn.client
        assert isinstance(client, NestqRedisCluster)
        assert client.unreplicated == 0
    finally:
        await conn.aclose()


@pytest.mark.asyncio
async def test_a_write_waits_for_its_replicas_and_a_shortfall_is_reported(
    cluster: PrivateRedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"nqt-{uuid.uuid4().hex[:8]}"
    # Each master has one replica: WAIT 1 is met, WAIT 2 cannot be (the write stands, a warning says so).
    met = _connection(cluster.url, prefix, wait_replicas=1)
    short = _connection(cluster.url, prefix, wait_replicas=2, wait_timeout=0.05)
    try:
        await met.push_json("waited", {"n": 1})
        assert isinstance(met.client, NestqRedisCluster)
        assert met.client.unreplicated == 0
        with caplog.at_level(logging.WARNING, logger="nestq.redis"):
            await short.push_json("waited", {"n": 2})
        assert isinstance(short.client, NestqRedisCluster)
        assert short.client.unreplicated == 1
        assert "wanted 2 replica(s), it has fewer replicas connected" in caplog.text
        assert (await met.admin.queue("waited")).ready == 2
    finally:
        await met.aclose()
        await short.aclose()


@pytest.mark.asyncio
async def test_a_new_clients_first_commands_go_straight_to_their_slots_master(
    cluster: PrivateRedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No MOVED on a healthy cluster: redis-py alone sends a new client's first command to a random master."""
    from redis.asyncio.cluster import ClusterNode

    original = ClusterNode.execute_command
    redirected: list[str] = []

    async def spy(self: ClusterNode, *args: object, **kwargs: object) -> object:
        try:
            return await original(self, *args, **kwargs)
        except redis.exceptions.MovedError as exc:
            redirected.append(f"{args[0]!s} to {self.name}: MOVED {exc}")
            raise

    monkeypatch.setattr(ClusterNode, "execute_command", spy)
    prefix = f"nqt-{uuid.uuid4().hex[:6]}"
    for n in range(6):  # a fresh client each time: its first command picks the node before any layout is known
        client = make_cluster_client(cluster.url, socket_timeout=5.0, connect_timeout=5.0)
        try:
            assert await client.sadd(f"{{{prefix}-{n}}}:queues", "q") == 1
            await client.delete(f"{{{prefix}-{n}}}:queues")
        finally:
            await client.aclose()
    assert redirected == []


@pytest.mark.asyncio
@pytest.mark.parametrize("durable", [False, True], ids=["plain", "wait_replicas"])
async def test_a_send_that_found_its_connection_closed_by_a_layout_refresh_is_sent_again(
    cluster: PrivateRedisCluster, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    """redis-py's layout refresh can close a connection another command just took; that send is made again.

    Its writer is gone before a byte is written (``AttributeError: 'NoneType' object has no attribute
    'writelines'``), so even the worker's client (``resend=False``, used here) sends it again, twice at most; any
    other AttributeError is raised as it is. The race is injected: it needs a MOVED amid concurrent commands.
    """
    from redis.asyncio.cluster import ClusterNode

    method = "execute_pipeline" if durable else "execute_command"
    original = getattr(ClusterNode, method)
    unsent = "'NoneType' object has no attribute 'writelines'"
    failures: list[str] = []
    raised: list[str] = []

    async def racing(self: ClusterNode, *args: object, **kwargs: object) -> object:
        if failures:
            raised.append(failures.pop(0))
            raise AttributeError(raised[-1])
        return await original(self, *args, **kwargs)

    client = make_cluster_client(cluster.url, socket_timeout=5.0, connect_timeout=5.0, resend=False,
                                 wait_replicas=1 if durable else 0)
    key = f"{{nqt-{uuid.uuid4().hex[:8]}}}:unsent"
    try:
        sha = await client.script_load("return redis.call('INCR', KEYS[1])")
        monkeypatch.setattr(ClusterNode, method, racing)
        failures[:] = [unsent] * 2
        assert await client.evalsha(sha, 1, key) == 1
        assert raised == [unsent] * 2
        failures[:] = [unsent] * 3
        with pytest.raises(AttributeError, match="writelines"):
            await client.evalsha(sha, 1, key)  # three in a row is no passing race: raised
        failures[:] = ["'Thing' object has no attribute 'other'"]
        with pytest.raises(AttributeError, match="other"):
            await client.evalsha(sha, 1, key)
        monkeypatch.undo()
        assert int(await client.get(key)) == 1  # none of the failed sends ran
    finally:
        failures.clear()
        await client.delete(key)
        await client.aclose()


@pytest.mark.asyncio
async def test_clients_follow_a_moved_slot_after_a_manual_failover(own_cluster: PrivateRedisCluster) -> None:
    """A replica promoted by CLUSTER FAILOVER: the old master answers MOVED, and both write paths (plain, and
    with WAIT) follow it on their own, with no error reaching the caller."""
    cluster = own_cluster
    prefix = f"nqt-{uuid.uuid4().hex[:8]}"
    plain = _connection(cluster.url, prefix)
    durable = _connection(cluster.url, prefix, wait_replicas=1)
    worker_client = plain.new_client(resend=False)
    try:
        key = plain.store.keys("moved").jobs
        await plain.push_json("moved", {"n": 1})
        await durable.push_json("moved", {"n": 2})
        old = cluster.master_of(key)
        replica = next(n for n in cluster.nodes if n is not old and _replica_of(n, old))
        assert node_command(replica.port, "CLUSTER", "FAILOVER") == "OK"
        assert await asyncio.to_thread(cluster.wait_failover, key, old) is replica
        await plain.push_json("moved", {"n": 3})
        await durable.push_json("moved", {"n": 4})
        jobs = await RedisQueueStore(worker_client, prefix=prefix).claim("moved", limit=10, lease_seconds=10)
        assert len(jobs) == 4
        assert isinstance(durable.client, NestqRedisCluster)
        assert durable.client.unreplicated == 0
    finally:
        await worker_client.aclose()
        await plain.aclose()
        await durable.aclose()


@pytest.mark.asyncio
async def test_clients_follow_ask_redirections_while_a_queue_slot_migrates(own_cluster: PrivateRedisCluster) -> None:
    """A queue's slot half-way through a resharding (MIGRATING / IMPORTING, its keys already moved): the old master
    answers ASK, and both write paths (plain, and with WAIT) follow it; then the slot is handed over (MOVED)."""
    cluster = own_cluster
    prefix = f"nqt-{uuid.uuid4().hex[:8]}"
    plain = _connection(cluster.url, prefix)
    durable = _connection(cluster.url, prefix, wait_replicas=1)
    try:
        keys = plain.store.keys("asked")
        await plain.push_json("asked", {"n": 1})
        source = cluster.master_of(keys.jobs)
        target = next(n for n in cluster.nodes if n is not source and n.process is not None
                      and "role:master" in node_command(n.port, "INFO", "replication"))
        slot = str(cluster.slot_of(keys.jobs))
        source_id, target_id = (node_command(n.port, "CLUSTER", "MYID") for n in (source, target))
        assert node_command(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id) == "OK"
        assert node_command(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id) == "OK"
        present = [k for k in (*keys.all, keys.batches) if node_command(source.port, "EXISTS", k) == "1"]
        assert present
        assert node_command(source.port, "MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS",
                            *present) == "OK"
        await plain.push_json("asked", {"n": 2})
        await durable.push_json("asked", {"n": 3})
        for node in (target, source):
            assert node_command(node.port, "CLUSTER", "SETSLOT", slot, "NODE", target_id) == "OK"
        await plain.push_json("asked", {"n": 4})
        await durable.push_json("asked", {"n": 5})
        jobs = await durable.store.claim("asked", limit=10, lease_seconds=10)
        assert sorted(json.loads(j.data)["payload"]["n"] for j in jobs) == [1, 2, 3, 4, 5]
        assert cluster.master_of(keys.jobs) is target
    finally:
        await plain.aclose()
        await durable.aclose()


def _replica_of(node: RedisServer, master: RedisServer) -> bool:
    info = node_command(node.port, "INFO", "replication")
    return "role:slave" in info and f"master_port:{master.port}" in info


def test_operator_cli_and_session_cleanup_on_the_cluster(cluster: PrivateRedisCluster,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    prefix = f"nqt-{uuid.uuid4().hex[:8]}"
    queues = [f"ops-{i}" for i in range(6)]

    async def seed() -> None:
        conn = _connection(cluster.url, prefix)
        try:
            for queue in queues:
                await conn.push_many_json(queue, [{"n": 1}, {"n": 2}])
            job = (await conn.store.claim(queues[0], limit=1, lease_seconds=10))[0]
            await conn.store.fail(queues[0], job.id, job.lease_token, "SMTPError: 550", retry_in=None,
                                  max_attempts=1)
        finally:
            await conn.aclose()

    asyncio.run(seed())
    assert main(["--url", cluster.url, "--prefix", prefix, "--json", "queues"]) == 0
    listed = {q["queue"]: (q["ready"], q["dead"]) for q in json.loads(capsys.readouterr().out)}
    assert listed == {q: (1, 1) if q == queues[0] else (2, 0) for q in queues}
    assert main(["--url", cluster.url, "--prefix", prefix, "dead", "list", queues[0]]) == 0
    assert "SMTPError: 550" in capsys.readouterr().out
    # The harness's end-of-session cleanup on a cluster URL scans every master and deletes key by key.
    sync = redis.RedisCluster.from_url(cluster.url.replace("redis+cluster://", "redis://").split(",")[0])
    try:
        assert len(list(sync.scan_iter(match=f"{prefix}:*"))) > len(queues)
        _delete_prefix(cluster.url, prefix)
        assert list(sync.scan_iter(match=f"{prefix}:*")) == []
    finally:
        sync.close()


# --------------------------------------------------------------------------- failover


def _worker_env(url: str, prefix: str, queue: str, results: str, **settings: object) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "NESTQ_REDIS__URL": url,
        "NESTQ_REDIS__KEY_PREFIX": prefix,
        "NESTQ_FAULT_QUEUE": queue,
        "NESTQ_FAULT_RESULTS": results,
        "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p),
    })
    env.update({f"NESTQ_REDIS__{k.upper()}": str(v) for k, v in settings.items()})
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


@pytest.mark.asyncio
async def test_a_killed_master_fails_over_and_no_job_is_lost(own_cluster: PrivateRedisCluster,
                                                               tmp_path: Path) -> None:
    """Kill the master of a busy queue while 2,000 jobs flow: its replica takes over, the workers resume by
    themselves, every job completes; duplicates (allowed: at-least-once) are counted and reported."""
    cluster = own_cluster
    prefix = f"nqt-{uuid.uuid4().hex[:8]}"
    queue = "busy"
    total = 2000
    probe = _connection(cluster.url, prefix)
    victim = cluster.master_of(probe.store.keys(queue).jobs)
    # The completions are counted on another master, which stays up.
    results = next(f"{prefix}:results:{{r{i}}}" for i in range(100)
                   if cluster.master_of(f"{prefix}:results:{{r{i}}}") is not victim)
    await probe.aclose()
    settings = {"concurrency": 10, "claim_batch": 10, "max_attempts": 50, "visibility_timeout": 2.0,
                "heartbeat_interval": 0.5, "poll_timeout": 0.2, "backoff_base": 0.05, "backoff_cap": 0.5,
                "shutdown_grace": 2.0, "wait_replicas": 1, "connect_timeout": 0.5, "socket_timeout": 5.0}
    env = _worker_env(cluster.url, prefix, queue, results, **settings)
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = []
    for log_path in logs:
        with log_path.open("ab") as out:
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "nestq_spec.cli", "run", "redis_fault_app:WorkerApp", "--shutdown-timeout",
                 "10"], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=HERE))
    conn = _connection(cluster.url, prefix, wait_replicas=1, connect_timeout=0.5, socket_timeout=5.0)
    push_retries = 0

    async def counts() -> dict[int, int]:
        try:
            return {int(k): int(v) for k, v in (await conn.client.hgetall(results)).items()}
        except (RedisError, OSError):
            return {}

    async def push(n: int) -> None:
        # A producer's retry: the same job id, so a push whose reply was lost is not stored twice while queued.
        nonlocal push_retries
        deadline = time.monotonic() + 30
        while True:
            try:
                await conn.push_json(queue, {"n": n, "work": 0.002}, job_id=f"job-{n}")
                return
            except (RedisError, OSError):
                push_retries += 1
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    try:
        failover: asyncio.Task[tuple[RedisServer, float]] | None = None
        killed_at = 0.0
        for n in range(total):
            await push(n)
            if n == total // 3:
                # Wait until the workers are busy on this queue, then kill its master (SIGKILL: a crash) and go
                # on pushing: the pushes that fail while no master serves the slot are retried.
                await until(lambda: _at_least(counts, total // 6), 30, "the workers to be busy")
                victim.kill()
                killed_at = time.monotonic()
                failover = asyncio.create_task(asyncio.to_thread(_failover, cluster, conn.store.keys(queue).jobs,
                                                                 victim))
            if n % 100 == 99:
                await asyncio.sleep(0.02)  # a flow, not one burst: the kill lands while jobs are pushed and run
        assert failover is not None
        new, failed_over_at = await failover
        assert new is not victim
        failed_over_in = failed_over_at - killed_at

        async def all_done() -> bool:
            return len(await counts()) == total

        async def missing() -> str:
            done = await counts()
            gone = [n for n in range(total) if n not in done]
            return f"{len(gone)} missing (first {gone[:10]}), {await conn.admin.queue(queue)}"

        await until(all_done, 60, f"all {total} jobs to complete", seen=missing)
        done = await counts()
        duplicates = sum(c - 1 for c in done.values())
        info = await conn.admin.queue(queue)
        for worker, log_path in zip(workers, logs, strict=True):
            assert worker.poll() is None, "a worker process died: " + log_path.read_text()[-3000:]
        print(f"\nfailover: master {victim.port} SIGKILLed mid-run, its replica took over in "
              f"{failed_over_in:.1f}s; "
              f"{total} jobs pushed ({push_retries} push retries), {len(done)} completed, 0 lost, {duplicates} "
              f"duplicate run(s), {info.dead} dead-lettered")
        assert len(done) == total
        assert info.dead == 0
        assert info.pending == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
        await conn.aclose()


def _failover(cluster: PrivateRedisCluster, key: str, victim: RedisServer) -> tuple[RedisServer, float]:
    new = cluster.wait_failover(key, victim)
    return new, time.monotonic()


async def _at_least(counts: Callable[[], Awaitable[dict[int, int]]], n: int) -> bool:
    return len(await counts()) >= n


# --------------------------------------------------------------------------- the whole suite


def test_the_whole_suite_passes_on_a_private_cluster(tmp_path: Path) -> None:
    """``nestq check redis`` with ``NESTQ_REDIS_CLUSTER=1``: every rule passes, none skipped, under 90 s."""
    require_redis_server()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NESTQ_", "PYTEST_"))}
    env.update({"NESTQ_REDIS_CLUSTER": "1", "CI": "true"})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "nestq_spec.cli", "check", "redis", "--report", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    elapsed = time.monotonic() - started
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    report = tmp_path / REPORT_FILES["json"]
    assert report.exists(), f"nestq check wrote no report (exit {result.returncode}):\n{output}"
    data = json.loads(report.read_text())
    assert "private Redis Cluster" in json.dumps(data)
    outcomes = {r["id"]: r["outcome"] for r in data["rules"]}
    assert {k: v for k, v in outcomes.items() if v != "passed"} == {}, output
    assert len(outcomes) >= 60, output
    assert result.returncode == 0, output
    print(f"\nthe whole suite on a private 3+3 Redis Cluster: {len(outcomes)} rules passed in {elapsed:.1f}s "
          "(cluster start and teardown included)")
    # The target is 90 s on an idle machine; NESTQ_TIMEOUT_SCALE stretches it on a slow or loaded one.
    assert elapsed < 90 * float(os.environ.get("NESTQ_TIMEOUT_SCALE", "1")), output
