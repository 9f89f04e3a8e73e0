"""ENV: the wire envelope: it travels through the driver untouched, wrapped exactly once; bad ones fail closed."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from nestq_conformance.kit import Behaviour, Recorder, Scenario
from nestq_conformance.rules import rule
from nestq_spec import WIRE_FORMAT_VERSION, dumps_envelope, loads_envelope, wrap

# JSON every storage must carry: integers within +-2**53 (what JSON promises across languages), finite floats.
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25,
)

# Messages a broken or foreign producer could leave in storage; each must be refused before any handler runs.
MALFORMED: dict[str, bytes] = {
    "not-json": b"this is not json",
    "empty": b"",
    "invalid-utf8": b"\xff\xfe{\"v\":1}",
    "nan": b'{"v":1,"payload":NaN}',
    "array": b"[1,2,3]",
    "string": b'"{\\"v\\":1,\\"payload\\":1}"',
    "null": b"null",
    "missing-v": b'{"payload":{"n":1}}',
    "missing-payload": b'{"v":1}',
    "extra-key": b'{"v":1,"payload":{"n":1},"id":"x"}',
    "version-2": b'{"v":2,"payload":{"n":1}}',
    "version-0": b'{"v":0,"payload":{"n":1}}',
    "version-string": b'{"v":"1","payload":{"n":1}}',
    "version-true": b'{"v":true,"payload":{"n":1}}',
    "version-float": b'{"v":1.5,"payload":{"n":1}}',
}


def canonical(value: Any) -> str:
    """A strict, order-independent JSON rendering: ``1``, ``1.0`` and ``true`` stay distinct."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)


def compare_multisets(pushed: list[Any], received: list[Any]) -> str | None:
    """Describe how the delivered payloads differ from the pushed ones (``None`` when they are the same)."""
    want: dict[str, int] = {}
    for p in pushed:
        want[canonical(p)] = want.get(canonical(p), 0) + 1
    got: dict[str, int] = {}
    for r in received:
        got[canonical(r)] = got.get(canonical(r), 0) + 1
    if want == got:
        return None
    missing = [k for k in want if got.get(k, 0) < want[k]]
    unexpected = [k for k in got if want.get(k, 0) < got[k]]
    return (
        f"missing (pushed, not delivered as is): {missing[:5]}; "
        f"unexpected (delivered, never pushed): {unexpected[:5]}"
    )


def as_envelope(stored: object) -> Any:
    """A dead letter's stored envelope as parsed JSON (probes may report bytes, text or a parsed object)."""
    if isinstance(stored, bytes | bytearray | memoryview | str):
        return loads_envelope(stored)
    return stored


async def push_all_and_collect(nq: Scenario, payloads: list[Any]) -> list[Any]:
    """Serve one worker, push every payload on one queue, wait for as many deliveries, return what arrived."""
    queue = nq.queue()
    rec = Recorder()
    async with nq.worker(rec.processor(queue)) as worker:
        for p in payloads:
            await worker.producer.push_json(queue, p)
        await nq.eventually(
            lambda: rec.count(queue) >= len(payloads), f"{len(payloads)} deliveries on {queue}", seen=rec.summary
        )
    return rec.payloads(queue)


@rule(
    "ENV-001",
    "MUST",
    hint="push_json must call encode_job(queue, payload) once and store its bytes as they are; the worker must "
    "hand the stored envelope to dispatch without wrapping, unwrapping or re-encoding it",
)
def test_env_001_payload_wrapped_exactly_once(nq: Scenario) -> None:
    """The handler receives exactly the pushed payload, even payloads that look like an envelope or JSON text."""
    payloads: list[Any] = [
        {"n": 1},
        {"v": WIRE_FORMAT_VERSION, "payload": {"n": 2}},
        {"v": WIRE_FORMAT_VERSION, "payload": {"v": WIRE_FORMAT_VERSION, "payload": 3}},
        json.dumps(wrap({"n": 4})),
        '"quoted"',
        [],
        {},
        "",
        0,
        None,
        False,
        1.5,
    ]

    async def scenario() -> None:
        received = await push_all_and_collect(nq, payloads)
        problem = compare_multisets(payloads, received)
        assert problem is None, f"payloads changed on the way: {problem}"

    nq.run(scenario)


