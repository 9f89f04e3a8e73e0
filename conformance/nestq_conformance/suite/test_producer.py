"""PRD: the producer: queue isolation, typed push, refusing bad input before storing, pushing without workers."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypedDict

from nestq_conformance.kit import Recorder, Scenario, key_of, look_alike_queues
from nestq_conformance.rules import rule
from nestq_spec import MAX_QUEUE_NAME_LENGTH, QueueNameError


@rule(
    "PRD-001",
    "MUST",
    hint="check that the storage key/subject/table row is derived from the queue name alone and that the worker "
    "reads each queue from its own key; a shared list with a queue field filtered late is a common cause",
)
def test_prd_001_queue_isolation(nq: Scenario) -> None:
    """Jobs pushed to one queue reach only that queue's handlers, never another queue's."""

    async def scenario() -> None:
        qa, qb, qc = nq.queue("a"), nq.queue("b"), nq.queue("c")
        rec = Recorder()
        async with nq.worker(rec.processor(qa), rec.processor(qb)) as worker:
            for i in range(10):
                await worker.producer.push_json(qa, {"q": "a", "n": i})
                await worker.producer.push_json(qc, {"q": "c", "n": i})
            for i in range(5):
                await worker.producer.push_json(qb, {"q": "b", "n": i})
            await nq.eventually(lambda: rec.count(qa) >= 10 and rec.count(qb) >= 5, "10 jobs on a and 5 on b",
                                seen=rec.summary)
        wrong_a = [p for p in rec.payloads(qa) if key_of(p, "q") != "a"]
        wrong_b = [p for p in rec.payloads(qb) if key_of(p, "q") != "b"]
        assert wrong_a + wrong_b == [], (
            f"expected each queue's handler to see only its own jobs; {qa} got {wrong_a}, {qb} got {wrong_b}"
        )
        assert sorted(rec.keys(qa)) == list(range(10)), f"queue a: expected jobs 0..9 once, got {rec.keys(qa)}"
        assert sorted(rec.keys(qb)) == list(range(5)), f"queue b: expected jobs 0..4 once, got {rec.keys(qb)}"

    nq.run(scenario)


@dataclasses.dataclass
class _Line:
    sku: str
    qty: int


@dataclasses.dataclass
class _Order:
    id: int
    lines: list[_Line]
    note: str | None = None


class _OrderDict(TypedDict):
    id: int
    tags: list[str]


@rule(
    "PRD-002",
    "MUST",
    hint="push() is written once on JobProducer: do not override it, and make push_json accept every JSON value "
    "to_json_value produces (nested objects, lists, null)",
)
def test_prd_002_typed_push(nq: Scenario) -> None:
    """push() of a dataclass, a dict/TypedDict and a pydantic model delivers the job as its JSON form."""
    jobs: list[tuple[object, Any]] = [
        (_Order(1, [_Line("a", 2), _Line("b", 1)]), {"id": 1, "lines": [{"sku": "a", "qty": 2},
                                                                      {"sku": "b", "qty": 1}], "note": None}),
        (_OrderDict(id=2, tags=["x", "y"]), {"id": 2, "tags": ["x", "y"]}),
        ({"id": 3, "nested": {"deep": [1, {"k": None}]}}, {"id": 3, "nested": {"deep": [1, {"k": None}]}}),
    ]
    try:
        import pydantic

        class Model(pydantic.BaseModel):
            id: int
            name: str

        jobs.append((Model(id=4, name="ü"), {"id": 4, "name": "ü"}))
    except ImportError:  # pydantic is optional; the other shapes still count
        pass

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            for job, _ in jobs:
                await worker.producer.push(queue, job)
            await nq.eventually(lambda: rec.count(queue) >= len(jobs), f"{len(jobs)} typed jobs", seen=rec.summary)
        by_id = {key_of(p, "id"): p for p in rec.payloads(queue)}
        for job, expected in jobs:
            got = by_id.get(expected["id"])
            assert got == expected, f"push({type(job).__name__}) delivered {got!r}, expected {expected!r}"

    nq.run(scenario)


BAD_QUEUE_NAMES: list[object] = [
    "",
    "has space",
    "slash/inside",
    "-starts-with-dash",
    ".starts-with-dot",
    "ünïcode",
    "new\nline",
    "x" * (MAX_QUEUE_NAME_LENGTH + 1),
    None,
    42,
]


@rule(
    "PRD-003",
    "MUST",
    hint="start push_json with data = encode_job(queue, payload) before touching the storage, and let its "
    "QueueNameError propagate unchanged",
)
def test_prd_003_bad_queue_names_rejected(nq: Scenario) -> None:
    """push_json and push refuse invalid queue names with QueueNameError, and the producer keeps working."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            accepted = []
            for name in BAD_QUEUE_NAMES:
                for how in ("push_json", "push"):
                    try:
                        await getattr(worker.producer, how)(name, {"n": 1})
                    except QueueNameError:
                        continue
                    except Exception as exc:
                        accepted.append(f"{how}({name!r:.30}) raised {type(exc).__name__}: {exc}")
                    else:
                        accepted.append(f"{how}({name!r:.30}) was accepted")
            assert not accepted, "expected QueueNameError for every invalid queue name: " + "; ".join(accepted)
            await worker.producer.push_json(queue, {"after": True})
            await nq.eventually(lambda: rec.count(queue) == 1, "a good job pushed after the refused ones",
                                seen=rec.summary)

    nq.run(scenario)


