"""DUR: durability: crashed workers, long jobs under a lease, jobs that wait for a worker, storage restarts."""

from __future__ import annotations

import time
from typing import Any

from nestq_conformance.kit import Behaviour, Recorder, Scenario, WorkerProcess, duplicates, key_of
from nestq_conformance.rules import rule

BOOT = 20.0
"""Seconds (scaled) a worker process may take to import and boot."""


async def _crash_mid_job(nq: Scenario) -> tuple[dict[str, Any], dict[str, Any], WorkerProcess]:
    """SIGKILL a worker process in the middle of a job; return the job's ``hanging`` and rescued ``finished`` lines."""
    queue = nq.queue()
    doomed = nq.spawn_worker(queue, hang_key="hang", label="doomed")
    await doomed.wait_event(lambda e: e["event"] == "booted", nq.seconds(BOOT), "the first worker process to boot")
    async with nq.producer_app() as producer_app:
        await producer_app.producer.push_json(queue, {"hang": True, "id": queue})
    hanging = await doomed.wait_event(lambda e: e["event"] == "hanging", nq.timeout, "the job to start and hang")
    doomed.kill()
    await doomed.wait_exit(nq.seconds(5.0))
    rescuer = nq.spawn_worker(queue, label="rescuer")
    finished = await rescuer.wait_event(
        lambda e: e["event"] == "finished" and key_of(e["payload"], "id") == queue,
        nq.seconds(BOOT) + nq.settings.visibility_timeout + nq.timeout,
        "the killed worker's job to be redelivered to a new worker process and finish",
    )
    return hanging, finished, rescuer


@rule(
    "DUR-001",
    "MUST",
    requires=("visibility_timeout", "cross_process"),
    hint="a claim must record ownership with a deadline in the storage, and a sweep must return expired claims (or, "
    "on a broker that holds deliveries per connection, ack only after the handler so the broker requeues what a "
    "closed connection held); a claim that removes the job with no lease (a plain pop, a delete, an auto-ack) "
    "loses it when the worker dies",
)
def test_dur_001_killed_worker_job_redelivered(nq: Scenario) -> None:
    """A job whose worker process is SIGKILLed mid-job is redelivered to a new worker (lease expiry or conn. close)."""

    async def scenario() -> None:
        hanging, finished, _ = await _crash_mid_job(nq)
        assert finished["pid"] != hanging["pid"], "suite bug: the rescuer is the killed process"

    nq.run(scenario)


@rule(
    "DUR-002",
    "SHOULD",
    requires=("visibility_timeout", "retries"),
    hint="count the attempt when the job is claimed, not when it fails (a broker that redelivers on connection "
    "close marks the delivery redelivered: count that one): a job that kills its worker every time must still run "
    "out of attempts instead of crash-looping",
)
def test_dur_002_crash_counts_as_an_attempt(nq: Scenario) -> None:
    """The redelivery after a crash is reported as attempt 2 (attempts are counted when a job is claimed)."""

    async def scenario() -> None:
        hanging, finished, _ = await _crash_mid_job(nq)
        assert (hanging["attempt"], finished["attempt"] >= 2) == (1, True), (
            f"expected attempt 1 for the killed run and 2 for the redelivery, saw {hanging['attempt']} then "
            f"{finished['attempt']}"
        )

    nq.run(scenario)


@rule(
    "DUR-003",
    "MUST",
    requires=("visibility_timeout",),
    hint="extend the lease of every running job (a heartbeat every heartbeat_interval) so a job that outlives "
    "the visibility timeout is not handed to another worker while its own worker is alive (a broker that holds "
    "deliveries per connection must not requeue them by time either: RabbitMQ's consumer_timeout)",
)
def test_dur_003_long_job_not_redelivered_while_worker_alive(nq: Scenario) -> None:
    """A job running for 2.5 visibility timeouts in a live worker is not delivered to any other worker meanwhile."""

    async def scenario() -> None:
        queue = nq.queue()
        long = 2.5 * nq.settings.visibility_timeout
        rec = Recorder()
        proc = rec.processor(queue, behaviour=Behaviour(work=long))
        async with nq.worker(proc, label="worker-1"), nq.worker(proc, label="worker-2") as worker:
            await worker.producer.push_json(queue, {"n": 1})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") >= 1, "the long job to finish",
                                within=long + nq.timeout, seen=rec.summary)
            await nq.stays(lambda: rec.count(queue) == 1, nq.quiet_period(), "a single delivery of the long job",
                           seen=rec.summary)

    nq.run(scenario)