@rule(
    "ENV-002",
    "MUST",
    probes=("push_raw",),
    hint="the storage must carry the envelope bytes verbatim; a worker that expects its own extra framing, or "
    "re-serialises the envelope, fails here",
)
def test_env_002_raw_envelope_delivered_unchanged(nq: Scenario) -> None:
    """A valid envelope stored by another producer (any JSON formatting, either key order) reaches the handler."""
    planted: list[tuple[bytes, Any]] = [
        (dumps_envelope({"n": 1}), {"n": 1}),
        (b'{ "payload" : {"n": 2, "s": "\xc3\xa9\xe2\x82\xac"}, "v" : 1 }', {"n": 2, "s": "é€"}),
        (b'{"v":1,"payload":null}', None),
        (b'{"v":1,"payload":[1,2.5,"x",{"y":[]}]}', [1, 2.5, "x", {"y": []}]),
    ]

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            for data, _ in planted:
                await nq.probe("push_raw", nq.harness.push_raw(worker.container, queue, data))
            await nq.eventually(lambda: rec.count(queue) >= len(planted), "every planted envelope", seen=rec.summary)
        problem = compare_multisets([p for _, p in planted], rec.payloads(queue))
        assert problem is None, f"planted envelopes did not arrive as stored: {problem}"

    nq.run(scenario)


@rule(
    "ENV-003",
    "MUST",
    requires=("dead_letters",),
    probes=("dead_letters",),
    hint="what the producer stores must be the bytes of encode_job(queue, payload): {\"v\": 1, \"payload\": ...} "
    "and nothing else (no id or attempt inside the envelope: those belong in JobMeta)",
)
def test_env_003_stored_envelope_is_exactly_v1(nq: Scenario) -> None:
    """The envelope a producer stores is exactly {"v": 1, "payload": <job>}, as a dead letter shows it."""
    payload: dict[str, Any] = {"n": 1, "text": "stored as is"}

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        proc = rec.processor(queue, behaviour=Behaviour(fail_always=True, non_retryable=True))
        async with nq.worker(proc) as worker:
            await worker.producer.push_json(queue, payload)
            letters = await nq.dead_letters(worker.container, queue)
        stored = as_envelope(letters[0].envelope)
        assert stored == wrap(payload), f"expected the stored envelope {wrap(payload)!r}, found {stored!r}"

    nq.run(scenario)


@rule(
    "ENV-004",
    "MUST",
    hint="look for lossy conversions between push and handler: str/bytes decoding, ensure_ascii, float "
    "formatting, key types, a size limit, or an encoder other than the one encode_job uses",
)
@given(payloads=st.lists(JSON_VALUES, min_size=1, max_size=25))
@hsettings(
    max_examples=8,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)
def test_env_004_generated_payloads_unchanged(nq: Scenario, payloads: list[Any]) -> None:
    """Generated JSON payloads (unicode, nesting, empty values, numbers) reach the handler unchanged."""

    async def scenario() -> None:
        received = await push_all_and_collect(nq, payloads)
        problem = compare_multisets(payloads, received)
        assert problem is None, f"payloads changed on the way: {problem}"

    nq.run(scenario)


