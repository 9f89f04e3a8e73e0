"""The driver toolkit: retry policy, polling with wake-ups, the lease keeper, and the QueueWorker loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import pytest

from nestq_spec import (
    Application,
    CancellationToken,
    ConfigError,
    ContainerBuilder,
    DynamicModule,
    MalformedEnvelopeError,
    Module,
    NonRetryableError,
    TransportContribution,
    current_job,
    module,
    process,
    processor,
)
from nestq_spec.driverkit import (
    Decision,
    Delivery,
    LeaseKeeper,
    QueueWorker,
    RetryPolicy,
    Wakeup,
    check_grace,
    check_heartbeat,
)
from nestq_spec.driverkit import poll_receive as poll
from nestq_spec.envelope import dumps_envelope


async def eventually(check: Any, within: float, what: str, seen: Any = None) -> None:
    """Poll ``check`` until true; fail naming ``what`` (and what was seen) after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}; seen: {seen() if seen else '-'}")
        await asyncio.sleep(0.005)

# ------------------------------------------------------------------------------------------------ retry policy


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_base=0.5, backoff_cap=3.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_only_lengthens_and_never_passes_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_base=1.0, backoff_cap=3.0, jitter=0.5)
    delays = [policy.backoff(1) for _ in range(200)]
    assert all(1.0 <= d <= 1.5 for d in delays)
    assert len(set(delays)) > 1
    assert all(policy.backoff(3) == 3.0 for _ in range(50))


