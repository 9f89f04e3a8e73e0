"""Faults against the real broker: SIGKILLed workers, a connection closed by the broker, pushes during an outage.

The shared broker is never restarted: a lost connection is the broker closing it (``rabbitmqctl
close_connection``) or a TCP proxy cutting the link.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from nestq_redis.server import LinkProxy
from nestq_spec import Application, CancellationToken, module, process, processor
from support import counts, wait_for

from nestq_rabbitmq import RabbitmqAdmin, RabbitmqConnection, RabbitmqQueueModule, RabbitmqQueueWorkerModule
from nestq_rabbitmq.config import load_config
from nestq_rabbitmq.connection import RabbitmqUnavailableError
from nestq_rabbitmq.harness import rabbitmqctl

HERE = Path(__file__).parent


def _spawn(url: str, results: Path, queue: str, prefix: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NESTQ_RABBITMQ__URL=url, NESTQ_RABBITMQ__PREFIX=prefix, NESTQ_RABBITMQ__MAX_ATTEMPTS="10",
               NESTQ_FAULT_RESULTS=str(results), NESTQ_FAULT_QUEUE=queue, PYTHONPATH=str(HERE))
    return subprocess.Popen([sys.executable, "-m", "nestq_spec.cli", "run", "fault_app:FaultApp"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_workers_sigkilled_five_times_during_2000_jobs_lose_none(vhost_url: str, tmp_path: Path) -> None:
    total, kills = 2000, 5
    results = tmp_path / "runs.txt"
    queue, prefix = "sigkill", "nqfault"

    async def scenario() -> None:
        config = load_config({"url": vhost_url, "prefix": prefix, "max_attempts": 10})  # as the workers read it
        producer = RabbitmqConnection(config)
        try:
            await producer.push_many_json(queue, [{"n": n, "work": 0.002} for n in range(total)])
            for k in range(kills):
                worker = _spawn(vhost_url, results, queue, prefix)
                target = (k + 1) * total // (kills + 2)
                await wait_for(lambda: len(counts(results)) >= target, 60,  # noqa: B023 - awaited here, in this iteration
                               f"{target} jobs done (kill {k + 1})")
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
            last = _spawn(vhost_url, results, queue, prefix)
            try:
                await wait_for(lambda: len(counts(results)) >= total, 120, f"all {total} jobs done")
            finally:
                last.send_signal(signal.SIGTERM)
                last.wait(30)
            runs = counts(results)
            lost = set(range(total)) - set(runs)
            assert not lost, f"{len(lost)} jobs lost: {sorted(lost)[:20]}"
            depth = await RabbitmqAdmin(producer).depth(queue)
            assert depth.dead == 0, f"{depth.dead} jobs dead-lettered"
        finally:
            await producer.aclose()

    asyncio.run(scenario())


def _worker_connections(vhost: str) -> list[str]:
    done = rabbitmqctl("list_connections", "pid", "vhost", "client_properties")
    assert done is not None
    return [line.split("\t")[0] for line in done.stdout.splitlines()
            if f"\t{vhost}\t" in line and "nestq-worker" in line]


def test_a_worker_whose_connection_the_broker_closes_reconnects_and_loses_nothing(
    vhost_url: str, ctl: bool
) -> None:
    if not ctl:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but rabbitmqctl cannot administer the broker: cannot close the worker's connection")
        pytest.skip("rabbitmqctl cannot administer the broker (needed to close the worker's connection)")
    vhost = vhost_url.rsplit("/", 1)[1]
    queue = "closed-mid-job"
    runs: Counter[int] = Counter()

    async def scenario() -> None:
        first_started = asyncio.Event()

        @processor
        class Slow:
            @process(queue=queue)
            async def handle(self, job: dict[str, Any]) -> None:
                first_started.set()
                await asyncio.sleep(float(job["work"]))
                runs[int(job["n"])] += 1

        @module(imports=[RabbitmqQueueModule.for_root({"url": vhost_url, "reconnect_interval": 0.2}),
                         RabbitmqQueueWorkerModule], providers=[Slow])
        class App:
            pass

        app = Application.create(App)
        cancel = CancellationToken()
        serving = asyncio.create_task(app.serve(cancel))
        try:
            producer = app.container.get(RabbitmqConnection)
            for n in range(20):
                await producer.push_json(queue, {"n": n, "work": 0.5})
            await asyncio.wait_for(first_started.wait(), 10)
            pids = _worker_connections(vhost)
            assert len(pids) == 1, f"expected one worker connection in {vhost}, found {pids}"
            assert rabbitmqctl("close_connection", pids[0], "nestq fault test") is not None
            await wait_for(lambda: len(_worker_connections(vhost)) == 1 and _worker_connections(vhost) != pids, 30,
                            "the worker to reconnect by itself")
            for n in range(20, 25):
                await producer.push_json(queue, {"n": n, "work": 0.0})
            await wait_for(lambda: set(runs) >= set(range(25)), 60, "all 25 jobs, before and after the close")
            depth = await RabbitmqAdmin(producer).depth(queue)
            assert depth.dead == 0
        finally:
            cancel.cancel()
            await serving
            await app.close()

    asyncio.run(scenario())


def test_a_push_while_the_connection_is_down_fails_within_push_timeout_then_works_again(broker_url: str) -> None:
    port = int(broker_url.split("@")[-1].split(":")[1].split("/")[0]) if "@" in broker_url else 5672

    async def scenario() -> None:
        async with LinkProxy(port) as proxy:
            url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
            config = load_config({"url": url, "push_timeout": 1.0, "reconnect_interval": 0.1, "prefix": "nqcut"},
                                 env={})
            producer = RabbitmqConnection(config)
            try:
                await producer.push_json("cut", {"n": 0})
                proxy.cut()
                began = time.monotonic()
                with pytest.raises(RabbitmqUnavailableError, match="was not confirmed") as caught:
                    await producer.push_json("cut", {"n": 1})
                took = time.monotonic() - began
                assert took < 3.0, f"the push during the outage took {took:.1f}s, push_timeout is 1s"
                assert "guest:guest" not in str(caught.value)
                proxy.restore()
                await asyncio.wait_for(producer.push_json("cut", {"n": 2}), 10)  # reconnected by itself
                admin = RabbitmqAdmin(producer)
                assert (await admin.depth("cut")).ready >= 2
            finally:
                channel = await (await producer.connection()).channel()
                for name in ("nqcut.q.cut", "nqcut.dead.cut"):
                    await channel.queue_delete(name)
                await producer.aclose()

    asyncio.run(scenario())


class _CountingProxy(LinkProxy):
    """A :class:`LinkProxy` that notes when each connection it refuses (while cut) arrived."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.refused: list[float] = []

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused.append(time.monotonic())
        await super()._accept(reader, writer)