def _sized_payload(target: int, unit: str) -> dict[str, Any]:
    """An object payload whose encoded envelope is exactly ``target`` bytes (or just under, for wide ``unit``)."""
    base = len(dumps_envelope({"s": ""}))
    width = len(unit.encode())
    return {"s": unit * ((target - base) // width)}


@rule(
    "ENV-005",
    "MUST",
    hint="check the storage's value size limits and any chunking; capabilities.max_payload_bytes must not be "
    "larger than what the driver really carries",
)
def test_env_005_payloads_up_to_declared_maximum(nq: Scenario) -> None:
    """Payloads whose envelope reaches the declared max_payload_bytes (ASCII and multi-byte text) arrive whole."""
    limit = nq.capabilities.max_payload_bytes
    payloads: list[Any] = [_sized_payload(limit, "a"), _sized_payload(limit, "é"), _sized_payload(limit, "😀")]
    payloads.append([{"k": i, "t": "x" * 50} for i in range((limit - 100) // 70)])
    sizes = [len(dumps_envelope(p)) for p in payloads]
    assert limit - 8 <= max(sizes) <= limit, f"suite bug: sizes {sizes} for limit {limit}"

    async def scenario() -> None:
        received = await push_all_and_collect(nq, payloads)
        problem = compare_multisets(payloads, received)
        assert problem is None, f"large payloads (envelopes of {sizes} bytes) changed on the way: " + (
            problem[:500]
        )

    nq.run(scenario)


@rule(
    "ENV-006",
    "MUST",
    probes=("push_raw",),
    hint="the worker must treat an EnvelopeError from dispatch like any non-retryable job failure: record or "
    "dead-letter it, and keep serving; it must never call a handler with an unvalidated payload",
)
def test_env_006_malformed_envelopes_fail_closed(nq: Scenario) -> None:
    """Malformed envelopes and wrong versions never reach a handler, and the worker keeps serving good jobs."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            for data in MALFORMED.values():
                await nq.probe("push_raw", nq.harness.push_raw(worker.container, queue, data))
            await worker.producer.push_json(queue, {"good": 1})
            await nq.eventually(lambda: rec.count(queue, {"good": 1}) == 1, "the good job pushed after the bad ones",
                                seen=rec.summary)
            await nq.stays(lambda: rec.count(queue) == 1, nq.quiet_period(), "no handler run for a bad envelope",
                           seen=rec.summary)

    nq.run(scenario)


@rule(
    "ENV-007",
    "MUST",
    requires=("dead_letters",),
    probes=("push_raw", "dead_letters"),
    hint="an EnvelopeError is a NonRetryableError: is_retryable(exc) is false, so dead-letter at once with "
    "attempts=1 and str(exc) as the error",
)
def test_env_007_malformed_envelopes_dead_lettered_once(nq: Scenario) -> None:
    """Each malformed envelope is dead-lettered after one attempt, with an error naming the problem."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            for data in MALFORMED.values():
                await nq.probe("push_raw", nq.harness.push_raw(worker.container, queue, data))
            letters = await nq.dead_letters(worker.container, queue, len(MALFORMED))
        wrong_attempts = [(d.error[:80], d.attempts) for d in letters if d.attempts != 1]
        assert not wrong_attempts, f"expected attempts=1 for every malformed envelope, found {wrong_attempts}"
        blank = [d for d in letters if not d.error.strip()]
        assert not blank, f"expected every dead letter to carry the envelope error, found {len(blank)} without one"
        versions = [d.error for d in letters if "version" in d.error.lower()]
        assert len(versions) >= 5, (
            f"expected the 5 wrong-version envelopes to be dead-lettered naming the version, found {versions}"
        )
        assert rec.count(queue) == 0, f"a handler ran for a malformed envelope: {rec.summary()}"

    nq.run(scenario)


@rule(
    "ENV-008",
    "MUST",
    requires=("retries",),
    probes=("push_raw", "queue_depth"),
    hint="check is_retryable(exc) before scheduling a retry; a poison envelope retried without end keeps the "
    "queue busy forever",
)
def test_env_008_malformed_envelopes_not_retried_forever(nq: Scenario) -> None:
    """Malformed envelopes leave the queue: its depth returns to zero instead of cycling through retries."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.worker(rec.processor(queue)) as worker:
            for data in MALFORMED.values():
                await nq.probe("push_raw", nq.harness.push_raw(worker.container, queue, data))
            await nq.poll(
                lambda: nq.probe("queue_depth", nq.harness.queue_depth(worker.container, queue)),
                lambda depth: depth == 0,
                f"the depth of {queue} to fall to 0 after {len(MALFORMED)} malformed envelopes",
            )

    nq.run(scenario)


# Numbers a storage that goes through floats (a JSON library with float-only numbers, a score in a sorted set,
# a numeric column) mangles: integers past 2**53 in both signs, at and past the 64-bit limits, and floats that need
# all 17 significant digits.
BIG_NUMBERS: list[Any] = [
    2**53 + 1, -(2**53 + 1), 2**53 + 3, 2**62 + 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64 + 1,
    -(2**70) - 7, 10**30 + 1, 0.30000000000000004, 0.1, 1 / 3, 2.0**-1074, 1.7976931348623157e308,
    2.2250738585072014e-308, -9007199254740993.0, 123456789.12345679, 1e-7, 1.0, -0.0,
]  # fmt: skip
WIDE_INTEGERS = st.one_of(
    st.integers(min_value=2**53 + 1, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**53) - 1),
)
DIGIT_HUNGRY_FLOATS = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: len(repr(f)) >= 18)


@rule(
    "ENV-009",
    "MUST",
    since="2",
    hint="keep the envelope bytes as bytes (or text) end to end; never parse them into a number type that is a "
    "float, nor store a payload's numbers in a field that is one",
)
@given(
    ints=st.lists(WIDE_INTEGERS, min_size=1, max_size=8),
    floats=st.lists(DIGIT_HUNGRY_FLOATS, min_size=1, max_size=8),
)
@hsettings(
    max_examples=3,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)
def test_env_009_large_integers_and_precise_floats_unchanged(
    nq: Scenario, ints: list[int], floats: list[float]
) -> None:
    """Integers beyond 2**53 and 2**63 (both signs) and floats needing 17 digits reach the handler exactly."""
    payloads: list[Any] = [{"i": k, "x": value} for k, value in enumerate(BIG_NUMBERS)]
    payloads.append({"ints": ints, "floats": floats})
    payloads.append(BIG_NUMBERS)

    async def scenario() -> None:
        received = await push_all_and_collect(nq, payloads)
        problem = compare_multisets(payloads, received)
        assert problem is None, f"numbers changed on the way (pushed, received as canonical JSON): {problem}"

    nq.run(scenario)
