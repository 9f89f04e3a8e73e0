"""LIF: lifecycle: configure then serve, prompt return after cancel, jobs in flight at shutdown, restarts."""

from __future__ import annotations

import asyncio
import logging

from nestq_conformance.kit import Behaviour, Gate, Recorder, Scenario, ServeTask, eventually, key_of
from nestq_conformance.lineage import ServeLineage
from nestq_conformance.rules import rule
from nestq_spec import CancellationToken


@rule(
    "LIF-001",
    "MUST",
    hint="configure() prepares (connect, declare) and returns; start receiving in serve(), not in configure() "
    "or in a task configure() leaves running",
)
def test_lif_001_configure_before_serve(nq: Scenario) -> None:
    """configure() returns promptly and consumes nothing; jobs are consumed only once serve() runs."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        async with nq.producer_app() as producer_app:
            await producer_app.producer.push_json(queue, {"n": 1})
        app = nq.worker_application(rec.processor(queue))
        transports = [c.build(app.container) for c in app.transports]
        for t in transports:
            await asyncio.wait_for(t.configure(app.container), nq.seconds(5.0))
        await nq.stays(lambda: rec.count(queue) == 0, nq.quiet_period(), "no job consumed after configure() alone",
                       seen=rec.summary)
        cancel = CancellationToken()
        tasks = [asyncio.create_task(t.serve(app.container, cancel)) for t in transports]
        serving = [ServeTask(task, cancel, type(t).__name__) for task, t in zip(tasks, transports, strict=True)]
        try:
            # Watched, so a serve() that raises fails the rule at once with its error rather than at the deadline.
            await eventually(lambda: rec.count(queue) == 1, nq.timeout, "the job once serve() runs",
                             seen=rec.summary, watch=serving)
        finally:
            cancel.cancel()
            await asyncio.wait(tasks, timeout=nq.stop_deadline())
            for task in tasks:
                task.cancel()  # a slow shutdown is LIF-002's business, not this rule's

    nq.run(scenario)


@rule(
    "LIF-002",
    "MUST",
    hint="every blocking wait in serve() (a pop, a read, a sleep) must also wait on cancel, or time out within "
    "poll_interval; check for loops that only test is_cancelled after a blocking call returns",
)
def test_lif_002_serve_returns_promptly_after_cancel(nq: Scenario) -> None:
    """An idle worker's serve() returns within one second (scaled) of cancel."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        worker = await nq.start_worker(rec.processor(queue))
        await worker.producer.push_json(queue, {"warm": True})
        await nq.eventually(lambda: rec.count(queue, outcome="ok") == 1, "a warm-up job", seen=rec.summary)
        limit = nq.seconds(1.0)
        took = await nq.stop_worker(worker, within=limit)
        assert took <= limit, f"expected serve() to return within {limit:.2f}s of cancel, it took {took:.2f}s"

    nq.run(scenario)


@rule(
    "LIF-003",
    "SHOULD",
    hint="check cancel before the first receive; a serve() that claims a batch before noticing cancel must "
    "give the batch back",
)
def test_lif_003_serve_with_cancelled_token(nq: Scenario) -> None:
    """serve() called with an already-cancelled token returns promptly, and loses no job waiting in the queue."""

    async def scenario() -> None:
        queue = nq.queue()
        async with nq.producer_app() as producer_app:
            await producer_app.producer.push_json(queue, {"n": 1})
        rec = Recorder()
        worker = await nq.start_worker(rec.processor(queue), label="pre-cancelled")
        worker.cancel.cancel()
        took = await nq.stop_worker(worker, within=nq.seconds(1.0))
        assert took <= nq.seconds(1.0), f"serve() took {took:.2f}s to notice a token cancelled from the start"
        later = Recorder()
        async with nq.worker(later.processor(queue), label="next"):
            await nq.eventually(
                lambda: rec.count(queue, outcome="ok") + later.count(queue, outcome="ok") >= 1,
                "the job, either run by the pre-cancelled worker or left for the next one",
                seen=lambda: (rec.summary(), later.summary()),
            )

    nq.run(scenario)


