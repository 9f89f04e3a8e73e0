"""DLV: delivery: nothing lost under concurrency, the concurrency bound, FIFO, push/serve order, cross-process."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from nestq_conformance.kit import Behaviour, Gate, Recorder, Scenario, duplicates, key_of
from nestq_conformance.rules import rule

PRODUCERS = 3
JOBS_EACH = 60


async def _many_producers_two_workers(nq: Scenario) -> tuple[Recorder, str, int]:
    """Push PRODUCERS x JOBS_EACH jobs from concurrent producer apps into two concurrent workers."""
    queue = nq.queue()
    rec = Recorder()
    total = PRODUCERS * JOBS_EACH
    proc = rec.processor(queue)
    async with nq.worker(proc, label="worker-1"), nq.worker(proc, label="worker-2"):

        async def produce(p: int) -> None:
            async with nq.producer_app() as producer_app:
                for i in range(JOBS_EACH):
                    await producer_app.producer.push_json(queue, {"n": p * JOBS_EACH + i})
                    if i % 10 == 0:
                        await asyncio.sleep(0)  # interleave the producers

        await asyncio.gather(*(produce(p) for p in range(PRODUCERS)))
        await nq.eventually(
            lambda: len(set(rec.keys(queue, outcome="ok"))) == total,
            f"all {total} jobs from {PRODUCERS} producers",
            seen=lambda: f"{len(set(rec.keys(queue, outcome='ok')))} distinct jobs done; missing "
            f"{sorted(set(range(total)) - set(rec.keys(queue, outcome='ok')))[:20]}; duplicates "
            f"{duplicates(rec.keys(queue))}",
        )
    return rec, queue, total


@rule(
    "DLV-001",
    "MUST",
    hint="look for races between concurrent pushes (a read-modify-write of a shared list), between workers "
    "claiming the same storage (two pops of one item, or one lost), and jobs acked before their handler ran",
)
def test_dlv_001_no_job_lost_with_concurrent_producers_and_workers(nq: Scenario) -> None:
    """Every job from several concurrent producers is delivered to one of two concurrent workers; none is lost."""

    async def scenario() -> None:
        rec, queue, total = await _many_producers_two_workers(nq)
        dups = duplicates(rec.keys(queue))
        assert len(set(rec.keys(queue, outcome="ok"))) == total, (
            f"jobs lost: {sorted(set(range(total)) - set(rec.keys(queue)))[:20]}; duplicates seen: {dups}"
        )

    nq.run(scenario)


@rule(
    "DLV-002",
    "SHOULD",
    hint="a claim must be atomic (one worker wins); duplicates with every worker alive usually mean a "
    "non-atomic pop, a lease shorter than the job, or an ack that did not reach the storage",
)
def test_dlv_002_no_duplicates_while_workers_stay_alive(nq: Scenario) -> None:
    """With every worker alive and no failures, no job is delivered twice (duplicates are counted and shown)."""

    async def scenario() -> None:
        rec, queue, total = await _many_producers_two_workers(nq)
        dups = duplicates(rec.keys(queue))
        assert not dups, f"expected each of {total} jobs once, {len(dups)} were delivered more than once: {dups}"

    nq.run(scenario)


@rule(
    "DLV-003",
    "MUST",
    requires=("max_concurrency",),
    hint="bound running handlers with one semaphore per worker (not per queue or per claim batch), and take it "
    "before claiming, not after",
)
def test_dlv_003_concurrency_bound_never_exceeded(nq: Scenario) -> None:
    """A worker never runs more jobs at once than its configured concurrency, across all its queues."""
    bound = 3

    async def scenario() -> None:
        qa, qb = nq.queue("a"), nq.queue("b")
        settings = nq.settings.with_(concurrency=bound)
        rec = Recorder()
        gate = Gate()
        proc = rec.processor(qa, qb, behaviour=Behaviour(hold=gate))
        async with nq.worker(proc, settings=settings) as worker:
            for i in range(8):
                await worker.producer.push_json(qa, {"n": i})
                await worker.producer.push_json(qb, {"n": 100 + i})
            await nq.eventually(lambda: rec.running >= bound, f"{bound} jobs running", seen=rec.summary)
            await nq.stays(lambda: rec.running <= bound, nq.quiet_period(),
                           f"at most {bound} jobs running while they are held", seen=rec.summary)
            gate.open()
            await nq.eventually(lambda: rec.count(outcome="ok") == 16, "all 16 jobs", seen=rec.summary)
        assert rec.max_running <= bound, (
            f"expected at most {bound} jobs in flight at once, saw {rec.max_running}"
        )

    nq.run(scenario)


@rule(
    "DLV-004",
    "SHOULD",
    requires=("max_concurrency",),
    hint="start up to `concurrency` handlers at once; a worker that awaits each job before claiming the next "
    "ignores its concurrency setting",
)
def test_dlv_004_concurrency_is_used(nq: Scenario) -> None:
    """A worker with concurrency 3 runs three held jobs at the same time."""

    async def scenario() -> None:
        queue = nq.queue()
        settings = nq.settings.with_(concurrency=3)
        rec = Recorder()
        gate = Gate()
        async with nq.worker(rec.processor(queue, behaviour=Behaviour(hold=gate)), settings=settings) as worker:
            for i in range(3):
                await worker.producer.push_json(queue, {"n": i})
            try:
                await nq.eventually(lambda: rec.running == 3, "3 held jobs running at once", seen=rec.summary)
            finally:
                gate.open()

    nq.run(scenario)


@rule(
    "DLV-005",
    "MUST",
    requires=("ordering",),
    hint="with concurrency 1 a FIFO driver must claim in push order and finish each job before the next; check "
    "that the end pushed to is the opposite of the end claimed from, batch claims that reorder, and retries or "
    "returns that requeue at the tail",
)
def test_dlv_005_fifo_with_concurrency_one(nq: Scenario) -> None:
    """With one worker at concurrency 1, jobs of a queue are delivered in push order (pushed before and after serve)."""

    async def scenario() -> None:
        queue = nq.queue()
        one = nq.settings.with_(concurrency=1)
        async with nq.producer_app(settings=one) as producer_app:
            for i in range(30):
                await producer_app.producer.push_json(queue, {"n": i})
        rec = Recorder()
        async with nq.worker(rec.processor(queue), settings=one) as worker:
            for i in range(30, 60):
                await worker.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") >= 60, "60 jobs", seen=rec.summary)
        order = rec.keys(queue)
        assert order == list(range(60)), f"expected jobs 0..59 in push order, got {order}"

    nq.run(scenario)


@rule(
    "DLV-006",
    "MUST",
    hint="jobs stored before any worker runs must be picked up when serve() starts; a worker that only reacts "
    "to notifications sent after it subscribed misses them",
)
def test_dlv_006_push_before_serve(nq: Scenario) -> None:
    """Jobs pushed before any worker serves are all delivered once one starts."""

    async def scenario() -> None:
        queue = nq.queue()
        async with nq.producer_app() as producer_app:
            for i in range(20):
                await producer_app.producer.push_json(queue, {"n": i})
        rec = Recorder()
        async with nq.worker(rec.processor(queue)):
            await nq.eventually(lambda: sorted(set(rec.keys(queue, outcome="ok"))) == list(range(20)),
                                "the 20 jobs pushed before serve", seen=rec.summary)

    nq.run(scenario)


@rule(
    "DLV-007",
    "MUST",
    hint="an idle worker must wake up for a new job: a blocking pop with a finite timeout, a notification, or "
    "a poll every poll_interval; check that the wait is re-armed after it times out",
)
def test_dlv_007_serve_before_push(nq: Scenario) -> None:
    """A worker that went idle (its queue empty) receives jobs pushed afterwards, again and again."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            for i in range(5):
                await worker.producer.push_json(queue, {"n": i})
                job = {"n": i}
                await nq.eventually(lambda job=job: rec.count(queue, job) == 1,  # type: ignore[misc]
                                    f"job {i}, pushed while the worker was idle", seen=rec.summary)
                # Let the worker go back to its idle wait (longer than one poll) before the next push.
                await asyncio.sleep(nq.settings.poll_interval * 2 if i % 2 else 0)

    nq.run(scenario)