def test_decide_retries_until_the_budget_then_dead_letters() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base=0.1, backoff_cap=1.0)
    first = policy.decide(RuntimeError("boom"), 1)
    assert first.retry
    assert first.delay == pytest.approx(0.1)
    last = policy.decide(RuntimeError("boom"), 3)
    assert not last.retry
    assert last.why == "out of attempts (3)"
    assert policy.decide(NonRetryableError("no"), 1).why == "not retryable"
    assert policy.decide(MalformedEnvelopeError("bad"), 1).why == "not a valid envelope"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"max_attempts": 0}, "max_attempts"), ({"backoff_base": -1.0}, "backoff_base"),
     ({"backoff_base": 2.0, "backoff_cap": 1.0}, "backoff_cap"), ({"jitter": 2.0}, "jitter")],
)
def test_bad_policies_are_refused_naming_the_setting(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        RetryPolicy(**kwargs)


def test_lease_and_grace_checks_name_both_settings() -> None:
    check_heartbeat(5.0, 30.0)
    with pytest.raises(ConfigError, match=r"heartbeat_interval=30\.0 is not below visibility_timeout=30\.0"):
        check_heartbeat(30.0, 30.0)
    check_grace(10.0, 30.0)
    with pytest.raises(ConfigError, match=r"shutdown_grace=40\.0 is not below"):
        check_grace(40.0, 30.0)
    check_grace(28.0, 30.0, margin=1.0)
    with pytest.raises(ConfigError, match=r"shutdown_grace=29\.5 plus 1s to give the rest back is not below"):
        check_grace(29.5, 30.0, margin=1.0)


# ---------------------------------------------------------------------------------------------------- polling


@pytest.mark.asyncio
async def test_poll_receive_returns_the_first_non_empty_fetch() -> None:
    calls: list[int] = []

    async def fetch(limit: int) -> list[int]:
        calls.append(limit)
        return [1, 2] if len(calls) == 3 else []

    assert await poll(fetch, 5, 10.0, interval=0.001) == [1, 2]
    assert calls == [5, 5, 5]


@pytest.mark.asyncio
async def test_a_notification_ends_the_poll_interval_early() -> None:
    wakeup = Wakeup()
    ready: list[int] = []
    fetched = asyncio.Event()

    async def fetch(limit: int) -> list[int]:
        fetched.set()
        return list(ready)

    # The interval is an hour: only the notification can make the second fetch happen within the test's timeout.
    task = asyncio.create_task(poll(fetch, 1, 3600.0, interval=3600.0, wakeup=wakeup))
    await asyncio.wait_for(fetched.wait(), 5.0)
    ready.append(7)
    wakeup.notify()
    assert await asyncio.wait_for(task, 5.0) == [7]


@pytest.mark.asyncio
async def test_stop_ends_an_idle_poll_at_once() -> None:
    stop = asyncio.Event()

    async def fetch(limit: int) -> list[int]:
        return []

    task = asyncio.create_task(poll(fetch, 1, 3600.0, interval=3600.0, stop=stop))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(task, 5.0) == ()


# ---------------------------------------------------------------------------------------------- lease keeper


@pytest.mark.asyncio
async def test_one_failing_queue_does_not_stop_heartbeats_of_another() -> None:
    extended: dict[str, int] = {"good": 0, "bad": 0}

    async def extend(queue: str, items: Sequence[str]) -> None:
        extended[queue] += 1
        if queue == "bad":
            raise ConnectionError("queue bad is unreachable")

    keeper = LeaseKeeper(0.01, lambda: {"good": ["g1"], "bad": ["b1"]}, extend)
    keeper.start()
    try:
        await eventually(lambda: extended["good"] >= 3 and extended["bad"] >= 3, 5.0, "3 beats on each queue")
    finally:
        await keeper.stop()
    assert keeper.failures >= 3


@pytest.mark.asyncio
async def test_a_slow_extension_is_not_cancelled_and_does_not_hold_back_another_queue() -> None:
    release = asyncio.Event()
    calls: dict[str, int] = {"slow": 0, "quick": 0}
    finished: list[str] = []

    async def extend(queue: str, items: Sequence[str]) -> None:
        calls[queue] += 1
        if queue == "slow":
            await release.wait()  # a write that takes many heartbeat intervals (a loaded storage)
        finished.append(queue)

    keeper = LeaseKeeper(0.01, lambda: {"slow": ["s1"], "quick": ["q1"]}, extend)
    keeper.start()
    try:
        await eventually(lambda: calls["quick"] >= 5 and keeper.skipped >= 3, 5.0,
                         "5 beats on the quick queue while the slow queue's extension hangs")
        assert calls["slow"] == 1, "a second extension was stacked on the one in flight"
        release.set()
        await eventually(lambda: "slow" in finished, 5.0, "the slow extension to finish, not cancelled")
        await eventually(lambda: calls["slow"] >= 2, 5.0, "the slow queue to be extended again once free")
    finally:
        release.set()
        await keeper.stop()
    assert keeper.failures == 0


# ------------------------------------------------------------------------------------------ the worker loop


class Store:
    """A lease-based storage in a dict: enough to drive QueueWorker through every primitive."""

    def __init__(self) -> None:
        self.ready: dict[str, list[tuple[str, bytes, int]]] = {}
        self.acked: list[str] = []
        self.retried: list[tuple[str, float, str]] = []
        self.dead: list[tuple[str, str, int]] = []
        self.given_back: list[tuple[str, int]] = []
        self.extended: dict[str, int] = {}
        self.failing_acks: set[str] = set()
        self.pushed = asyncio.Event()

    def push(self, queue: str, job_id: str, payload: object) -> None:
        self.ready.setdefault(queue, []).append((job_id, dumps_envelope(payload), 0))
        self.pushed.set()


class StoreWorker(QueueWorker[str]):
    receive_wait = 0.05

    def __init__(self, store: Store, *, heartbeat: float | None = 0.01, grace: float = 1.0) -> None:
        super().__init__(concurrency=2, shutdown_grace=grace, retry_policy=RetryPolicy(2, 0.01, 0.01),
                         heartbeat_interval=heartbeat)
        self.store = store

    async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[str]]:
        out: list[Delivery[str]] = []
        for queue in queues:
            ready = self.store.ready.get(queue, [])
            while ready and len(out) < limit:
                job_id, data, attempts = ready.pop(0)
                out.append(Delivery(queue, data, attempts + 1, job_id, job_id))
        if not out:
            self.store.pushed.clear()
            await asyncio.wait([asyncio.ensure_future(self.store.pushed.wait())], timeout=wait)
        return out

    async def ack(self, deliveries: Sequence[Delivery[str]]) -> None:
        if deliveries[0].queue in self.store.failing_acks:
            raise ConnectionError(f"acks on {deliveries[0].queue} fail")
        self.store.acked.extend(d.handle for d in deliveries)

    async def retry(self, delivery: Delivery[str], delay: float, error: str) -> None:
        self.store.retried.append((delivery.handle, delay, error))
        data = delivery.data.encode() if isinstance(delivery.data, str) else delivery.data
        self.store.ready.setdefault(delivery.queue, []).append((delivery.handle, data, delivery.attempt))

    async def dead_letter(self, delivery: Delivery[str], error: str) -> None:
        self.store.dead.append((delivery.handle, error, delivery.attempt))

    async def give_back(self, deliveries: Sequence[Delivery[str]]) -> None:
        self.store.given_back.extend((d.handle, d.attempt - 1) for d in deliveries)

    async def extend_leases(self, deliveries: Sequence[Delivery[str]]) -> None:
        for d in deliveries:
            self.store.extended[d.handle] = self.store.extended.get(d.handle, 0) + 1