@rule(
    "LIF-004",
    "MUST",
    hint="on cancel, stop receiving but let running handlers finish within the shutdown grace (or return their "
    "jobs to the storage); cancelling handler tasks at once loses the job",
)
def test_lif_004_in_flight_job_completes_at_shutdown(nq: Scenario) -> None:
    """A job in flight when cancel arrives completes (or is delivered to the next worker): it is never lost."""

    async def scenario() -> None:
        queue = nq.queue()
        gate = Gate()
        rec = Recorder()
        worker = await nq.start_worker(rec.processor(queue, behaviour=Behaviour(hold=gate)))
        await worker.producer.push_json(queue, {"n": 1})
        await nq.eventually(lambda: rec.count(queue) == 1, "the job to start", seen=rec.summary)
        worker.cancel.cancel()
        # Keep the job running a little into the shutdown: a worker that kills its handlers at cancel loses it.
        await asyncio.sleep(min(nq.settings.shutdown_grace / 4, nq.seconds(0.1)))
        gate.open()
        await nq.halt_worker(worker)
        if rec.count(queue, outcome="ok") == 1:
            return
        later = Recorder()
        async with nq.worker(later.processor(queue), label="next"):
            await nq.eventually(
                lambda: later.count(queue, outcome="ok") >= 1,
                "the interrupted job: it did not complete during shutdown, so the next worker must get it",
                seen=lambda: (rec.summary(), later.summary()),
            )

    nq.run(scenario)


@rule(
    "LIF-005",
    "MUST",
    hint="bound the wait for running handlers by the shutdown grace, then cancel them (returning their jobs) "
    "and return from serve()",
)
def test_lif_005_serve_returns_within_grace_with_stuck_handler(nq: Scenario) -> None:
    """serve() returns within the shutdown grace (plus one scaled second) even when a handler never finishes."""

    async def scenario() -> None:
        queue = nq.queue()
        settings = nq.settings.with_(shutdown_grace=nq.seconds(0.3))
        rec = Recorder()
        never = Gate()
        worker = await nq.start_worker(rec.processor(queue, behaviour=Behaviour(hold=never)), settings=settings)
        await worker.producer.push_json(queue, {"n": 1})
        await nq.eventually(lambda: rec.count(queue) == 1, "the stuck job to start", seen=rec.summary)
        limit = nq.stop_deadline(settings)
        took = await nq.stop_worker(worker, within=limit)
        assert took <= limit, f"expected serve() back within {limit:.2f}s, it took {took:.2f}s"

    nq.run(scenario)


@rule(
    "LIF-006",
    "MUST",
    requires=("delivery",),
    hint="an at-least-once driver must give back (or leave leased) a job whose handler it had to cancel at "
    "shutdown, so the next worker runs it",
)
def test_lif_006_job_cut_off_at_shutdown_is_redelivered(nq: Scenario) -> None:
    """A job whose handler outlived the shutdown grace is delivered again to the next worker."""

    async def scenario() -> None:
        queue = nq.queue()
        settings = nq.settings.with_(shutdown_grace=nq.seconds(0.3))
        rec = Recorder()
        never = Gate()
        worker = await nq.start_worker(rec.processor(queue, behaviour=Behaviour(hold=never)), settings=settings)
        await worker.producer.push_json(queue, {"n": 1})
        await nq.eventually(lambda: rec.count(queue) == 1, "the stuck job to start", seen=rec.summary)
        await nq.halt_worker(worker, nq.stop_deadline(settings))
        later = Recorder()
        timeout = nq.timeout + nq.settings.visibility_timeout
        async with nq.worker(later.processor(queue), label="next"):
            await nq.eventually(lambda: later.count(queue, outcome="ok") >= 1,
                                "the job cut off at shutdown, delivered to the next worker",
                                within=timeout, seen=lambda: (rec.summary(), later.summary()))

    nq.run(scenario)