@rule(
    "DLV-008",
    "MUST",
    requires=("cross_process",),
    hint="the worker process must reach the same storage: harness.subprocess_env() must carry the storage "
    "location, and the worker module must read it (NESTQ_<NS>__... settings)",
)
def test_dlv_008_cross_process_producer_and_worker(nq: Scenario) -> None:
    """Jobs pushed in this process are delivered to a worker running in another process."""

    async def scenario() -> None:
        queue = nq.queue()
        proc = nq.spawn_worker(queue)
        await proc.wait_event(lambda e: e["event"] == "booted", nq.seconds(20.0), "the worker process to boot")
        async with nq.producer_app() as producer_app:
            for i in range(10):
                await producer_app.producer.push_json(queue, {"n": i})

        def done() -> set[Any]:
            return {key_of(e["payload"]) for e in proc.events() if e["event"] == "finished"}

        await nq.eventually(lambda: done() == set(range(10)), "the 10 jobs finished by the worker process",
                            within=nq.timeout + nq.seconds(5.0), seen=lambda: sorted(done(), key=str))

    nq.run(scenario)


@rule(
    "DLV-009",
    "MUST",
    since="2",
    probes=("queue_depth",),
    hint="remove a job from every running/claimed index when it is acked; a finished job must not stay counted, "
    "and a queue with no job (never pushed to) has depth 0",
)
def test_dlv_009_depth_returns_to_zero(nq: Scenario) -> None:
    """A queue never pushed to has depth 0, and once every job of a queue finished, its depth is back to 0."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            before = await nq.probe("queue_depth", nq.harness.queue_depth(worker.container, queue))
            assert before == 0, f"the depth of {queue}, a queue nothing was ever pushed to, is {before}, not 0"
            for i in range(6):
                await worker.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") == 6, "the 6 jobs", seen=rec.summary)
            await nq.poll(lambda: nq.probe("queue_depth", nq.harness.queue_depth(worker.container, queue)),
                          lambda depth: depth == 0, f"the depth of {queue} to return to 0 after its 6 jobs finished")

    nq.run(scenario)


BACKLOG = 128
"""DLV-010's backlog: enough jobs for two whole stretches over its bound."""
LONGEST_STRETCH = 64
"""The most jobs DLV-010 lets a worker start in a row without the rest of the event loop getting a turn."""