def _app(worker: StoreWorker, *providers: type[Any]) -> Application:
    @module(providers=list(providers))
    class Root(Module):
        @classmethod
        def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
            super().register(builder)
            return builder.provide_meta(TransportContribution("store", lambda _c: worker))

    return Application.create(Root)


@pytest.mark.asyncio
@pytest.mark.usefixtures("sandbox")
async def test_outcomes_reach_the_primitives_and_leases_stop_when_jobs_finish() -> None:
    store = Store()
    release = asyncio.Event()
    seen: list[tuple[str, int, str | None]] = []

    @processor
    class Jobs:
        @process(queue="kit-a")
        async def a(self, job: dict[str, Any]) -> None:
            ctx = current_job()
            seen.append((ctx.queue, ctx.attempt, ctx.job_id))
            if job["n"] == 1:
                await release.wait()  # held long enough for several heartbeats
            if job["n"] == 2:
                raise RuntimeError("always fails")
            if job["n"] == 3:
                raise NonRetryableError("never again")

    worker = StoreWorker(store)
    app = _app(worker, Jobs)
    for n in (1, 2, 3):
        store.push("kit-a", f"j{n}", {"n": n})
    cancel = CancellationToken()
    serving = asyncio.create_task(app.serve(cancel))
    await eventually(lambda: store.extended.get("j1", 0) >= 3, 5.0, "heartbeats of the held job")
    release.set()
    await eventually(lambda: "j1" in store.acked and len(store.dead) == 2, 5.0, "every outcome written",
                     seen=lambda: (store.acked, store.dead))
    beats = store.extended["j1"]
    await eventually(lambda: worker.held() == {} or all(not v for v in worker.held().values()), 5.0,
                     "nothing held once settled")
    cancel.cancel()
    await asyncio.wait_for(serving, 5.0)
    await app.close()
    assert store.extended["j1"] == beats, "a settled job's lease was extended again"
    assert store.retried[0][0] == "j2"
    assert "RuntimeError: always fails" in store.retried[0][2]
    assert sorted((h, a) for h, _e, a in store.dead) == [("j2", 2), ("j3", 1)]
    assert ("kit-a", 2, "j2") in seen


class CountingWorker(StoreWorker):
    def __init__(self, store: Store, gather: int) -> None:
        super().__init__(store, heartbeat=None)
        self.ack_gather_turns = gather
        self.ack_calls: list[int] = []

    async def ack(self, deliveries: Sequence[Delivery[str]]) -> None:
        self.ack_calls.append(len(deliveries))
        await super().ack(deliveries)


@pytest.mark.asyncio
@pytest.mark.usefixtures("sandbox")
@pytest.mark.parametrize(("gather", "calls"), [(0, [1, 1]), (1, [2])])
async def test_ack_gather_turns_lets_runners_finishing_together_share_one_ack(gather: int, calls: list[int]) -> None:
    """With ``ack_gather_turns``, a success waits that many loop turns for company: one write for both jobs."""
    store = Store()
    release = asyncio.Event()

    @processor
    class Jobs:
        @process(queue="kit-gather")
        async def a(self, job: dict[str, Any]) -> None:
            await release.wait()  # both runners hold a job, then finish in the same turn

    worker = CountingWorker(store, gather)
    app = _app(worker, Jobs)
    for n in (1, 2):
        store.push("kit-gather", f"g{n}", {"n": n})
    cancel = CancellationToken()
    serving = asyncio.create_task(app.serve(cancel))
    await eventually(lambda: worker.busy == 2, 5.0, "both jobs running")
    release.set()
    await eventually(lambda: len(store.acked) == 2, 5.0, "both jobs acked", seen=lambda: worker.ack_calls)
    cancel.cancel()
    await asyncio.wait_for(serving, 5.0)
    await app.close()
    assert worker.ack_calls == calls


@pytest.mark.asyncio
@pytest.mark.usefixtures("sandbox")
async def test_failing_acks_of_one_queue_never_stop_another_queue() -> None:
    store = Store()
    store.failing_acks.add("kit-bad")

    @processor
    class Jobs:
        @process(queue="kit-bad")
        async def bad(self, job: dict[str, Any]) -> None:
            pass

        @process(queue="kit-good")
        async def good(self, job: dict[str, Any]) -> None:
            pass

    worker = StoreWorker(store)
    app = _app(worker, Jobs)
    store.push("kit-bad", "b0", {"n": 0})
    cancel = CancellationToken()
    serving = asyncio.create_task(app.serve(cancel))
    for n in range(6):
        store.push("kit-good", f"g{n}", {"n": n})
        await eventually(lambda n=n: f"g{n}" in store.acked, 5.0, f"g{n} acknowledged", seen=lambda: store.acked)
    # The unacknowledged job of the failing queue keeps its lease alive while its ack is retried.
    before = store.extended.get("b0", 0)
    await eventually(lambda: store.extended.get("b0", 0) > before, 5.0, "b0's lease extended while its ack fails")
    store.failing_acks.clear()
    await eventually(lambda: "b0" in store.acked, 5.0, "b0 acknowledged once the storage answers")
    cancel.cancel()
    await asyncio.wait_for(serving, 5.0)