@rule(
    "LIF-007",
    "MUST",
    hint="jobs not yet claimed when a worker stops must stay in the storage for the next worker; check that "
    "shutdown does not drain or clear the queue, and that prefetched jobs are returned",
)
def test_lif_007_new_worker_picks_up_where_old_one_stopped(nq: Scenario) -> None:
    """A worker started after another stopped receives every job the first left, and jobs pushed in between."""

    async def scenario() -> None:
        queue = nq.queue()
        one = nq.settings.with_(concurrency=1)
        first = Recorder()
        gate = Gate()
        # Hold the 4th delivery and later ones (whatever their order), so the first worker stops mid-queue.
        hold_later = Behaviour(hold=gate, hold_when=lambda p: first.count(queue) > 3)
        worker = await nq.start_worker(first.processor(queue, behaviour=hold_later), settings=one)
        for i in range(20):
            await worker.producer.push_json(queue, {"n": i})
        await nq.eventually(lambda: first.count(queue) >= 4, "the first worker to be on its 4th job",
                            seen=first.summary)
        worker.cancel.cancel()
        await asyncio.sleep(0)  # the worker sees the cancel before the held job may finish
        gate.open()
        await nq.halt_worker(worker, nq.stop_deadline(one))
        async with nq.producer_app() as producer_app:
            for i in range(20, 25):
                await producer_app.producer.push_json(queue, {"n": i})
        second = Recorder()
        async with nq.worker(second.processor(queue), label="second"):
            await nq.eventually(
                lambda: set(first.keys(queue, outcome="ok")) | set(second.keys(queue, outcome="ok"))
                == set(range(25)),
                "every one of the 25 jobs to complete on one of the two workers",
                seen=lambda: f"first: {sorted(first.keys(queue, outcome='ok'))}, "
                f"second: {sorted(second.keys(queue, outcome='ok'))}",
            )
        assert first.count(queue, outcome="ok") < 25, "suite bug: the first worker did everything"

    nq.run(scenario)