@rule(
    "DUR-006",
    "MUST",
    since="2",
    requires=("visibility_timeout",),
    hint="run the heartbeat in a task of its own that extends the lease of every running job; a heartbeat that "
    "rides on the claim loop stops when every slot is busy, and the leases of a live worker expire",
)
def test_dur_006_saturated_worker_keeps_its_leases(nq: Scenario) -> None:
    """A worker with every slot holding a job for 3 visibility timeouts keeps their leases: no job runs twice."""

    async def scenario() -> None:
        queue = nq.queue()
        slots = nq.settings.concurrency
        long = 3 * nq.settings.visibility_timeout
        rec = Recorder()
        proc = rec.processor(queue, behaviour=Behaviour(work=long))
        async with nq.worker(proc, label="saturated") as worker:
            for i in range(slots):
                await worker.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: rec.running == slots, f"all {slots} slots of the first worker busy",
                                seen=rec.summary)
            # A second worker is idle and ready: any lease the first one lets expire hands it a running job.
            async with nq.worker(proc, label="idle"):
                await nq.eventually(lambda: rec.count(queue, outcome="ok") >= slots, f"the {slots} long jobs",
                                    within=long + nq.timeout, seen=rec.summary)
                await nq.stays(lambda: rec.count(queue) == slots, nq.quiet_period(),
                               f"a single delivery of each of the {slots} jobs", seen=rec.summary)
        twice = duplicates(rec.keys(queue))
        assert not twice, f"jobs of a live, saturated worker were delivered again: {twice}; {rec.summary(queue)}"

    nq.run(scenario)


@rule(
    "DUR-004",
    "MUST",
    requires=("durability", "cross_process"),
    hint="a durable driver stores accepted jobs outside the producer's process; check that push_json returns "
    "only after the storage acknowledged the write",
)
def test_dur_004_jobs_wait_for_a_worker_in_another_process(nq: Scenario) -> None:
    """Jobs pushed while no worker runs anywhere are delivered later to a worker in another process."""

    async def scenario() -> None:
        queue = nq.queue()
        async with nq.producer_app() as producer_app:
            for i in range(10):
                await producer_app.producer.push_json(queue, {"n": i})
        proc = nq.spawn_worker(queue)

        def done() -> set[Any]:
            return {key_of(e["payload"]) for e in proc.events() if e["event"] == "finished"}

        await nq.eventually(lambda: done() == set(range(10)), "the 10 jobs stored before any worker ran",
                            within=nq.seconds(BOOT) + nq.timeout, seen=lambda: sorted(done(), key=str))

    nq.run(scenario)


@rule(
    "DUR-005",
    "MUST",
    requires=("storage_restart",),
    probes=("restart_storage", "storage_identity"),
    hint="every storage call in the worker loop must survive a dropped connection (catch, back off for "
    "poll_interval, reconnect) and never exit serve(); jobs must be persisted before push_json returns",
)
def test_dur_005_worker_survives_storage_restart(nq: Scenario) -> None:
    """After the storage restarts, the running worker resumes by itself and every accepted job completes."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue, behaviour=Behaviour(work=0.01))) as worker:
            accepted: list[int] = []
            for i in range(20):
                await worker.producer.push_json(queue, {"n": i})
                accepted.append(i)
            await nq.eventually(lambda: rec.count(queue, outcome="ok") >= 5, "a few jobs before the restart",
                                seen=rec.summary)
            await nq.restart_storage()
            refused: list[str] = []
            for i in range(20, 40):
                deadline = time.monotonic() + nq.timeout
                while True:
                    try:
                        await worker.producer.push_json(queue, {"n": i})
                        accepted.append(i)
                        break
                    except Exception as exc:  # the producer may need a moment to reconnect
                        refused.append(f"{type(exc).__name__}: {str(exc)[:80]}")
                        if time.monotonic() > deadline:
                            break
            await nq.eventually(
                lambda: set(accepted) <= set(rec.keys(queue, outcome="ok")),
                "every accepted job to complete after the storage restart",
                within=nq.timeout + nq.settings.visibility_timeout,
                seen=lambda: f"missing {sorted(set(accepted) - set(rec.keys(queue, outcome='ok')))}; "
                f"pushes refused while reconnecting: {len(refused)} {refused[:3]}",
            )
        assert len(accepted) == 40, f"the producer never recovered after the restart: {refused[-3:]}"

    nq.run(scenario)