@rule(
    "DLV-010",
    "MUST",
    since="2",
    hint="give the event loop a turn (await asyncio.sleep(0)) every few jobs: claiming a ready job and running a "
    "handler that never awaits do not yield, so a backlog would hold the loop (and the cancel) until it is empty",
)
def test_dlv_010_worker_yields_while_draining_a_backlog(nq: Scenario) -> None:
    """While a worker drains a backlog of handlers that never await, the rest of the event loop still runs."""

    async def scenario() -> None:
        queue = nq.queue()
        async with nq.producer_app() as app:
            # Pushed a few at a time: the order of the backlog does not matter here, and a storage whose every
            # push is a round trip fills it sooner.
            for first in range(0, BACKLOG, 8):
                await asyncio.gather(*(app.producer.push_json(queue, {"n": i}) for i in range(first, first + 8)))
        # The probe is a task that wakes once per job started and counts its turns. Jobs that start without it
        # having had a turn in between ran back to back on a loop that nothing else could use. Waking it per job
        # (instead of spinning on sleep(0)) keeps the CPU free for the storage, which may live in this process.
        turns = 0
        started_at: list[int] = []  # the probe's turn count as each job started, in start order
        nudge = asyncio.Event()

        async def probe() -> None:
            nonlocal turns
            while True:
                await nudge.wait()
                nudge.clear()
                turns += 1

        async def note(delivery: Any) -> None:  # never suspends: the handler stays one that never awaits
            started_at.append(turns)
            nudge.set()

        def longest_stretch() -> int:
            longest = run = 0
            for i, seen in enumerate(started_at):
                run = run + 1 if i and seen == started_at[i - 1] else 1
                longest = max(longest, run)
            return longest

        rec = Recorder()
        counter = asyncio.create_task(probe(), name="nestq-suite-turn-probe")
        try:
            async with nq.worker(rec.processor(queue, behaviour=Behaviour(action=note)),
                                 settings=nq.settings.with_(concurrency=1)):
                await nq.eventually(lambda: rec.count(queue) >= BACKLOG, f"the {BACKLOG} jobs of the backlog",
                                    within=nq.timeout * 3, seen=lambda: rec.summary(limit=2))
        finally:
            counter.cancel()
            await asyncio.gather(counter, return_exceptions=True)
        longest = longest_stretch()
        assert longest <= LONGEST_STRETCH, (
            f"the worker (concurrency 1) started {longest} jobs in a row without the event loop running anything "
            f"else (at most {LONGEST_STRETCH} allowed, of a backlog of {BACKLOG} handlers that never await): it "
            "does not yield while it drains a backlog"
        )

    nq.run(scenario)