class ReportingWorker(StoreWorker):
    """Keeps every failure report instead of logging it."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.reports: list[tuple[str | None, int, str, bool, str]] = []

    def report_failure(self, delivery: Delivery[str], exc: BaseException, decision: Decision) -> None:
        self.reports.append((delivery.job_id, delivery.attempt, type(exc).__name__, decision.retry, delivery.error))


@pytest.mark.asyncio
@pytest.mark.usefixtures("sandbox")
async def test_a_driver_reports_failures_its_own_way_and_the_outcomes_stay_the_same(
        caplog: pytest.LogCaptureFixture) -> None:
    store = Store()

    @processor
    class Jobs:
        @process(queue="kit-report")
        async def fail(self, job: dict[str, Any]) -> None:
            raise RuntimeError(f"fails {job['n']}")

    worker = ReportingWorker(store)
    app = _app(worker, Jobs)
    store.push("kit-report", "r1", {"n": 1})
    cancel = CancellationToken()
    caplog.set_level(logging.WARNING, logger="nestq.driverkit")
    serving = asyncio.create_task(app.serve(cancel))
    await eventually(lambda: len(store.dead) == 1, 5.0, "the job dead-lettered after its two attempts",
                     seen=lambda: (store.retried, store.dead))
    cancel.cancel()
    await asyncio.wait_for(serving, 5.0)
    # The override saw each failed attempt with the policy's decision and the error text already set...
    assert worker.reports == [("r1", 1, "RuntimeError", True, "RuntimeError: fails 1"),
                              ("r1", 2, "RuntimeError", False, "RuntimeError: fails 1")]
    # ...the outcomes are the policy's, as without it, and the default log lines were not written.
    assert [h for h, _d, _e in store.retried] == ["r1"]
    assert store.dead[0][0] == "r1"
    assert not [r for r in caplog.records if "kit-report" in r.getMessage()]


@pytest.mark.asyncio
@pytest.mark.usefixtures("sandbox")
async def test_jobs_cut_off_after_the_grace_are_given_back_with_the_attempt_refunded() -> None:
    store = Store()
    started = asyncio.Event()

    @processor
    class Stuck:
        @process(queue="kit-stuck")
        async def run(self, job: dict[str, Any]) -> None:
            started.set()
            await asyncio.Event().wait()

    worker = StoreWorker(store, heartbeat=None, grace=0.05)
    app = _app(worker, Stuck)
    store.push("kit-stuck", "s1", {"n": 1})
    cancel = CancellationToken()
    serving = asyncio.create_task(app.serve(cancel))
    await asyncio.wait_for(started.wait(), 5.0)
    cancel.cancel()
    await asyncio.wait_for(serving, 5.0)
    assert store.given_back == [("s1", 0)]
    assert store.acked == []
    assert store.dead == []
    assert store.retried == []


class CollidingWorker(StoreWorker):
    """A driver whose own private names are the ones the loop used to keep on the worker."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._buffer: list[str] = ["the driver's own buffer"]
        self._running = "the driver's own flag"
        self._settle = None
        self._stopped = True
        self._receiving = True
        self._waiters = 3
        self._missing = "not an exception"

    def _next(self) -> str:
        return "the driver's own rotation"

    def _record(self, *args: object) -> None:
        raise AssertionError("the loop called the driver's _record")


def test_a_driver_still_overriding_the_old_private_held_is_refused_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"OldDriver defines _held\(\), which QueueWorker no longer calls: override "
                                        r"held\(\) instead"):
        class OldDriver(StoreWorker):
            def _held(self) -> dict[str, list[Delivery[str]]]:
                return {}


