"""FLR: failures and retries: attempts visible in the job context, backoff, dead letters, non-retryable errors."""

from __future__ import annotations

import dataclasses
from typing import Any

from nestq_conformance.kit import Behaviour, Delivery, Recorder, Scenario, key_of, look_alike_queues, ordinal
from nestq_conformance.rules import rule
from nestq_spec import NonRetryableError, process, processor


@rule(
    "FLR-001",
    "MUST",
    requires=("retries",),
    hint="pass JobMeta(attempt=n, job_id=...) to dispatch on every delivery, counting from 1; a retry must "
    "increase it by one",
)
def test_flr_001_retried_with_attempt_numbers(nq: Scenario) -> None:
    """A handler that fails on its first attempts is retried, seeing attempts 1, 2, ... in current_job()."""

    async def scenario() -> None:
        queue = nq.queue()
        n = nq.settings.max_attempts
        rec = Recorder()
        async with nq.worker(rec.processor(queue, behaviour=Behaviour(fail_first=n - 1))) as worker:
            await worker.producer.push_json(queue, {"n": 1})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") == 1, f"success on attempt {n}",
                                seen=rec.summary)
        assert rec.attempts({"n": 1}) == list(range(1, n + 1)), (
            f"expected attempts {list(range(1, n + 1))}, saw {rec.attempts({'n': 1})}"
        )

    nq.run(scenario)


@rule(
    "FLR-002",
    "MUST",
    requires=("retries",),
    hint="count attempts per job in the storage (not in worker memory) and stop at max_attempts from the "
    "settings the harness passes",
)
def test_flr_002_attempted_exactly_max_attempts(nq: Scenario) -> None:
    """A handler that always fails is attempted exactly max_attempts times, no more."""

    async def scenario() -> None:
        queue = nq.queue()
        n = nq.settings.max_attempts
        rec = Recorder()
        async with nq.worker(rec.processor(queue, behaviour=Behaviour(fail_always=True))) as worker:
            await worker.producer.push_json(queue, {"n": 1})
            await nq.eventually(lambda: rec.count(queue) >= n, f"{n} attempts", seen=rec.summary)
            await nq.stays(lambda: rec.count(queue) == n, nq.quiet_period(), f"no attempt after the {ordinal(n)}",
                           seen=rec.summary)
        assert rec.attempts({"n": 1}) == list(range(1, n + 1)), (
            f"expected attempts {list(range(1, n + 1))}, saw {rec.attempts({'n': 1})}"
        )

    nq.run(scenario)


@rule(
    "FLR-003",
    "MUST",
    requires=("backoff",),
    hint="schedule the retry at now + backoff (a delayed set, a visibility delay) rather than re-queueing at "
    "once; jitter may only add to the configured base",
)
def test_flr_003_backoff_respected(nq: Scenario) -> None:
    """Each retry starts no sooner than the configured backoff after the failed attempt ended."""

    async def scenario() -> None:
        queue = nq.queue()
        settings = nq.settings.with_(backoff=nq.seconds(0.1), backoff_cap=nq.seconds(0.2))
        n = settings.max_attempts
        rec = Recorder()
        async with nq.worker(rec.processor(queue, behaviour=Behaviour(fail_always=True)),
                             settings=settings) as worker:
            await worker.producer.push_json(queue, {"n": 1})
            await nq.eventually(lambda: rec.count(queue, outcome="raised: DeliberateFailure") >= n,
                                f"{n} failed attempts", seen=rec.summary)
        runs = rec.of(queue)
        gaps = [runs[i + 1].started - (runs[i].finished or runs[i].started) for i in range(len(runs) - 1)]
        # 2 ms of slack for timer granularity; the rule is about not retrying at once.
        short = [round(g, 4) for g in gaps if g < settings.backoff - 0.002]
        assert not short, f"expected every retry at least {settings.backoff:.3f}s after the failure, gaps: " + str(
            [round(g, 4) for g in gaps]
        )

    nq.run(scenario)


def _error_marker(delivery: Delivery) -> BaseException:
    return RuntimeError(f"marker-{delivery.queue} failed on attempt {delivery.attempt}")


