"""The private RabbitMQ node: a broker restart while jobs flow loses none, and the node dies with its parent.

The node is :class:`nestq_rabbitmq.server.RabbitmqNode` (the one the harness runs DUR-005 on); the shared broker is
never restarted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import counts, wait_for

from nestq_rabbitmq import RabbitmqAdmin, RabbitmqConnection
from nestq_rabbitmq.cli import main
from nestq_rabbitmq.config import load_config
from nestq_rabbitmq.connection import RabbitmqUnavailableError
from nestq_rabbitmq.harness import RabbitmqHarness
from nestq_rabbitmq.server import RabbitmqNode, _group_members, rabbitmq_server_binary

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitmqNode]:
    """One private node for this module's tests (a start costs seconds); missing rabbitmq-server skips, not in CI."""
    if rabbitmq_server_binary() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no rabbitmq-server to run a private node")
        pytest.skip("no rabbitmq-server to run a private node")
    with RabbitmqNode(management=True) as started:
        yield started


def test_a_restart_of_the_node_while_500_jobs_flow_loses_none(node: RabbitmqNode, tmp_path: Path) -> None:
    total, before = 500, 300
    results = tmp_path / "runs.txt"
    queue, prefix = "restart", "nqnode"
    env = dict(os.environ, NESTQ_RABBITMQ__URL=node.url, NESTQ_RABBITMQ__PREFIX=prefix,
               NESTQ_RABBITMQ__MAX_ATTEMPTS="10", NESTQ_RABBITMQ__RECONNECT_INTERVAL="0.1",
               NESTQ_RABBITMQ__RECONNECT_CAP="1.0", NESTQ_FAULT_RESULTS=str(results), NESTQ_FAULT_QUEUE=queue,
               PYTHONPATH=str(HERE))
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "nestq_spec.cli", "run", "fault_app:FaultApp"], env=env,
                                  stdout=out, stderr=subprocess.STDOUT)

    def worker_log() -> str:
        lines = [line for line in log.read_text(errors="replace").splitlines()
                 if "nestq" in line]  # the driver's and the toolkit's own lines, not the client's tracebacks
        return "\n".join(lines[-25:])
    restarts_before = node.starts

    async def scenario() -> None:
        config = load_config({"url": node.url, "prefix": prefix, "push_timeout": 2.0, "reconnect_interval": 0.1,
                              "reconnect_cap": 1.0}, env={})
        producer = RabbitmqConnection(config)
        accepted: list[int] = []
        refused = 0
        try:
            await producer.push_many_json(queue, [{"n": n, "work": 0.005} for n in range(before)])
            accepted.extend(range(before))
            await wait_for(lambda: len(set(counts(results))) >= 100, 60, "100 jobs done before the restart")

            async def keep_pushing() -> None:
                # The rest go in one by one through the restart; a push the broker did not confirm is retried.
                nonlocal refused
                for n in range(before, total):
                    deadline = time.monotonic() + 60
                    while True:
                        try:
                            await producer.push_json(queue, {"n": n, "work": 0.005})
                            accepted.append(n)
                            break
                        except RabbitmqUnavailableError:
                            refused += 1
                            if time.monotonic() > deadline:
                                raise
                    await asyncio.sleep(0.005)

            pushing = asyncio.create_task(keep_pushing())
            await asyncio.to_thread(node.restart)
            await pushing
            assert node.starts == restarts_before + 1
            try:
                await wait_for(lambda: set(accepted) <= set(counts(results)), 60,
                               f"all {len(accepted)} accepted jobs done")
            except AssertionError as exc:
                missing = sorted(set(accepted) - set(counts(results)))
                depth = await RabbitmqAdmin(producer).depth(queue)
                raise AssertionError(f"{exc}: {len(missing)} missing {missing[:20]}; {depth}; restart took "
                                     f"{node.start_seconds[-1]:.1f}s; the worker's log ends with:\n"
                                     f"{worker_log()}") from None
            assert worker.poll() is None, "the worker exited instead of reconnecting"
            lost = set(range(total)) - set(counts(results))
            assert not lost, f"{len(lost)} jobs lost: {sorted(lost)[:20]}"
            depth = await RabbitmqAdmin(producer).depth(queue)
            assert depth.dead == 0, f"{depth.dead} jobs dead-lettered"
            # rabbitmqctl reaches the node with its environment (cookie, epmd); the work queue came back durable.
            listing = (await asyncio.to_thread(node.ctl, "list_queues", "name", "durable")).stdout
            assert f"{prefix}.q.{queue}\ttrue" in listing.splitlines(), listing
            print(f"restart took {node.start_seconds[-1]:.1f}s; pushes refused during it: {refused}")
        finally:
            await producer.aclose()

    try:
        asyncio.run(scenario())
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        assert worker.returncode == 0, worker_log()