@rule(
    "LIF-008",
    "SHOULD",
    hint="await (or cancel and await) every task serve() created before it returns; a background task left "
    "running keeps claiming jobs for a worker that has stopped",
)
def test_lif_008_no_task_left_running_after_serve(nq: Scenario) -> None:
    """After serve() returns, no task the worker started is still running."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        # Only tasks started inside serve() count (by lineage, see ServeLineage): a client's own tasks on a
        # connection the app opened (a reader, a pinger) end when the app closes it, which is LIF-009's check.
        with ServeLineage(asyncio.get_running_loop()) as lineage:
            worker = await nq.start_worker(rec.processor(queue))
            async with nq.producer_app() as producer_app:
                for i in range(5):
                    await producer_app.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") == 5, "5 jobs", seen=rec.summary)
            await nq.halt_worker(worker)
        await nq.eventually(
            lambda: not lineage.running(), "the tasks started inside serve() to finish after it returned",
            within=nq.seconds(0.5), seen=lineage.describe,
        )

    nq.run(scenario)


def _grown(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, list[str]]:
    """Kinds of resource held more after than before, with the resources that are new."""
    grown: dict[str, list[str]] = {}
    for kind, items in after.items():
        if len(items) > len(before.get(kind, [])):
            old = set(before.get(kind, []))
            grown[kind] = [item for item in items if item not in old] or items
    return grown


@rule(
    "LIF-009",
    "SHOULD",
    since="2",
    hint="give every connection, client, consumer or file the driver opens a closer: an async aclose() on the "
    "provider that holds it (the container calls it at app shutdown), Transport.close() for what the worker "
    "opened, or builder.on_close(...) in the module; check that aclose() really closes the client's pool",
)
def test_lif_009_driver_closes_what_it_opened(nq: Scenario) -> None:
    """After the apps of a rule shut down (served, stopped, closed), the driver holds nothing open it opened."""

    async def scenario() -> None:
        before = await nq.harness.open_resources()
        queue = nq.queue()
        rec = Recorder()
        async with nq.producer_app() as producer_app:
            await producer_app.producer.push_json(queue, {"n": 0})
        worker = await nq.start_worker(rec.processor(queue))
        for i in range(1, 4):
            await worker.producer.push_json(queue, {"n": i})
        await nq.eventually(lambda: rec.count(queue, outcome="ok") == 4, "4 jobs", seen=rec.summary)
        await nq.halt_worker(worker)
        await nq.close_apps()
        holding: dict[str, list[str]] = {}

        async def probe() -> dict[str, list[str]]:
            nonlocal holding
            holding = _grown(before, await nq.harness.open_resources())
            return holding

        try:
            await nq.poll(probe, lambda grown: not grown, "the driver to close what it opened", interval=0.02)
        except AssertionError:
            described = "; ".join(f"{len(items)} more {kind}(s): {', '.join(items[:4])}"
                                  for kind, items in holding.items())
            raise AssertionError(
                f"after its producer and worker apps were closed, the process still holds {described} that it did "
                "not hold before the rule booted them"
            ) from None

    nq.run(scenario)


@rule(
    "LIF-010",
    "MUST",
    since="2",
    requires=("delivery",),
    hint="a job cut off at shutdown is not a failure: give it back without scheduling a retry backoff and refund "
    "its attempt (the next run sees the attempt number the cut-off run had; a lease left to expire counts it), put "
    "it back in front of the queue without dropping the jobs behind it, and wake an idle worker",
)
def test_lif_010_cut_off_job_goes_back_with_the_queue_behind_it(nq: Scenario) -> None:
    """A job cut off at shutdown goes back with the jobs queued behind it, its attempt refunded, and wakes idle workers.

    The give-back refunds the interrupted attempt: the next run of the cut-off job sees the attempt number the
    cut-off run saw, so restarts never spend an app's ``max_attempts``.
    """

    async def scenario() -> None:
        # A retry backoff far longer than the rule's waits: a cut-off treated as a failed attempt shows at once.
        stopping = nq.settings.with_(concurrency=1, shutdown_grace=nq.seconds(0.3), backoff=nq.seconds(60.0),
                                     backoff_cap=nq.seconds(60.0))
        within = nq.timeout + nq.settings.visibility_timeout
        never = Gate()
        # 1. The job behind the cut-off one stay queued, and the next worker gets them all.
        queue = nq.queue("behind")
        first = Recorder()
        hold = Behaviour(hold=never, hold_when=lambda p: key_of(p) == "cut")
        worker = await nq.start_worker(first.processor(queue, behaviour=hold), settings=stopping, label="first")
        await worker.producer.push_json(queue, {"n": "cut"})
        await nq.eventually(lambda: first.count(queue) == 1, "the job to cut off to start", seen=first.summary)
        for i in range(3):
            await worker.producer.push_json(queue, {"n": i})
        await nq.halt_worker(worker, nq.stop_deadline(stopping))
        later = Recorder()
        async with nq.worker(later.processor(queue), settings=stopping, label="next"):
            await nq.eventually(lambda: set(later.keys(queue, outcome="ok")) >= {"cut", 0, 1, 2},
                                "the cut-off job and the 3 jobs queued behind it, on the next worker",
                                within=within, seen=lambda: (first.summary(), later.summary()))
        cut, again = first.attempts({"n": "cut"}, queue), later.attempts({"n": "cut"}, queue)
        assert again[:1] == cut[:1], (
            f"the cut-off job ran as attempt {cut[:1]} and came back as attempt {again[:1]}: its give-back did not "
            "refund the interrupted attempt (a cut-off is not a failed attempt)"
        )
        # 2. An idle worker on the same queue takes the cut-off job when it comes back, without a new push.
        queue = nq.queue("wake")
        held, idle = Recorder(), Recorder()
        worker = await nq.start_worker(held.processor(queue, behaviour=Behaviour(hold=never)), settings=stopping,
                                       label="holding")
        await worker.producer.push_json(queue, {"n": "cut"})
        await nq.eventually(lambda: held.count(queue) == 1, "the job to cut off to start", seen=held.summary)
        async with nq.worker(idle.processor(queue), settings=stopping, label="idle"):
            await nq.halt_worker(worker, nq.stop_deadline(stopping))
            await nq.eventually(lambda: idle.count(queue, outcome="ok") == 1,
                                "the idle worker to run the job given back by the stopped one",
                                within=within, seen=lambda: (held.summary(), idle.summary()))

    nq.run(scenario)


@rule(
    "LIF-011",
    "MUST",
    since="2",
    hint="after cancel, stop claiming but let running handlers finish for up to shutdown_grace seconds before "
    "cutting them off; a handler that finishes within the grace is acked by the stopping worker",
)
def test_lif_011_job_finishing_within_the_grace_completes(nq: Scenario) -> None:
    """A job that finishes within the shutdown grace after cancel completes in the stopping worker, once."""

    async def scenario() -> None:
        queue = nq.queue()
        # The handler keeps working a little after the cancel (well inside the grace): a worker that cuts its
        # handlers off at once (no grace, or a grace it never waits out) cannot get the job done before it stops.
        settings = nq.settings
        run_into = min(settings.shutdown_grace / 4, nq.seconds(0.3))
        rec = Recorder()
        gate = Gate()
        worker = await nq.start_worker(rec.processor(queue, behaviour=Behaviour(hold=gate)), settings=settings)
        await worker.producer.push_json(queue, {"n": 1})
        await nq.eventually(lambda: rec.count(queue) == 1, "the job to start", seen=rec.summary)
        stopping = asyncio.ensure_future(nq.stop_worker(worker, nq.stop_deadline(settings)))
        await asyncio.sleep(0)  # let the cancel reach the worker before the handler may finish
        await nq.eventually(lambda: worker.cancel.is_cancelled, "the cancel to be sent")
        # Not a synchronisation: how long the job still runs into the shutdown, well inside the grace.
        await asyncio.sleep(run_into)
        gate.open()
        await stopping
        assert rec.count(queue, outcome="ok") == 1, (
            f"the job finished {run_into:.2f}s into a {settings.shutdown_grace:.2f}s shutdown grace "
            f"but did not complete in the stopping worker (was it cut off at cancel?): {rec.summary(queue)}"
        )
        later = Recorder()
        # A second delivery of a completed job comes from a lease that was not released, so only a storage that
        # leases jobs needs the rule to watch for one lease more.
        lease = nq.settings.visibility_timeout if nq.capabilities.visibility_timeout else 0.0
        async with nq.worker(later.processor(queue), label="next"):
            await nq.stays(lambda: later.count(queue) == 0, nq.quiet_period() + lease,
                           "no second delivery of the completed job", seen=later.summary)

    nq.run(scenario)


@rule(
    "LIF-012",
    "MUST",
    since="2",
    hint="a worker that stops must not take a wake-up (a notification, a signal token, a message it received) "
    "with it: pass it on to another idle worker, give the job back, or leave it where the next receive or poll "
    "finds it",
)
def test_lif_012_stopping_worker_does_not_swallow_a_wake_up(nq: Scenario) -> None:
    """A job pushed just as one of two idle workers stops runs on the other worker without another push."""

    async def scenario() -> None:
        queue, side = nq.queue("shared"), nq.queue("side")
        # For a storage that leases what a stopping worker received, the lease may have to expire first.
        within = nq.timeout + nq.settings.visibility_timeout
        stopping_rec, staying_rec = Recorder(), Recorder()
        async with nq.producer_app() as producer_app:
            push = producer_app.producer.push_json
            stopping = await nq.start_worker(stopping_rec.processor(queue), label="stopping")
            await push(queue, {"n": "warm-up"})
            await nq.eventually(lambda: stopping_rec.count(queue, outcome="ok") == 1,
                                "the first worker's warm-up job", seen=stopping_rec.summary)
            # The second worker also serves a side queue, so that its own warm-up shows when it is idle, after
            # the first one: where idle workers queue up for wake-ups, the first is then ahead of it.
            async with nq.worker(staying_rec.processor(queue, side), label="staying"):
                await push(side, {"n": "warm-up"})
                await nq.eventually(lambda: staying_rec.count(side, outcome="ok") == 1,
                                    "the second worker's warm-up job", seen=staying_rec.summary)
                stopping.cancel.cancel()
                await push(queue, {"n": "job"})  # in the same turn as the cancel: the wake-up meets a stopping worker
                await nq.halt_worker(stopping)

                def runs() -> int:
                    return stopping_rec.count(queue, {"n": "job"}, outcome="ok") + staying_rec.count(
                        queue, {"n": "job"}, outcome="ok")

                await nq.eventually(lambda: runs() >= 1,
                                    "the job pushed as the first worker stopped, run by the second one",
                                    within=within, seen=lambda: (stopping_rec.summary(), staying_rec.summary()))

    nq.run(scenario)


class _Records(logging.Handler):
    """Every warning and error logged while it is attached, but the suite's own."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("nestq.suite"):
            return
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        self.seen.append(f"{record.levelname} {record.name}: {text[:300]}")


