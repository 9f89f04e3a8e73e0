"""SCH: delayed jobs and priority: through the driver's own API, as the harness's push_delayed/push_with_priority."""

from __future__ import annotations

import time

from nestq_conformance.kit import Recorder, Scenario
from nestq_conformance.rules import rule


@rule(
    "SCH-001",
    "MUST",
    requires=("delayed_jobs",),
    probes=("push_delayed",),
    hint="store the due time with the job and only make it claimable once due; compare against one clock "
    "(the storage's, or monotonic within a process)",
)
def test_sch_001_delayed_job_not_delivered_early(nq: Scenario) -> None:
    """A delayed job is not delivered before its delay has passed, and is delivered after it."""

    async def scenario() -> None:
        queue = nq.queue()
        delay = nq.seconds(0.3)
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            pushed = time.monotonic()
            await nq.probe("push_delayed", nq.harness.push_delayed(worker.container, queue, {"n": "delayed"}, delay))
            await nq.eventually(lambda: rec.count(queue, {"n": "delayed"}) == 1, "the delayed job",
                                within=delay + nq.timeout, seen=rec.summary)
        waited = rec.of(queue)[0].started - pushed
        assert waited >= delay - 0.002, f"expected the job no sooner than {delay:.3f}s, it came after {waited:.3f}s"

    nq.run(scenario)


@rule(
    "SCH-002",
    "MUST",
    requires=("delayed_jobs",),
    probes=("push_delayed",),
    hint="a job that is not due yet must not occupy a worker slot or the head of the queue",
)
def test_sch_002_delayed_job_does_not_hold_back_others(nq: Scenario) -> None:
    """Jobs pushed after a delayed one (concurrency 1) are delivered before it falls due."""

    async def scenario() -> None:
        queue = nq.queue()
        delay = nq.seconds(1.0)
        one = nq.settings.with_(concurrency=1)
        rec = Recorder()
        async with nq.worker(rec.processor(queue), settings=one) as worker:
            pushed = time.monotonic()
            await nq.probe("push_delayed", nq.harness.push_delayed(worker.container, queue, {"n": "delayed"}, delay))
            for i in range(5):
                await worker.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: set(range(5)) <= set(rec.keys(queue, outcome="ok")),
                                "the 5 immediate jobs", within=delay, seen=rec.summary)
            assert time.monotonic() - pushed < delay, "suite too slow to tell: the delay passed meanwhile"
            await nq.eventually(lambda: rec.count(queue, {"n": "delayed"}) == 1, "the delayed job",
                                within=delay + nq.timeout, seen=rec.summary)

    nq.run(scenario)


@rule(
    "SCH-003",
    "MUST",
    requires=("priority",),
    probes=("push_with_priority",),
    hint="claim the highest priority ready job first (an index ordered by priority then push order, or one "
    "queue per priority level read high to low), for every priority value including 1",
)
def test_sch_003_higher_priority_first(nq: Scenario) -> None:
    """With jobs of mixed priority waiting, one worker at concurrency 1 runs higher priorities first."""

    async def scenario() -> None:
        queue = nq.queue()
        one = nq.settings.with_(concurrency=1)
        async with nq.producer_app(settings=one) as producer_app:
            for i, priority in enumerate([0, 1, 10, 5, 0, 10, 1, 5, 10]):
                payload = {"n": i, "p": priority}
                push = nq.harness.push_with_priority(producer_app.container, queue, payload, priority)
                await nq.probe("push_with_priority", push)
        rec = Recorder()
        async with nq.worker(rec.processor(queue), settings=one):
            await nq.eventually(lambda: rec.count(queue, outcome="ok") == 9, "the 9 jobs", seen=rec.summary)
        seen = rec.keys(queue, "p")
        assert seen == sorted(seen, reverse=True), f"expected priorities high to low, got {seen}"

    nq.run(scenario)


@rule(
    "SCH-004",
    "MUST",
    since="2",
    requires=("delayed_jobs",),
    probes=("push_delayed",),
    hint="an idle worker must wake when the earliest delayed job of any of its queues falls due (a timer or a "
    "poll every poll_interval), not only on a push or at the end of a longer idle wait, and not at the latest due "
    "time of its queues; a storage that schedules in whole seconds must not declare precise_delays",
)
def test_sch_004_idle_worker_wakes_at_the_earliest_due_time(nq: Scenario) -> None:
    """An idle worker on two queues runs a delayed job when it falls due, even when a later one waits on the other."""

    async def scenario() -> None:
        late_queue, soon_queue = nq.queue("late"), nq.queue("soon")
        late, soon = nq.seconds(3.0), nq.seconds(0.2)
        rec = Recorder()
        async with nq.worker(rec.processor(late_queue, soon_queue)) as worker:
            # Both pushed once the worker is idle: only a timer or a poll can wake it for the due times.
            await worker.producer.push_json(soon_queue, {"n": "warm-up"})
            await nq.eventually(lambda: rec.count(soon_queue, outcome="ok") == 1, "a first job", seen=rec.summary)
            pushed = time.monotonic()
            await nq.probe("push_delayed", nq.harness.push_delayed(worker.container, late_queue, {"n": "late"}, late))
            await nq.probe("push_delayed", nq.harness.push_delayed(worker.container, soon_queue, {"n": "soon"}, soon))
            await nq.eventually(lambda: rec.count(soon_queue) == 2, f"the job due in {soon:.2f}s",
                                within=soon + nq.seconds(1.5), seen=rec.summary)
            took = time.monotonic() - pushed
            assert rec.count(late_queue) == 0, f"the job due in {late:.1f}s ran early: {rec.summary()}"
            assert took < late, f"the job due in {soon:.2f}s ran only after {took:.2f}s (the later due time)"
            # When it falls due, not at the next timeout of some unrelated wait: a timer, or a poll every
            # poll_interval, starts it within a poll (plus a scaled margin for a loaded machine). A storage that
            # schedules in whole seconds (precise_delays not declared) may be up to a second late.
            slack = 0.0 if nq.capabilities.precise_delays else 1.0
            allowed = soon + slack + nq.settings.poll_interval + nq.seconds(0.3)
            assert took <= allowed, (
                f"the job due in {soon:.2f}s started only after {took:.2f}s (allowed: {allowed:.2f}s"
                + (", precise_delays declared" if not slack else "")
                + "): the idle worker was not woken when it fell due, only at the end of a longer wait"
            )

    nq.run(scenario)
