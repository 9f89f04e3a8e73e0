"""The registry: @processor/@process registration errors, handlers decoding jobs, routes() and dispatch()."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Optional, TypedDict

import pydantic
import pytest

from nestq_spec import (
    Container,
    ContainerBuilder,
    DispatchError,
    EnvelopeError,
    JobMeta,
    MalformedEnvelopeError,
    NestqError,
    NonRetryableError,
    PayloadDecodeError,
    ProcessMethod,
    RegistrationError,
    UnsupportedVersionError,
    current_job,
    dispatch,
    dumps_envelope,
    injectable,
    inventory,
    is_retryable,
    process,
    processor,
    routes,
    wrap,
)

pytestmark = pytest.mark.usefixtures("sandbox")


@dataclasses.dataclass
class Line:
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Order:
    id: int
    lines: list[Line]
    note: Optional[str] = None  # noqa: UP045 - the Optional spelling is what is under test


class Signup(pydantic.BaseModel):
    email: str
    age: int


class Invoice(TypedDict):
    number: int
    total: float


def _container(*providers: type[Any]) -> Container:
    builder = ContainerBuilder()
    for provider in providers:
        builder.provide(provider)
    return builder.build()


def _method(cls: type[Any], name: str) -> ProcessMethod:
    (found,) = [m for m in inventory() if m.provider_type is cls and m.name == name]
    return found


# -- registration ----------------------------------------------------------------------------------------------


def test_processor_registers_one_process_method_per_method() -> None:
    @processor
    class Billing:
        @process(queue="invoices")
        async def issue(self, job: Invoice) -> None: ...

        @process(queue="refunds")
        async def refund(self, job: dict[str, Any]) -> None: ...

        async def helper(self) -> None: ...

    methods = [m for m in inventory() if m.provider_type is Billing]
    assert [(m.queue, m.name) for m in methods] == [("invoices", "issue"), ("refunds", "refund")]
    issue = methods[0]
    assert issue.provider_type is Billing
    assert issue.func is vars(Billing)["issue"]
    assert issue.qualname.endswith("Billing.issue")
    assert issue.job_type is Invoice
    assert "queue='invoices'" in repr(issue)


def test_a_sync_method_is_refused_naming_class_and_method() -> None:
    with pytest.raises(RegistrationError) as info:

        class Mailer:
            @process(queue="emails")  # type: ignore[type-var]
            def send(self, job: dict[str, Any]) -> None: ...

    assert re.search(r"Mailer\.send must be 'async def' to be a @process handler \(queue 'emails'\)", str(info.value))
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, NestqError)


def test_an_async_generator_is_not_a_handler() -> None:
    with pytest.raises(RegistrationError, match=r"Feed\.items must be 'async def'"):

        class Feed:
            @process(queue="feed")
            async def items(self, job: int) -> Any:
                yield job


def test_a_method_without_job_parameter_is_refused() -> None:
    with pytest.raises(RegistrationError) as info:

        class Ticker:
            @process(queue="ticks")
            async def tick(self) -> None: ...

    assert "Ticker.tick takes no job parameter" in str(info.value)
    assert "async def tick(self, job: MyJob) -> None" in str(info.value)


def test_a_keyword_only_job_is_no_job_parameter() -> None:
    with pytest.raises(RegistrationError, match=r"Odd\.run takes no job parameter"):

        class Odd:
            @process(queue="odd")
            async def run(self, *, job: int) -> None: ...


def test_two_job_parameters_are_refused() -> None:
    expected = "Pair.run takes more than one job parameter without a default: ['b']"
    with pytest.raises(RegistrationError, match=re.escape(expected)):

        class Pair:
            @process(queue="pair")
            async def run(self, a: int, b: int) -> None: ...


def test_extra_parameters_with_defaults_are_fine() -> None:
    @processor
    class Tuned:
        @process(queue="tuned")
        async def run(self, job: int, retries: int = 3) -> None: ...

    assert _method(Tuned, "run").job_type is int


def test_decorating_a_method_twice_is_refused() -> None:
    with pytest.raises(RegistrationError) as info:

        class Fanout:
            @process(queue="b")
            @process(queue="a")
            async def handle(self, job: int) -> None: ...

    assert "Fanout.handle is already bound to queue 'a'" in str(info.value)
    assert "write a second method for 'b'" in str(info.value)


@pytest.mark.parametrize(
    ("queue", "expected"),
    [("", "queue name is empty"), ("has space", "' ' at position 3 is not allowed"), ("a/b", "'/' at position 1"),
     ("{x}", "'{' at position 0"), ("q" * 129, "129 characters long"), (7, "queue name must be a string, found int 7")],
)
def test_a_bad_queue_name_is_refused_naming_the_method(queue: Any, expected: str) -> None:
    with pytest.raises(RegistrationError) as info:

        class Named:
            @process(queue=queue)
            async def run(self, job: int) -> None: ...

    assert "Named.run: @process(queue=...): " in str(info.value)
    assert expected in str(info.value)


def test_processor_without_process_methods_is_refused() -> None:
    with pytest.raises(RegistrationError, match=r"@processor class .*Idle has no @process\(queue=\.\.\.\) method"):

        @processor
        class Idle:
            async def run(self, job: int) -> None: ...


def test_processor_on_something_that_is_not_a_class() -> None:
    async def handle(self: object, job: int) -> None: ...

    with pytest.raises(RegistrationError, match="@processor decorates a class, not <function"):
        processor(handle)  # type: ignore[type-var]


def test_processor_applied_twice_to_one_class_is_refused() -> None:
    @processor
    class Twice:
        @process(queue="twice")
        async def run(self, job: int) -> None: ...

    with pytest.raises(RegistrationError, match=r"@processor is applied twice to .*Twice \(run on queue 'twice'\)"):
        processor(Twice)
    assert len([m for m in inventory() if m.provider_type is Twice]) == 1


def test_two_classes_on_one_queue_are_fine() -> None:
    @processor
    class First:
        @process(queue="shared")
        async def run(self, job: int) -> None: ...

    @processor
    class Second:
        @process(queue="shared")
        async def run(self, job: int) -> None: ...

    assert {m.provider_type for m in inventory() if m.queue == "shared"} >= {First, Second}


# -- registration errors at import time ------------------------------------------------------------------------


@pytest.fixture
def import_file() -> Iterator[Any]:
    names: list[str] = []

    def load(path: Path, name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        names.append(name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in names:
        sys.modules.pop(name, None)


GOOD_MODULE = """
    from nestq_spec import process, processor

    @processor
    class Reports:
        @process(queue="reports")
        async def build(self, job: dict) -> None:
            pass