def test_depth_through_the_management_api_counts_what_other_processes_hold(
    node: RabbitmqNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    management_url = node.management_url
    assert management_url is not None
    queue, prefix = "mgmt", "nqmgmt"
    env = dict(os.environ, NESTQ_RABBITMQ__URL=node.url, NESTQ_RABBITMQ__PREFIX=prefix,
               NESTQ_FAULT_RESULTS=str(tmp_path / "runs.txt"), NESTQ_FAULT_QUEUE=queue, PYTHONPATH=str(HERE))
    with open(tmp_path / "worker.log", "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "nestq_spec.cli", "run", "fault_app:FaultApp"], env=env,
                                  stdout=out, stderr=subprocess.STDOUT)

    async def scenario() -> None:
        here = RabbitmqConnection(load_config({"url": node.url, "prefix": prefix}, env={}))
        elsewhere = RabbitmqConnection(load_config({"url": node.url, "prefix": prefix}, env={}))
        managed = RabbitmqConnection(load_config({"url": node.url, "prefix": prefix,
                                                  "management_url": management_url}, env={}))
        try:
            await here.push_many_json(queue, [{"n": n, "work": 60} for n in range(3)])  # the worker holds them
            await elsewhere.push_json(queue, {"n": 3}, delay=300)  # a delay queue `here` never declared
            await here.push_json("mgmt-idle", {"n": 4})  # no worker: stays ready
            wanted = {queue: (0, 1, 3, 0), "mgmt-idle": (1, 0, 0, 0)}
            deadline = time.monotonic() + 30
            while True:
                found = {q: await RabbitmqAdmin(managed).depth(q) for q in wanted}
                if all((d.ready, d.delayed, d.held, d.dead) == wanted[q] for q, d in found.items()):
                    break
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise AssertionError(f"management depths {found}, wanted (ready, delayed, held, dead) {wanted}")
                await asyncio.sleep(0.2)  # the API serves the broker's statistics samples (every 0.5 s here)
            plain = await RabbitmqAdmin(here).depth(queue)
            assert (plain.ready, plain.delayed, plain.held) == (0, 0, 0), f"AMQP depth here, holding none: {plain}"
            wrong = RabbitmqConnection(load_config({"url": node.url, "prefix": prefix, "management_url":
                                                    management_url.replace("guest:guest", "guest:wr0ng")}, env={}))
            with pytest.raises(RabbitmqUnavailableError, match="answered 401") as caught:
                await RabbitmqAdmin(wrong).depth(queue)
            assert "wr0ng" not in str(caught.value)
        finally:
            for connection in (here, elsewhere, managed):
                await connection.aclose()

    try:
        asyncio.run(scenario())
        monkeypatch.setenv("NESTQ_RABBITMQ__MANAGEMENT_URL", management_url)
        assert main(["--url", node.url, "--prefix", prefix, "--json", "depth", queue]) == 0
        assert json.loads(capsys.readouterr().out) == [{"queue": queue, "ready": 0, "delayed": 1, "dead": 0,
                                                        "held": 3}]
    finally:
        worker.kill()
        worker.wait(10)


def test_the_harness_runs_storage_restart_rules_on_the_node_and_the_others_on_the_broker(
    node: RabbitmqNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = RabbitmqHarness()
    harness._node = node  # the module's node instead of a second one (a start costs seconds)
    harness.rule_start("DLV-001", frozenset())
    shared = harness.address
    assert shared != node.url
    with pytest.raises(NotImplementedError, match="only the private node"):
        asyncio.run(harness.restart_storage())
    harness.rule_start("DUR-005", frozenset({"storage_restart"}))
    assert harness.address == node.url
    assert harness.subprocess_env()["NESTQ_RABBITMQ__URL"] == node.url
    # DUR-005 restarts through the harness and checks that this identity changes; here only what it reads.
    assert asyncio.run(harness.storage_identity()) == f"{node.nodename} beam.smp pid {node.pid()}"
    assert node.pid() is not None
    harness.rule_start("DLV-002", frozenset({"retries"}))
    assert harness.address == shared
    harness._node = None  # the module fixture closes it


def test_storage_restart_is_declared_only_with_rabbitmq_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTQ_RABBITMQ_SERVER_BIN", "")
    monkeypatch.delenv("CI", raising=False)
    harness = RabbitmqHarness()
    assert harness.capabilities.storage_restart is False
    assert "no rabbitmq-server" in harness.node_plan()[1]
    harness.rule_start("DUR-005", frozenset({"storage_restart"}))
    assert harness._node is None, "a rule started a node without rabbitmq-server"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(RuntimeError, match="CI=true but storage_restart is not declared"):
        _ = harness.capabilities


def test_the_node_goes_with_the_process_that_started_it_even_when_that_one_is_killed() -> None:
    if rabbitmq_server_binary() is None:
        pytest.skip("no rabbitmq-server to run a private node")
    script = ("import os, signal\nfrom nestq_rabbitmq.server import RabbitmqNode\n"
              "node = RabbitmqNode().start()\nprint(node._guard.pid, node.pid(), node.folder, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    group, beam, folder = done.stdout.split()
    try:
        deadline = time.monotonic() + 15
        while members := _group_members(int(group)):
            if time.monotonic() > deadline:
                os.killpg(int(group), signal.SIGKILL)
                raise AssertionError(f"processes {members} (beam.smp {beam}) outlived the killed parent by 15 s")
            time.sleep(0.05)  # polling a process table with a deadline: a non-child's exit sends no signal here
        assert not Path(f"/proc/{beam}/cmdline").exists() or b"beam" not in Path(f"/proc/{beam}/cmdline").read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