@rule(
    "FLR-004",
    "MUST",
    requires=("dead_letters",),
    probes=("dead_letters",),
    hint="after the last attempt, store the job as a dead letter with str(exc) of the last failure and the "
    "attempt count; do not drop it, and do not keep retrying it",
)
def test_flr_004_dead_lettered_after_last_attempt(nq: Scenario) -> None:
    """A job that fails every attempt becomes a dead letter with its error text and attempt count."""

    async def scenario() -> None:
        queue = nq.queue()
        n = nq.settings.max_attempts
        rec = Recorder()
        how = Behaviour(fail_always=True, raise_factory=_error_marker)
        async with nq.worker(rec.processor(queue, behaviour=how)) as worker:
            await worker.producer.push_json(queue, {"n": 1})
            letters = await nq.dead_letters(worker.container, queue)
            await nq.stays(lambda: rec.count(queue) == n, nq.quiet_period(), "no attempt after the dead letter",
                           seen=rec.summary)
        assert len(letters) == 1, f"expected 1 dead letter, found {len(letters)}"
        letter = letters[0]
        assert f"marker-{queue}" in letter.error, (
            f"expected the dead letter's error to contain the handler's message 'marker-{queue} ...', "
            f"found {letter.error!r}"
        )
        assert letter.attempts == n, f"expected attempts={n} on the dead letter, found {letter.attempts}"

    nq.run(scenario)


@rule(
    "FLR-005",
    "MUST",
    requires=("retries",),
    hint="ask is_retryable(exc) before scheduling a retry: NonRetryableError (and a DispatchError made only of "
    "them) must not spend another attempt",
)
def test_flr_005_non_retryable_error_not_retried(nq: Scenario) -> None:
    """A handler raising NonRetryableError is attempted once only."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        how = Behaviour(fail_always=True, non_retryable=True)
        async with nq.worker(rec.processor(queue, behaviour=how)) as worker:
            await worker.producer.push_json(queue, {"n": 1})
            await nq.eventually(lambda: rec.count(queue) >= 1, "the first attempt", seen=rec.summary)
            await nq.stays(lambda: rec.count(queue) == 1, nq.quiet_period(), "no second attempt",
                           seen=rec.summary)

    nq.run(scenario)


@rule(
    "FLR-006",
    "MUST",
    requires=("dead_letters",),
    probes=("dead_letters",),
    hint="a non-retryable failure goes to the dead letters at once, with attempts=1",
)
def test_flr_006_non_retryable_error_dead_lettered_at_once(nq: Scenario) -> None:
    """A NonRetryableError sends the job straight to the dead letters with attempts 1 and its error text."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()

        def refuse(d: Delivery) -> BaseException:
            return NonRetryableError(f"refused-{queue}")

        how = Behaviour(fail_always=True, raise_factory=refuse)
        async with nq.worker(rec.processor(queue, behaviour=how)) as worker:
            await worker.producer.push_json(queue, {"n": 1})
            letters = await nq.dead_letters(worker.container, queue)
        assert letters[0].attempts == 1, f"expected attempts=1, found {letters[0].attempts}"
        assert f"refused-{queue}" in letters[0].error, f"expected the error text, found {letters[0].error!r}"
        assert rec.attempts({"n": 1}) == [1], f"expected one attempt, saw {rec.attempts({'n': 1})}"

    nq.run(scenario)


@dataclasses.dataclass
class _Typed:
    id: int


@rule(
    "FLR-007",
    "MUST",
    requires=("retries",),
    hint="a PayloadDecodeError raised by the handler's decoding is non-retryable (is_retryable is false): "
    "retrying cannot make the payload fit",
)
def test_flr_007_payload_that_does_not_fit_not_retried(nq: Scenario) -> None:
    """A payload that does not decode into the handler's job type fails once, without retries."""

    async def scenario() -> None:
        queue = nq.queue()
        calls: list[Any] = []

        async def handle(self: object, job: _Typed) -> None:
            calls.append(job)

        cls = type(f"Typed{queue.replace('-', '_')}", (), {"handle": process(queue=queue)(handle)})
        cls.__module__ = __name__
        typed = processor(cls)
        rec = Recorder()
        async with nq.worker(typed, rec.processor(queue)) as worker:
            await worker.producer.push_json(queue, {"wrong": "shape"})
            await nq.eventually(lambda: rec.count(queue) >= 1, "the recorder method to run", seen=rec.summary)
            await nq.stays(lambda: rec.count(queue) == 1, nq.quiet_period(), "no retry of an undecodable payload",
                           seen=rec.summary)
        assert not calls, f"the typed handler must not run with an undecodable payload, got {calls}"

    nq.run(scenario)