"""


def test_same_class_registered_again_from_a_module_imported_under_two_names(tmp_path: Path, import_file: Any) -> None:
    path = tmp_path / "reports_jobs.py"
    path.write_text(textwrap.dedent(GOOD_MODULE))
    import_file(path, "reports_jobs")
    with pytest.raises(RegistrationError) as info:
        import_file(path, "app.reports_jobs")
    message = str(info.value)
    assert "app.reports_jobs.Reports.build is registered twice on queue 'reports'" in message
    assert "first from module 'reports_jobs', again from 'app.reports_jobs'" in message
    assert "imported under two names (for example as __main__ and by its package path)" in message
    assert len([m for m in inventory() if m.queue == "reports"]) == 1


def test_same_class_registered_again_when_its_module_is_executed_again(tmp_path: Path, import_file: Any) -> None:
    path = tmp_path / "again_jobs.py"
    path.write_text(textwrap.dedent(GOOD_MODULE).replace("reports", "again"))
    import_file(path, "again_jobs")
    expected = "again_jobs.Reports.build is registered twice on queue 'again'"
    with pytest.raises(RegistrationError, match=re.escape(expected)):
        import_file(path, "again_jobs")  # what importlib.reload does: the same module executed again


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("def send(self, job: dict) -> None: ...", "Mailer.send must be 'async def'"),
        ("async def send(self) -> None: ...", "Mailer.send takes no job parameter"),
    ],
)
def test_mistakes_fail_when_the_module_is_imported(tmp_path: Path, import_file: Any, body: str, expected: str) -> None:
    path = tmp_path / "bad_jobs.py"
    path.write_text(
        "from nestq_spec import process, processor\n\n"
        "@processor\nclass Mailer:\n    @process(queue='emails')\n    " + body + "\n"
    )
    with pytest.raises(RegistrationError, match=re.escape(expected)):
        import_file(path, "bad_jobs")


# -- handlers decode the job -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_handler_decodes_dataclasses_pydantic_typeddict_list_and_optional() -> None:
    got: dict[str, Any] = {}

    @processor
    class Everything:
        @process(queue="orders")
        async def order(self, job: Order) -> None:
            got["order"] = job

        @process(queue="signups")
        async def signup(self, job: Signup) -> None:
            got["signup"] = job

        @process(queue="invoices")
        async def invoice(self, job: Invoice) -> None:
            got["invoice"] = job

        @process(queue="lines")
        async def lines(self, job: list[Line]) -> None:
            got["lines"] = job

        @process(queue="maybe")
        async def maybe(self, job: Optional[Line]) -> None:  # noqa: UP045
            got.setdefault("maybe", []).append(job)

        @process(queue="raw")
        async def raw(self, job) -> None:  # type: ignore[no-untyped-def]  # unannotated: the payload as is
            got["raw"] = job

    container = _container(Everything)
    await _method(Everything, "order").handler(
        wrap({"id": 1, "lines": [{"sku": "tea"}, {"sku": "cake", "qty": 2}]}), container
    )
    assert got["order"] == Order(1, [Line("tea"), Line("cake", 2)])
    await _method(Everything, "signup").handler(dumps_envelope({"email": "a@b", "age": "42"}), container)
    assert got["signup"] == Signup(email="a@b", age=42)
    await _method(Everything, "invoice").handler(wrap({"number": 3, "total": 2}), container)
    assert got["invoice"] == {"number": 3, "total": 2.0}
    await _method(Everything, "lines").handler(wrap([{"sku": "a"}]), container)
    assert got["lines"] == [Line("a")]
    await _method(Everything, "maybe").handler(wrap(None), container)
    await _method(Everything, "maybe").handler(wrap({"sku": "x", "qty": 5}), container)
    assert got["maybe"] == [None, Line("x", 5)]
    await _method(Everything, "raw").handler('{"v":1,"payload":{"k":[1,2]}}', container)
    assert got["raw"] == {"k": [1, 2]}


@pytest.mark.parametrize(
    ("handler", "payload", "expected"),
    [
        ("order", [1], "payload for {q}.order: expected an object for Order, found list"),
        ("order", {"lines": []}, "payload for {q}.order: Order is missing field 'id'"),
        ("order", {"id": 1}, "payload for {q}.order: Order is missing field 'lines'"),
        ("order", {"id": 1, "lines": [], "extra": 1, "more": 2},
         "payload for {q}.order: Order has no field(s) extra, more"),
        ("order", {"id": "1", "lines": []}, "payload for {q}.order.id: expected int, found str"),
        ("order", {"id": True, "lines": []}, "payload for {q}.order.id: expected int, found bool"),
        ("order", {"id": 1, "lines": {}}, "payload for {q}.order.lines: expected an array, found dict"),
        ("order", {"id": 1, "lines": [{"sku": "a"}, {"sku": 2}]},
         "payload for {q}.order.lines[1].sku: expected str, found int"),
        ("order", {"id": 1, "lines": [], "note": 5},
         "payload for {q}.order.note: fits none of str | None (as str: expected str, found int; "
         "as None: expected null, found int)"),
        ("signup", {"email": "a@b"},
         "payload for {q}.signup: does not validate as Signup: 1 validation error for Signup"),
        ("signup", {"email": "a@b", "age": "old"}, "Input should be a valid integer"),
        ("invoice", {"number": 1}, "payload for {q}.invoice: Invoice is missing key(s) total"),
        ("invoice", {"number": "1", "total": 1.5}, "payload for {q}.invoice.number: expected int, found str"),
        ("invoice", "text", "payload for {q}.invoice: expected an object for Invoice, found str"),
        ("lines", {"sku": "a"}, "payload for {q}.lines: expected an array, found dict"),
        ("lines", [None], "payload for {q}.lines[0]: expected an object for Line, found null"),
        ("maybe", [], "payload for {q}.maybe: fits none of Line | None (as Line: expected an object for Line, "
                      "found list; as None: expected null, found list)"),
    ],
)
@pytest.mark.asyncio
async def test_payloads_that_do_not_fit_raise_payload_decode_error(handler: str, payload: Any, expected: str) -> None:
    ran: list[Any] = []

    @processor
    class Strict:
        @process(queue="orders")
        async def order(self, job: Order) -> None:
            ran.append(job)

        @process(queue="signups")
        async def signup(self, job: Signup) -> None:
            ran.append(job)

        @process(queue="invoices")
        async def invoice(self, job: Invoice) -> None:
            ran.append(job)

        @process(queue="lines")
        async def lines(self, job: list[Line]) -> None:
            ran.append(job)

        @process(queue="maybe")
        async def maybe(self, job: Optional[Line]) -> None:  # noqa: UP045
            ran.append(job)

    with pytest.raises(PayloadDecodeError) as info:
        await _method(Strict, handler).handler(wrap(payload), _container(Strict))
    assert expected.format(q=Strict.__qualname__) in str(info.value)
    assert is_retryable(info.value) is False
    assert isinstance(info.value, NonRetryableError)
    assert ran == []


@pytest.mark.asyncio
async def test_handler_fails_closed_on_the_envelope_before_decoding() -> None:
    ran = []

    @processor
    class Careful:
        @process(queue="careful")
        async def run(self, job: Any) -> None:
            ran.append(job)

    method, container = _method(Careful, "run"), _container(Careful)
    with pytest.raises(UnsupportedVersionError, match="expected v=1, found v=2"):
        await method.handler({"v": 2, "payload": 1}, container)
    with pytest.raises(MalformedEnvelopeError, match="missing key"):
        await method.handler({"payload": 1}, container)
    with pytest.raises(MalformedEnvelopeError, match="not a JSON envelope"):
        await method.handler(b"\xff", container)
    assert ran == []


@injectable
class Clock:
    now = 42


@pytest.mark.asyncio
async def test_handler_gets_its_host_from_the_container_and_runs_in_job_context() -> None:
    seen: list[Any] = []

    @processor
    class Stamped:
        def __init__(self, clock: Clock) -> None:
            self.clock = clock

        @process(queue="stamped")
        async def run(self, job: int) -> None:
            ctx = current_job()
            seen.append((self, self.clock.now, job, ctx.queue, ctx.attempt, ctx.job_id, ctx.method, ctx.container))

    container = _container(Clock, Stamped)
    method = _method(Stamped, "run")
    await method.handler(wrap(1), container)
    await method.handler(wrap(2), container, JobMeta(attempt=3, job_id="abc"))
    first, second = seen
    assert first[0] is second[0] is container.get(Stamped)  # one host, built once
    assert first[1:] == (42, 1, "stamped", 1, None, method.qualname, container)
    assert second[1:] == (42, 2, "stamped", 3, "abc", method.qualname, container)


@pytest.mark.asyncio
async def test_handler_raises_what_the_method_raises() -> None:
    boom = RuntimeError("smtp down")

    @processor
    class Failing:
        @process(queue="failing")
        async def run(self, job: int) -> None:
            raise boom

    with pytest.raises(RuntimeError) as info:
        await _method(Failing, "run").handler(wrap(1), _container(Failing))
    assert info.value is boom


def test_an_unresolvable_job_annotation_fails_at_boot_in_routes() -> None:
    @processor
    class Dangling:
        @process(queue="dangling")
        async def run(self, job: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(RegistrationError, match=r"Dangling\.run: cannot resolve the annotation of 'job'.*NotDefined"):
        routes(_container(Dangling))


# -- routes ----------------------------------------------------------------------------------------------------


def test_routes_keep_only_reachable_processors_grouped_by_queue() -> None:
    @processor
    class Listed:
        @process(queue="r.one")
        async def one(self, job: int) -> None: ...

        @process(queue="r.two")
        async def two(self, job: int) -> None: ...

    @processor
    class AlsoListed:
        @process(queue="r.one")
        async def again(self, job: int) -> None: ...

    @processor
    class ImportedOnly:  # registered in the inventory, but no module of the app provides it
        @process(queue="r.one")
        async def skipped(self, job: int) -> None: ...

    table = routes(_container(Listed, AlsoListed))
    assert [m.qualname for m in table["r.one"]] == [Listed.one.__qualname__, AlsoListed.again.__qualname__]
    assert [m.name for m in table["r.two"]] == ["two"]
    assert all(m.provider_type is not ImportedOnly for methods in table.values() for m in methods)
    assert any(m.provider_type is ImportedOnly for m in inventory())
    assert routes(_container()) == {}


# -- dispatch --------------------------------------------------------------------------------------------------


class Nope(NonRetryableError):
    pass


def _fanout(behaviours: list[BaseException | None]) -> tuple[tuple[ProcessMethod, ...], Container, list[str]]:
    ran: list[str] = []
    namespace: dict[str, Any] = {}
    for index, failure in enumerate(behaviours):

        async def handle(self: object, job: int, index: int = index, failure: BaseException | None = failure) -> None:
            ran.append(f"m{index}:{job}")
            if failure is not None:
                raise failure

        handle.__qualname__ = f"Fan.m{index}"
        namespace[f"m{index}"] = process(queue="fan")(handle)
    cls = processor(type(f"Fan{len(inventory())}", (), namespace))
    container = _container(cls)
    return routes(container)["fan"], container, ran


@pytest.mark.asyncio
async def test_dispatch_runs_every_method() -> None:
    methods, container, ran = _fanout([None, None, None])
    await dispatch(methods, dumps_envelope(7), container)
    assert ran == ["m0:7", "m1:7", "m2:7"]


@pytest.mark.asyncio
async def test_one_failure_is_reraised_as_is_after_every_method_ran() -> None:
    boom = ValueError("boom")
    methods, container, ran = _fanout([boom, None, None])
    with pytest.raises(ValueError) as info:
        await dispatch(methods, wrap(1), container)
    assert info.value is boom
    assert ran == ["m0:1", "m1:1", "m2:1"]


@pytest.mark.asyncio
async def test_several_failures_raise_dispatch_error_naming_each() -> None:
    first, second = RuntimeError("smtp down"), Nope("bad address")
    methods, container, ran = _fanout([first, None, second])
    with pytest.raises(DispatchError) as info:
        await dispatch(methods, b'{"v":1,"payload":2}', container, JobMeta(2, "id-9"))
    error = info.value
    assert ran == ["m0:2", "m1:2", "m2:2"]
    assert error.queue == "fan"
    assert list(error.failures.values()) == [first, second]
    assert list(error.failures) == [methods[0].qualname, methods[2].qualname]
    assert str(error).startswith("2 handler(s) failed on queue 'fan': ")
    assert "RuntimeError: smtp down" in str(error)
    assert "Nope: bad address" in str(error)
    assert is_retryable(error) is True  # one failure a retry may fix


@pytest.mark.asyncio
async def test_dispatch_error_of_only_non_retryable_failures_is_not_retryable() -> None:
    methods, container, _ = _fanout([Nope("a"), Nope("b")])
    with pytest.raises(DispatchError) as info:
        await dispatch(methods, wrap(1), container)
    assert is_retryable(info.value) is False


@pytest.mark.parametrize(
    ("envelope", "error", "message"),
    [
        (b"not json", MalformedEnvelopeError, "not a JSON envelope"),
        ({"v": 2, "payload": 1}, UnsupportedVersionError, "found v=2"),
        ('"{\\"v\\":1,\\"payload\\":1}"', MalformedEnvelopeError, "found a string (JSON text encoded twice?)"),
        (b"[1]", MalformedEnvelopeError, "found an array"),
    ],
)
@pytest.mark.asyncio
async def test_dispatch_unwraps_once_up_front_and_runs_nothing_on_a_bad_envelope(
    envelope: Any, error: type[EnvelopeError], message: str
) -> None:
    methods, container, ran = _fanout([None, None])
    with pytest.raises(error, match=re.escape(message)):
        await dispatch(methods, envelope, container)
    assert ran == []


def test_is_retryable() -> None:
    assert is_retryable(RuntimeError()) is True
    assert is_retryable(TimeoutError()) is True
    assert is_retryable(NonRetryableError("x")) is False
    assert is_retryable(PayloadDecodeError("x")) is False
    assert is_retryable(MalformedEnvelopeError("x")) is False
    assert is_retryable(NestqError("x")) is True
    nested = DispatchError("q", {"a": Nope("x"), "b": DispatchError("q", {"c": RuntimeError()})})
    assert is_retryable(nested) is True
    assert is_retryable(DispatchError("q", {"a": Nope("x"), "b": PayloadDecodeError("y")})) is False


def _checked_payload(envelope: Any) -> Any:
    """The payload by the checked path only (loads_envelope, then unwrap), as dispatch did before its fast path."""
    from nestq_spec.envelope import loads_envelope, unwrap

    parsed = loads_envelope(envelope)
    if isinstance(parsed, str):
        raise MalformedEnvelopeError(
            'envelope must be a JSON object {"v": 1, "payload": ...}, found a string (JSON text encoded twice?)'
        )
    return unwrap(parsed)


@pytest.mark.parametrize(
    "envelope",
    [
        b'{"v":1,"payload":{"n":1}}',
        '{"v":1,"payload":[1,"x"]}',
        b' {"v":1,"payload":1}\n',
        b'{"payload":null,"v":1}',
        b'{"v":1,"v":1,"payload":1}',
        b'{"v":true,"payload":1}',
        b'{"v":1.0,"payload":1}',
        b'{"v":2,"payload":1}',
        b'{"v":1,"payload":1,"x":2}',
        b'{"v":1,"x":2}',
        b'{"payload":1,"x":2}',
        b'{"v":1,"payload":NaN}',
        b'\xff{"v":1,"payload":1}',
        '{"v":1,"payload":"\ud800"}',
        b'{"v":1,"payload":1}x',
        b"[1]",
        b"1",
        b"",
        b'"{\\"v\\":1,\\"payload\\":1}"',
        bytearray(b'{"v":1,"payload":1}'),
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_the_fast_unwrap_of_dispatch_agrees_with_the_checked_path(envelope: Any) -> None:
    from nestq_spec.registry import _payload

    try:
        expected: Any = ("payload", _checked_payload(envelope))
    except EnvelopeError as exc:
        expected = (type(exc), str(exc).split(";")[0])
    try:
        found: Any = ("payload", _payload(envelope))
    except EnvelopeError as exc:
        found = (type(exc), str(exc).split(";")[0])
    assert found == expected


@pytest.mark.asyncio
async def test_dispatch_job_checks_the_attempt_as_job_meta_does() -> None:
    from nestq_spec.registry import _dispatch_job

    methods, container, ran = _fanout([None])
    for attempt in (0, -1, True):
        with pytest.raises(ValueError, match="attempts start at 1"):
            await _dispatch_job(methods, b'{"v":1,"payload":1}', container, attempt, "id")
    assert ran == []
    await _dispatch_job(methods, b'{"v":1,"payload":1}', container, 2, "id")
    assert len(ran) == 1