@pytest.mark.asyncio
@pytest.mark.usefixtures("sandbox")
async def test_a_drivers_private_names_never_collide_with_the_loop() -> None:
    store = Store()
    release = asyncio.Event()

    @processor
    class Jobs:
        @process(queue="kit-names")
        async def run(self, job: dict[str, Any]) -> None:
            if job["n"] == 0:
                await release.wait()

    worker = CollidingWorker(store)
    app = _app(worker, Jobs)
    for n in range(5):
        store.push("kit-names", f"c{n}", {"n": n})
    cancel = CancellationToken()
    serving = asyncio.create_task(app.serve(cancel))
    await eventually(lambda: sorted(store.acked) == ["c1", "c2", "c3", "c4"], 5.0, "the quick jobs acknowledged",
                     seen=lambda: store.acked)
    assert worker.busy == 1
    assert [d.job_id for d in worker.held()["kit-names"]] == ["c0"]
    await eventually(lambda: store.extended.get("c0", 0) >= 2, 5.0, "the held job's lease extended")
    release.set()
    await eventually(lambda: "c0" in store.acked, 5.0, "the held job acknowledged")
    cancel.cancel()
    await asyncio.wait_for(serving, 5.0)
    assert worker._buffer == ["the driver's own buffer"]
    assert worker._running == "the driver's own flag"
    assert worker.busy == 0


def test_a_heartbeat_without_extend_leases_is_refused() -> None:
    class NoLeases(QueueWorker[str]):
        async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[str]]:
            return ()

        async def ack(self, deliveries: Sequence[Delivery[str]]) -> None: ...
        async def retry(self, delivery: Delivery[str], delay: float, error: str) -> None: ...
        async def dead_letter(self, delivery: Delivery[str], error: str) -> None: ...
        async def give_back(self, deliveries: Sequence[Delivery[str]]) -> None: ...

    with pytest.raises(ConfigError, match="does not implement extend_leases"):
        NoLeases(concurrency=1, shutdown_grace=1.0, retry_policy=RetryPolicy(), heartbeat_interval=1.0)


# ------------------------------------------------------------------------------------------------- lifecycle

_CLOSED: list[str] = []


class Pool:
    async def aclose(self) -> None:
        _CLOSED.append("pool")


class Client:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def aclose(self) -> None:
        _CLOSED.append("client")


@pytest.mark.asyncio
async def test_the_container_closes_providers_and_hooks_in_reverse_order() -> None:
    closed = _CLOSED
    closed.clear()

    class Setup(DynamicModule):
        def collect(self, builder: ContainerBuilder) -> ContainerBuilder:
            builder.provide(Pool, Pool())

            async def hook() -> None:
                closed.append("hook")

            builder.on_close(hook)
            return builder.provide(Client)

    @module(imports=[Setup()])
    class Root:
        pass

    app = Application.create(Root)
    app.container.get(Client)
    async with app:
        pass
    assert closed == ["client", "hook", "pool"]
    await app.close()
    assert closed == ["client", "hook", "pool"], "close is idempotent"


@pytest.mark.asyncio
async def test_run_closes_the_transports_then_the_container() -> None:
    order: list[str] = []

    class Conn:
        async def aclose(self) -> None:
            order.append("connection")

    class Stopping(QueueWorker[str]):
        async def receive(self, queues: Sequence[str], limit: int, wait: float) -> Sequence[Delivery[str]]:
            return ()

        async def ack(self, deliveries: Sequence[Delivery[str]]) -> None: ...
        async def retry(self, delivery: Delivery[str], delay: float, error: str) -> None: ...
        async def dead_letter(self, delivery: Delivery[str], error: str) -> None: ...
        async def give_back(self, deliveries: Sequence[Delivery[str]]) -> None: ...

        async def close(self) -> None:
            order.append("transport")

    class Root(Module):
        @classmethod
        def register(cls, builder: ContainerBuilder) -> ContainerBuilder:
            builder.provide(Conn, Conn())
            return builder.provide_meta(TransportContribution(
                "t", lambda _c: Stopping(concurrency=1, shutdown_grace=0.1, retry_policy=RetryPolicy())))

    app = Application.create(Root)
    task = asyncio.create_task(app.run(shutdown_timeout=5.0))
    await eventually(lambda: bool(app._built), 5.0, "the transport to be built")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert order == ["transport", "connection"]


def test_a_cancel_hook_runs_once_at_cancel_and_can_be_forgotten() -> None:
    token, calls = CancellationToken(), list[str]()
    token._on_cancel(lambda: calls.append("kept"))
    forget = token._on_cancel(lambda: calls.append("forgotten"))
    forget()
    assert calls == []
    token.cancel()
    token.cancel()
    assert calls == ["kept"], "run synchronously by cancel(), once"
    token._on_cancel(lambda: calls.append("late"))
    assert calls == ["kept", "late"], "a hook added after the cancel runs at once"