class _Opaque:
    pass


NON_JSON: list[tuple[str, object, tuple[str, ...]]] = [
    ("a set", {1, 2}, ("push_json", "push")),
    ("NaN", math.nan, ("push_json", "push")),
    ("infinity", {"x": math.inf}, ("push_json", "push")),
    ("an object", {"k": _Opaque()}, ("push_json", "push")),
    # json.dumps would quietly turn the key into "1"; encode_job refuses it, so push_json must too.
    ("a non-string key", {1: "x"}, ("push_json", "push")),
    ("bytes", b"raw", ("push_json", "push")),
    ("a nested set", {"a": [1, {"b": {3}}]}, ("push_json", "push")),
]


@rule(
    "PRD-004",
    "MUST",
    hint="encode the payload (encode_job) before any I/O; a driver that stores first and serialises later, or "
    "replaces what it cannot encode, leaves junk behind",
)
def test_prd_004_non_json_payloads_rejected_before_storing(nq: Scenario) -> None:
    """Payloads that are not JSON raise TypeError from push_json and push, and nothing reaches the queue."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            wrong = []
            for label, payload, hows in NON_JSON:
                for how in hows:
                    try:
                        await getattr(worker.producer, how)(queue, payload)
                    except TypeError:
                        continue
                    except Exception as exc:
                        wrong.append(f"{how}({label}) raised {type(exc).__name__}: {exc}")
                    else:
                        wrong.append(f"{how}({label}) was accepted")
            assert not wrong, "expected TypeError before storing for every non-JSON payload: " + "; ".join(wrong)
            await worker.producer.push_json(queue, {"sentinel": True})
            await nq.eventually(lambda: rec.count(queue, {"sentinel": True}) == 1, "the sentinel job",
                                seen=rec.summary)
            await nq.stays(lambda: rec.count(queue) == 1, nq.quiet_period(), "only the sentinel delivered",
                           seen=rec.summary)

    nq.run(scenario)


@rule(
    "PRD-005",
    "MUST",
    hint="the producer module alone must be able to store jobs (no worker, no serve); for an in-process driver, "
    "producer and worker apps of one process must share the same queues",
)
def test_prd_005_producer_only_app_pushes_without_worker(nq: Scenario) -> None:
    """A producer-only app pushes while no worker runs; a worker started later receives every job."""

    async def scenario() -> None:
        queue = nq.queue()
        async with nq.producer_app() as producer_app:
            for i in range(10):
                await producer_app.producer.push_json(queue, {"n": i})
        rec = Recorder()
        async with nq.worker(rec.processor(queue)):
            await nq.eventually(lambda: len(set(rec.keys(queue))) == 10, "the 10 jobs pushed before any worker",
                                seen=rec.summary)

    nq.run(scenario)


@rule(
    "PRD-006",
    "MUST",
    hint="contribute the TransportContribution from the worker module only; the producer module binds "
    "JobProducer and nothing that consumes",
)
def test_prd_006_producer_module_has_no_transport(nq: Scenario) -> None:
    """The producer module binds JobProducer and contributes no transport, so an enqueue-only app never consumes."""

    async def scenario() -> None:
        async with nq.producer_app() as producer_app:
            transports = producer_app.app.transports
            assert not transports, (
                f"expected no transport in a producer-only app, found {[t.name for t in transports]}"
            )

    nq.run(scenario)



@rule(
    "PRD-007",
    "MUST",
    since="2",
    hint="build every storage key from the exact queue name, with a delimiter no queue name can contain, and never "
    "fold case, map separators or match keys by prefix",
)
def test_prd_007_look_alike_queue_names_kept_apart(nq: Scenario) -> None:
    """Queues whose names differ only by a separator (. : - _), by case, or as a prefix of each other stay apart."""
    queues = look_alike_queues(nq.queue())
    first, second = queues[0::2], queues[1::2]

    async def scenario() -> None:
        rec = Recorder()
        async with nq.producer_app() as app:
            for n in range(2):
                for queue in queues:
                    await app.producer.push_json(queue, {"q": queue, "n": n})
        # A worker serving half the names must see exactly their jobs, and leave the look-alikes' jobs alone.
        async with nq.worker(rec.processor(*first), label="first-half"):
            await nq.eventually(lambda: len(rec.deliveries) >= 2 * len(first),
                                f"2 jobs on each of {first}", seen=rec.summary)
            await nq.stays(lambda: len(rec.deliveries) == 2 * len(first), nq.quiet_period(),
                           "no job of another queue", seen=rec.summary)
        async with nq.worker(rec.processor(*second), label="second-half"):
            await nq.eventually(lambda: all(rec.count(q) == 2 for q in second),
                                f"2 jobs on each of {second}, left for them by the first worker", seen=rec.summary)
        crossed = [f"{d.payload.get('q')!r} delivered on {d.queue!r}" for d in rec.deliveries
                   if not isinstance(d.payload, dict) or d.payload.get("q") != d.queue]
        assert not crossed, "jobs crossed between look-alike queues: " + "; ".join(crossed[:6])
        counts = {q: rec.count(q) for q in queues}
        assert all(c == 2 for c in counts.values()), f"expected 2 deliveries on each queue, got {counts}"

    nq.run(scenario)