@rule(
    "FLR-008",
    "MUST",
    hint="run each job in its own task or slot and schedule retries out of the worker's way; a worker that "
    "sleeps the backoff inside its only slot, or re-queues the failing job at the head, starves the others",
)
def test_flr_008_failing_job_does_not_block_others(nq: Scenario) -> None:
    """Jobs pushed after an always-failing job are all delivered, even with concurrency 1."""

    async def scenario() -> None:
        queue = nq.queue()
        one = nq.settings.with_(concurrency=1)
        rec = Recorder()
        how = Behaviour(fail_when=lambda p: bool(key_of(p, "poison")))
        async with nq.worker(rec.processor(queue, behaviour=how), settings=one) as worker:
            await worker.producer.push_json(queue, {"poison": True})
            for i in range(10):
                await worker.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: sorted(rec.keys(queue, outcome="ok")) == list(range(10)),
                                "the 10 good jobs behind a failing one", seen=rec.summary)

    nq.run(scenario)


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be printed")


EXCEPTIONS: list[tuple[str, BaseException]] = [
    ("RuntimeError", RuntimeError("plain")),
    ("ValueError", ValueError("bad value")),
    ("KeyError", KeyError("missing")),
    ("ZeroDivisionError", ZeroDivisionError("division by zero")),
    ("unprintable", _Unprintable()),
    ("huge message", RuntimeError("x" * 1_000_000)),
    ("ExceptionGroup", ExceptionGroup("several", [ValueError("a"), TypeError("b")])),
    ("NonRetryableError", NonRetryableError("give up")),
    ("no message", Exception()),
]


@rule(
    "FLR-009",
    "MUST",
    hint="catch Exception around dispatch (never let it reach the receive loop), and build error text "
    "defensively: str(exc) can raise or be huge",
)
def test_flr_009_handler_exceptions_never_stop_the_worker(nq: Scenario) -> None:
    """Whatever a handler raises (odd, huge or unprintable exceptions), the worker keeps serving."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        by_name = dict(EXCEPTIONS)

        def pick(d: Delivery) -> BaseException:
            return by_name.get(key_of(d.payload, "raise"), RuntimeError("unexpected payload"))

        how = Behaviour(fail_when=lambda p: key_of(p, "raise") is not None, raise_factory=pick, non_retryable=True)
        async with nq.worker(rec.processor(queue, behaviour=how)) as worker:
            for i, (name, _) in enumerate(EXCEPTIONS):
                await worker.producer.push_json(queue, {"raise": name})
                await worker.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: sorted(rec.keys(queue, outcome="ok")) == list(range(len(EXCEPTIONS))),
                                "every good job between the raising ones", seen=rec.summary)
            await worker.producer.push_json(queue, {"n": "last"})
            await nq.eventually(lambda: rec.count(queue, {"n": "last"}, outcome="ok") == 1,
                                "a job pushed after all the failures", seen=rec.summary)

    nq.run(scenario)


@rule(
    "FLR-010",
    "MUST",
    since="2",
    requires=("dead_letters",),
    probes=("dead_letters",),
    hint="key dead letters by the exact queue name, like the queue itself: no case folding, no separator mapping, "
    "no prefix match when listing them",
)
def test_flr_010_dead_letters_of_look_alike_queues_kept_apart(nq: Scenario) -> None:
    """Dead letters of queues whose names differ only by a separator, case or a prefix stay with their queue."""
    queues = look_alike_queues(nq.queue())

    async def scenario() -> None:
        rec = Recorder()
        how = Behaviour(fail_always=True, non_retryable=True)
        async with nq.worker(rec.processor(*queues, behaviour=how)) as worker:
            for queue in queues:
                await worker.producer.push_json(queue, {"q": queue})
            found = {}
            for queue in queues:
                found[queue] = await nq.dead_letters(worker.container, queue)
            await nq.stays(lambda: len(rec.deliveries) == len(queues), nq.quiet_period(), "no further attempt",
                           seen=rec.summary)
            for queue in queues:  # read again: a letter filed under a look-alike may have shown up late
                found[queue] = await nq.probe("dead_letters", nq.harness.dead_letters(worker.container, queue))
        wrong = {}
        for queue, letters in found.items():
            owners = [_payload_of(letter.envelope).get("q") for letter in letters]
            if owners != [queue]:
                wrong[queue] = owners
        assert not wrong, f"expected exactly one dead letter per queue, its own; the probe listed {wrong}"

    nq.run(scenario)


def _payload_of(stored: object) -> dict[str, Any]:
    from nestq_spec import loads_envelope

    parsed = loads_envelope(stored) if isinstance(stored, bytes | bytearray | memoryview | str) else stored
    payload = parsed.get("payload") if isinstance(parsed, dict) else None
    return payload if isinstance(payload, dict) else {}
