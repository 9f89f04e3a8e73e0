"""CTX: the job context: what current_job() tells a handler (queue, method, attempt, job id, container)."""

from __future__ import annotations

from nestq_conformance.kit import Behaviour, Delivery, Gate, Recorder, Scenario, key_of
from nestq_conformance.rules import rule
from nestq_spec import Container, JobProducer


@rule(
    "CTX-001",
    "MUST",
    hint="call dispatch(methods, envelope, container, JobMeta(attempt, job_id)) with the methods of the queue "
    "the job came from; the registry sets the context from them",
)
def test_ctx_001_context_names_queue_method_and_first_attempt(nq: Scenario) -> None:
    """current_job() names the handler's queue and method, and attempt 1 on a first delivery."""

    async def scenario() -> None:
        qa, qb = nq.queue("a"), nq.queue("b")
        rec = Recorder()
        cls = rec.processor(qa, qb)
        async with nq.worker(cls) as worker:
            await worker.producer.push_json(qa, {"n": "a"})
            await worker.producer.push_json(qb, {"n": "b"})
            await nq.eventually(lambda: rec.count(outcome="ok") == 2, "one job on each queue", seen=rec.summary)
        for d in rec.of():
            expected_method = f"{cls.__qualname__}.handle_q{0 if d.queue == qa else 1}_m0"
            assert (d.context.queue, d.context.method, d.context.attempt) == (d.queue, expected_method, 1), (
                f"expected queue={d.queue}, method={expected_method}, attempt=1; current_job() said "
                f"queue={d.context.queue}, method={d.context.method}, attempt={d.context.attempt}"
            )

    nq.run(scenario)


@rule(
    "CTX-002",
    "MUST",
    hint="JobMeta.job_id is the storage's id as a non-empty str, unique per job, or None when the storage has "
    "no ids; never an int, bytes, or a shared placeholder",
)
def test_ctx_002_job_ids_are_strings_and_distinct(nq: Scenario) -> None:
    """current_job().job_id is None or a non-empty string, and distinct jobs have distinct ids."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            for i in range(20):
                await worker.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") >= 20, "20 jobs", seen=rec.summary)
        ids = [d.job_id for d in rec.of(queue)]
        bad = [i for i in ids if i is not None and (not isinstance(i, str) or not i)]
        assert not bad, f"expected job ids to be None or non-empty str, found {bad[:5]!r}"
        given = [i for i in ids if i is not None]
        if given:
            assert len(given) == len(ids), f"some jobs had an id and some did not: {ids}"
            assert len(set(given)) == len(given), f"expected 20 distinct job ids, found {len(set(given))}: {given}"

    nq.run(scenario)


@rule(
    "CTX-003",
    "SHOULD",
    requires=("retries",),
    hint="keep the job's storage id when scheduling a retry, so logs and dead letters can follow one job",
)
def test_ctx_003_job_id_stable_across_retries(nq: Scenario) -> None:
    """A retried job keeps its job id from one attempt to the next."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue, behaviour=Behaviour(fail_first=1))) as worker:
            await worker.producer.push_json(queue, {"n": 1})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") == 1, "the retried job", seen=rec.summary)
        ids = [d.job_id for d in rec.of(queue)]
        assert len(set(ids)) == 1, f"expected one job id across attempts, saw {ids}"

    nq.run(scenario)


@rule(
    "CTX-004",
    "MUST",
    hint="pass the app's own container to dispatch (not a copy or a child without the app's providers), so a "
    "handler can reach JobProducer and the app's services through current_job().container",
)
def test_ctx_004_context_container_is_the_apps(nq: Scenario) -> None:
    """current_job().container is the worker app's container: a handler can push a follow-up job through it."""

    async def scenario() -> None:
        first, second = nq.queue("first"), nq.queue("second")
        rec = Recorder()
        seen_containers: list[Container] = []

        async def follow_up(d: Delivery) -> None:
            seen_containers.append(d.context.container)
            await d.context.container.get(JobProducer).push_json(
                second, {"after": key_of(d.payload)})

        first_proc = rec.processor(first, behaviour=Behaviour(action=follow_up))
        second_proc = rec.processor(second)
        async with nq.worker(first_proc, second_proc) as worker:
            await worker.producer.push_json(first, {"n": 1})
            await nq.eventually(lambda: rec.count(second, {"after": 1}, outcome="ok") == 1,
                                "the follow-up job pushed from inside a handler", seen=rec.summary)
            assert seen_containers[0] is worker.container, "current_job().container is not the app's container"

    nq.run(scenario)


@rule(
    "CTX-005",
    "MUST",
    hint="run each job in its own task (asyncio copies the context per task) and never set the job context "
    "from a shared loop; a context set outside the task leaks into other jobs",
)
def test_ctx_005_context_is_per_job(nq: Scenario) -> None:
    """Jobs running at the same time on two queues each keep their own context from start to finish."""

    async def scenario() -> None:
        qa, qb = nq.queue("a"), nq.queue("b")
        rec = Recorder()
        gate = Gate()
        async with nq.worker(rec.processor(qa, qb, behaviour=Behaviour(hold=gate))) as worker:
            for i in range(3):
                await worker.producer.push_json(qa, {"n": i})
                await worker.producer.push_json(qb, {"n": i})
            await nq.eventually(lambda: rec.running >= 2 or rec.count(outcome="ok") > 0,
                                "two jobs running at once (or the worker running them one by one)", seen=rec.summary)
            gate.open()
            await nq.eventually(lambda: rec.count(outcome="ok") == 6, "the 6 jobs", seen=rec.summary)
        for d in rec.of():
            assert d.context.queue == d.queue, f"a job of {d.queue} saw the context of {d.context.queue}"
            end = d.context_at_end
            ended = None if end is None else (end.queue, end.attempt, end.job_id)
            assert ended == (d.queue, d.attempt, d.job_id), (
                f"the context changed during the job on {d.queue}: started as {d.context}, ended as {end}"
            )

    nq.run(scenario)


@rule(
    "CTX-006",
    "MUST",
    hint="give one JobMeta to dispatch for the whole job; every method of the queue sees the same attempt and id",
)
def test_ctx_006_methods_of_one_job_share_its_context(nq: Scenario) -> None:
    """Every method that receives one job sees the same job id and attempt."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue, methods=3)) as worker:
            for i in range(4):
                await worker.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") == 12, "4 jobs x 3 methods", seen=rec.summary)
        by_job: dict[int, set[tuple[object, int]]] = {}
        for d in rec.of(queue):
            by_job.setdefault(key_of(d.payload), set()).add((d.job_id, d.attempt))
        split = {n: v for n, v in by_job.items() if len(v) != 1}
        assert not split, f"methods of one job saw different (job_id, attempt): {split}"

    nq.run(scenario)