@rule(
    "DLV-011",
    "SHOULD",
    since="2",
    hint="wake an idle worker when a job is pushed (a notification, a blocking pop, a long poll that returns on "
    "arrival) or poll at least every poll_interval; check that a push reaches a waiting worker, not only the next "
    "timeout of its wait",
)
def test_dlv_011_idle_worker_starts_a_pushed_job_promptly(nq: Scenario) -> None:
    """An idle worker starts a job pushed to it within poll_interval plus 0.25 s (scaled), in the median of 5 pushes."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        allowed = nq.settings.poll_interval + nq.seconds(0.25)
        latencies: list[float] = []
        async with nq.worker(rec.processor(queue)) as worker:
            await worker.producer.push_json(queue, {"n": "warm-up"})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") == 1, "the warm-up job", seen=rec.summary)
            for i in range(5):
                # Not a synchronisation: the worker stays idle a little (two polls) so the push meets its wait.
                await asyncio.sleep(nq.settings.poll_interval * 2)
                await worker.producer.push_json(queue, {"n": i})
                pushed = time.monotonic()
                job = {"n": i}
                await nq.eventually(lambda job=job: rec.count(queue, job) == 1,  # type: ignore[misc]
                                    f"job {i}, pushed while the worker was idle", seen=rec.summary)
                started = next(d.started for d in rec.of(queue) if d.payload == job)
                latencies.append(max(0.0, started - pushed))
        median = statistics.median(latencies)
        assert median <= allowed, (
            f"an idle worker started a pushed job only after {median:.3f}s (median of 5: "
            f"{', '.join(f'{t:.3f}' for t in latencies)}s), more than poll_interval + 0.25s = {allowed:.3f}s: "
            "a push does not wake the waiting worker, which finds the job only when its wait times out"
        )

    nq.run(scenario)


@rule(
    "DLV-012",
    "SHOULD",
    since="2",
    hint="take turns between a worker's queues (rotate where each receive starts, read them in push order, or "
    "receive from all at once); always reading the queues in the same order lets a busy first queue starve the "
    "others",
)
def test_dlv_012_a_busy_queue_does_not_starve_another(nq: Scenario) -> None:
    """A worker on two queues does not run the jobs pushed to one after the other's were all waiting before them."""

    async def scenario() -> None:
        busy, other = nq.queue("busy"), nq.queue("other")
        backlog = 6
        async with nq.producer_app() as producer_app:
            push = producer_app.producer.push_json
            for i in range(backlog):
                await push(busy, {"n": f"early-{i}"})
            for i in range(backlog):
                await push(other, {"n": i})
            # Pushed after every job of the other queue: a worker that takes turns, or follows push order, runs
            # the other queue's jobs before the last of these.
            for i in range(backlog):
                await push(busy, {"n": f"late-{i}"})
        rec = Recorder()
        one = nq.settings.with_(concurrency=1)
        async with nq.worker(rec.processor(busy, other), settings=one):
            await nq.eventually(lambda: rec.count(outcome="ok") == 3 * backlog, f"the {3 * backlog} jobs",
                                within=3 * nq.timeout, seen=lambda: rec.summary(limit=3))
        order = [d.queue for d in rec.of()]
        last_other = max(i for i, queue in enumerate(order) if queue == other)
        # Counted without regard to the order within a queue (a driver need not be FIFO): starving means every job
        # of the busy queue, those pushed after the other queue's jobs included, ran before the other's last one.
        busy_before = order[:last_other].count(busy)
        assert busy_before < 2 * backlog, (
            f"all {2 * backlog} jobs of {busy}, the {backlog} pushed after every job of {other} included, ran before "
            f"{other}'s last job (at position {last_other + 1} of {len(order)}): the worker does not take turns "
            "between its queues"
        )

    nq.run(scenario)