@rule(
    "LIF-013",
    "SHOULD",
    since="2",
    hint="a warning or error in a healthy run is a swallowed exception: look for a storage call, a wait or a "
    "bookkeeping step that raises on an idle, normal or stopping path and is caught by a retry loop that logs it "
    "(warn about the environment once, at boot, if at all)",
)
def test_lif_013_healthy_run_logs_no_warning(nq: Scenario) -> None:
    """A worker that runs jobs (and a delayed one), idles and stops on a healthy storage logs no warning or error."""

    async def scenario() -> None:
        queue = nq.queue()
        rec = Recorder()
        worker = await nq.start_worker(rec.processor(queue))
        await worker.producer.push_json(queue, {"n": "warm-up"})
        await nq.eventually(lambda: rec.count(queue, outcome="ok") == 1, "the warm-up job", seen=rec.summary)
        # Watched from here: what a driver says once at boot (about its environment) is not this rule's concern.
        records = _Records()
        root = logging.getLogger()
        root.addHandler(records)
        try:
            for i in range(5):
                await worker.producer.push_json(queue, {"n": i})
            await nq.eventually(lambda: rec.count(queue, outcome="ok") == 6, "5 jobs", seen=rec.summary)
            if nq.capabilities.delayed_jobs:
                # The idle wait with a delayed job pending takes other paths (a due-time timer, a promotion).
                delayed = nq.harness.push_delayed(worker.container, queue, {"n": "delayed"}, nq.seconds(0.1))
                await nq.probe("push_delayed", delayed)
                await nq.eventually(lambda: rec.count(queue, outcome="ok") == 7, "the delayed job",
                                    seen=rec.summary)
            # Not a synchronisation: the worker idles through a few waits of its receive loop, then stops idle.
            await asyncio.sleep(max(nq.seconds(0.3), 4 * nq.settings.poll_interval))
            await nq.stop_worker(worker)
        finally:
            root.removeHandler(records)
        assert not records.seen, (
            f"a healthy worker logged {len(records.seen)} warning(s) or error(s) while it ran 5 jobs, idled and "
            "stopped: " + " | ".join(records.seen[:4])
        )

    nq.run(scenario)
