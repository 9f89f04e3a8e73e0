"""DSP: dispatch: only reachable processors run, every method of a queue gets each job, partial failures."""

from __future__ import annotations

from nestq_conformance.kit import Behaviour, Recorder, Scenario, key_of
from nestq_conformance.rules import rule


@rule(
    "DSP-001",
    "MUST",
    hint="build the routes with routes(container) (it filters by container.reachable); iterating inventory() "
    "directly runs processors that were imported but not listed in any module of the app",
)
def test_dsp_001_only_reachable_processors_run(nq: Scenario) -> None:
    """A processor that is imported but not listed in the app's modules never runs, nor takes its queue's jobs."""

    async def scenario() -> None:
        listed_q, unlisted_q = nq.queue("listed"), nq.queue("unlisted")
        listed, unlisted = Recorder(), Recorder()
        in_app = listed.processor(listed_q, name="Listed")
        # Registered in the inventory, absent from the app: one on the app's queue, one on a queue of its own.
        unlisted.processor(listed_q, unlisted_q, name="Unlisted")
        async with nq.worker(in_app) as worker:
            await worker.producer.push_json(unlisted_q, {"n": "unlisted"})
            await worker.producer.push_json(listed_q, {"n": 1})
            await nq.eventually(lambda: listed.count(listed_q, outcome="ok") == 1, "the listed processor's run",
                                seen=listed.summary)
            await nq.stays(lambda: unlisted.count() == 0, nq.quiet_period(), "no run of the unlisted processor",
                           seen=unlisted.summary)
        assert listed.attempts({"n": 1}) == [1], f"expected one clean run of the job, saw {listed.summary()}"
        # The app that lists a processor for the other queue finds its job untouched: never claimed, never failed.
        later = Recorder()
        async with nq.worker(later.processor(unlisted_q), label="worker-listing-it"):
            await nq.eventually(lambda: later.count(unlisted_q) == 1, f"the job left on {unlisted_q}",
                                seen=later.summary)
        assert later.attempts({"n": "unlisted"}) == [1], (
            f"the job of a queue no listed processor serves was attempted before: {later.summary()}"
        )

    nq.run(scenario)


@rule(
    "DSP-002",
    "MUST",
    hint="hand each envelope to dispatch(methods, ...) with every method routes() lists for its queue, not just "
    "the first (several classes, and several methods of one class, may share a queue)",
)
def test_dsp_002_every_method_of_a_queue_receives_the_job(nq: Scenario) -> None:
    """Every method registered on a queue (two in one class, one in another) receives each job once."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        first = rec.processor(queue, methods=2, name="TwoMethods")
        second = rec.processor(queue, name="OneMethod")
        async with nq.worker(first, second) as worker:
            for i in range(3):
                await worker.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") >= 9, "3 jobs x 3 methods", seen=rec.summary)
        runs: dict[str, list[int]] = {}
        for d in rec.of(queue):
            runs.setdefault(d.method, []).append(key_of(d.payload))
        assert sorted(sorted(v) for v in runs.values()) == [[0, 1, 2]] * 3, (
            f"expected each of 3 methods to receive jobs 0, 1, 2 once; got {runs}"
        )

    nq.run(scenario)


@rule(
    "DSP-003",
    "MUST",
    hint="use dispatch() from nestq_spec (it runs every method even after one raised) instead of a loop that "
    "stops at the first exception",
)
def test_dsp_003_failing_method_does_not_stop_the_others(nq: Scenario) -> None:
    """When one method of a queue raises, the queue's other methods still run for that job."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        failing = rec.processor(queue, behaviour=Behaviour(fail_always=True, non_retryable=True), name="Fails")
        fine = rec.processor(queue, name="Fine")
        async with nq.worker(failing, fine) as worker:
            await worker.producer.push_json(queue, {"n": 1})
            await nq.eventually(
                lambda: rec.count(queue, outcome="ok") >= 1 and rec.count(queue) >= 2,
                "both methods to run for the job",
                seen=rec.summary,
            )

    nq.run(scenario)


@rule(
    "DSP-004",
    "MUST",
    requires=("retries",),
    hint="a job fails as a whole when any method fails (dispatch raises): retry the whole job, which runs every "
    "method again, rather than retrying only the method that failed",
)
def test_dsp_004_partial_failure_retries_every_method(nq: Scenario) -> None:
    """A job where one method failed is retried as a whole: every method runs again with attempt 2."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        flaky = rec.processor(queue, behaviour=Behaviour(fail_first=1), name="FailsOnce")
        steady = rec.processor(queue, name="Steady")
        async with nq.worker(flaky, steady) as worker:
            await worker.producer.push_json(queue, {"n": 1})
            await nq.eventually(lambda: rec.count(queue) >= 4, "two methods x two attempts", seen=rec.summary)
        by_method: dict[str, list[int]] = {}
        for d in rec.of(queue):
            by_method.setdefault(d.method.split(".")[0], []).append(d.attempt)
        assert sorted(by_method.values()) == [[1, 2], [1, 2]], (
            f"expected both methods to run on attempts 1 and 2; got {by_method}"
        )

    nq.run(scenario)


@rule(
    "DSP-005",
    "MUST",
    hint="a worker must only take jobs from the queues routes(container) names; taking (and dropping) jobs of "
    "other queues loses them for the worker that has their processor",
)
def test_dsp_005_worker_consumes_only_its_queues(nq: Scenario) -> None:
    """A worker takes jobs only from queues its processors name; other queues' jobs wait for their own worker."""

    async def scenario() -> None:
        mine, other = nq.queue("mine"), nq.queue("other")
        rec = Recorder()
        async with nq.worker(rec.processor(mine), label="worker-without-other") as worker:
            await worker.producer.push_json(other, {"n": "for-other"})
            await worker.producer.push_json(mine, {"n": "mine"})
            await nq.eventually(lambda: rec.count(mine) == 1, "the job on the worker's own queue", seen=rec.summary)
        later = Recorder()
        async with nq.worker(later.processor(other), label="worker-with-other"):
            await nq.eventually(lambda: later.count(other) == 1, f"the job left on {other} for its own worker",
                                seen=later.summary)

    nq.run(scenario)