def test_reconnection_attempts_back_off_while_the_broker_stays_away(broker_url: str) -> None:
    port = int(broker_url.split("@")[-1].split(":")[1].split("/")[0]) if "@" in broker_url else 5672
    # 9 attempts: with the lowest jitter (0.5) the pauses grow by 1.5x each, and 8 of them still sum to ~1.65 s
    # (7 attempts gave ~0.7 s, too close to a fixed pause's 0.6 s to tell them apart, and failed 1 run in 9).
    base, cap, attempts = 0.1, 1.0, 9
    prefix = f"nqback{os.getpid()}x{int(time.time())}"  # a run cut short leaves nothing a later run would count

    async def scenario() -> None:
        proxy = _CountingProxy(port)
        async with proxy:
            url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
            config = load_config({"url": url, "reconnect_interval": base, "reconnect_cap": cap, "prefix": prefix},
                                 env={})
            producer = RabbitmqConnection(config)
            try:
                await producer.push_json("back", {"n": 0})
                proxy.cut()
                await wait_for(lambda: len(proxy.refused) >= attempts, 30,
                                f"{attempts} reconnection attempts while the link is cut")
                gaps = [b - a for a, b in zip(proxy.refused, proxy.refused[1:attempts], strict=False)]
                # A fixed pause of `base` would put these attempts ~0.8 s apart in all; growing pauses (at least
                # half the outage so far, after jitter) need about twice that.
                assert sum(gaps) > 12 * base, f"attempts were not backing off: gaps {gaps}"
                assert max(gaps) <= cap + 0.5, f"a pause exceeded reconnect_cap={cap}: gaps {gaps}"
                assert gaps[-1] > gaps[0], f"pauses did not grow: gaps {gaps}"
                proxy.restore()
                await asyncio.wait_for(producer.push_json("back", {"n": 1}), cap + 10)  # reconnected by itself
                assert (await RabbitmqAdmin(producer).depth("back")).ready == 2
            finally:
                proxy.restore()
                channel = await (await producer.connection()).channel()
                for name in (f"{prefix}.q.back", f"{prefix}.dead.back"):
                    await channel.queue_delete(name)
                await producer.aclose()

    asyncio.run(scenario())
