"""JobProducer: push_json is the one method a driver writes; push (typed) and queue names are checked once, here."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from typing import Any, TypedDict

import pydantic
import pytest

from nestq_spec import (
    MAX_QUEUE_NAME_LENGTH,
    JobProducer,
    NestqError,
    QueueNameError,
    encode_job,
    to_json_value,
    unwrap,
    validate_queue_name,
)

from ._helpers import RecordingProducer


@dataclasses.dataclass
class Address:
    city: str
    zip: str | None = None


@dataclasses.dataclass
class Customer:
    name: str
    address: Address
    tags: tuple[str, ...] = ()


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


@dataclasses.dataclass
class Ticket:
    title: str
    priority: Priority


class InvoiceDict(TypedDict):
    number: int
    lines: list[str]


class Refund(pydantic.BaseModel):
    order: int
    amount: float
    reason: str | None = None


class Hand:
    """Not a pydantic model, but it has a model_dump() without the ``mode`` keyword."""

    def model_dump(self) -> dict[str, Any]:
        return {"cards": ["A", "K"]}


async def _pushed(job: object) -> Any:
    producer = RecordingProducer()
    await producer.push("jobs", job)
    ((queue, data),) = producer.stored
    assert queue == "jobs"
    return unwrap(data)


@pytest.mark.asyncio
async def test_push_a_dataclass() -> None:
    job = Customer("Ada", Address("London"), tags=("vip", "early"))
    assert await _pushed(job) == {"name": "Ada", "address": {"city": "London", "zip": None}, "tags": ["vip", "early"]}


@pytest.mark.asyncio
async def test_push_a_dict_and_a_typeddict() -> None:
    assert await _pushed({"a": [1, 2.5, None, True, "é"]}) == {"a": [1, 2.5, None, True, "é"]}
    invoice: InvoiceDict = {"number": 7, "lines": ["tea", "cake"]}
    assert await _pushed(invoice) == {"number": 7, "lines": ["tea", "cake"]}


@pytest.mark.asyncio
async def test_push_a_pydantic_model_and_a_model_dump_object() -> None:
    assert await _pushed(Refund(order=3, amount=9.5)) == {"order": 3, "amount": 9.5, "reason": None}
    assert await _pushed(Hand()) == {"cards": ["A", "K"]}


@pytest.mark.asyncio
async def test_push_enums_and_dataclasses_nested_in_plain_data() -> None:
    job = {"tickets": [Ticket("bug", Priority.HIGH)], "address": Address("Oslo", "0150")}
    assert await _pushed(job) == {
        "tickets": [{"title": "bug", "priority": "high"}],
        "address": {"city": "Oslo", "zip": "0150"},
    }


@pytest.mark.asyncio
async def test_push_scalars_and_lists() -> None:
    for job in (None, 1, -2.5, "x", [1, [2]], True):
        assert await _pushed(job) == job


class _Unknown:
    pass


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({"ids": {1, 2}}, "job of type dict cannot become JSON: $.ids is a set, which is not a JSON type"),
        ({"x": float("nan")}, "job of type dict cannot become JSON: $.x is nan, which JSON cannot carry"),
        ({1: "a"}, "job of type dict cannot become JSON: $ has a key 1 of type int; JSON keys are strings"),
        (Customer("Ada", Address(city=_Unknown())),  # type: ignore[arg-type]
         "job of type Customer cannot become JSON: $.address.city is a _Unknown, which is not a JSON type"),
        ([1, {"when": object()}],
         "job of type list cannot become JSON: $[1].when is an object, which is not a JSON type"),
        (_Unknown(), "job of type _Unknown cannot become JSON: $ is a _Unknown, which is not a JSON type"),
        (Customer, "job of type type cannot become JSON: $ is a type, which is not a JSON type"),
        (b"raw", "job of type bytes cannot become JSON: $ is a bytes, which is not a JSON type"),
    ],
)
@pytest.mark.asyncio
async def test_push_rejects_what_cannot_become_json_before_sending(job: object, expected: str) -> None:
    producer = RecordingProducer()
    with pytest.raises(TypeError) as info:
        await producer.push("jobs", job)
    assert str(info.value) == expected
    assert producer.calls == 0


@pytest.mark.asyncio
async def test_push_reports_a_failing_model_dump_as_a_type_error() -> None:
    class Broken:
        def model_dump(self, mode: str = "python") -> Any:
            raise ValueError("cannot serialize field 'x'")

    producer = RecordingProducer()
    with pytest.raises(TypeError, match="Broken whose model_dump\\(\\) failed: cannot serialize field 'x'"):
        await producer.push("jobs", Broken())
    assert producer.calls == 0


def test_to_json_value_returns_plain_json_never_the_objects_given() -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    class Name(str):
        pass

    value = to_json_value({"level": Level.HIGH, Name("k"): Name("v"), "t": (1,)})
    assert value == {"level": 3, "k": "v", "t": [1]}
    assert isinstance(value, dict)
    assert type(value["level"]) is int
    assert all(type(k) is str for k in value)
    assert type(value["k"]) is str


# -- queue names ---------------------------------------------------------------------------------------------------

BAD_NAMES = [
    ("", "queue name is empty"),
    ("a" * (MAX_QUEUE_NAME_LENGTH + 1), "queue name is 129 characters long, the limit is 128"),
    ("has space", "invalid queue name 'has space': ' ' at position 3 is not allowed"),
    ("{tagged}", "invalid queue name '{tagged}': '{' at position 0 is not allowed"),
    ("jobs{1}", "'{' at position 4 is not allowed"),
    ("a/b", "'/' at position 1 is not allowed"),
    ("-lead", "'-' at position 0 is not allowed"),
    (".hidden", "'.' at position 0 is not allowed"),
    ("tab\t", "'\\t' at position 3 is not allowed"),
    ("naïve", "'ï' at position 2 is not allowed"),
    ("a*", "'*' at position 1 is not allowed"),
]
NOT_STRINGS = [(None, "NoneType None"), (123, "int 123"), (b"jobs", "bytes b'jobs'"), (["jobs"], "list ['jobs']")]


@pytest.mark.parametrize(("name", "expected"), BAD_NAMES)
def test_bad_queue_names(name: str, expected: str) -> None:
    with pytest.raises(QueueNameError) as info:
        validate_queue_name(name)
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, NestqError)


@pytest.mark.parametrize(("name", "shown"), NOT_STRINGS)
def test_queue_names_must_be_strings(name: object, shown: str) -> None:
    with pytest.raises(QueueNameError, match=re.escape(f"queue name must be a string, found {shown}")):
        validate_queue_name(name)


def test_rules_for_allowed_characters_are_in_the_message() -> None:
    with pytest.raises(QueueNameError, match=re.escape("use ASCII letters, digits, '_', '-', '.', ':'")):
        validate_queue_name("a b")


@pytest.mark.parametrize("name", ["a", "A", "0", "_", "emails", "emails.high", "tenant:42:jobs", "a-b_c.d:e",
                                  "x" * MAX_QUEUE_NAME_LENGTH])
def test_good_queue_names(name: str) -> None:
    assert validate_queue_name(name) == name
    assert validate_queue_name(name) == name  # the second time from the cache of names seen


@pytest.mark.parametrize(("name", "expected"), [*BAD_NAMES, *NOT_STRINGS])
@pytest.mark.asyncio
async def test_push_and_push_json_refuse_bad_queue_names_before_sending(name: Any, expected: str) -> None:
    producer = RecordingProducer()
    with pytest.raises(QueueNameError):
        await producer.push(name, {"a": 1})
    assert producer.calls == 0
    with pytest.raises(QueueNameError):
        await producer.push_json(name, {"a": 1})
    with pytest.raises(QueueNameError):
        encode_job(name, {"a": 1})
    assert producer.stored == []


@pytest.mark.asyncio
async def test_push_json_refuses_non_json_before_storing() -> None:
    producer = RecordingProducer()
    for payload, expected in [({1, 2}, "$ is a set"), ({"x": float("nan")}, "$.x is nan"), ({2: 1}, "$ has a key 2"),
                              (object(), "$ is an object")]:
        with pytest.raises(TypeError, match=re.escape("job payload is not JSON: " + expected)):
            await producer.push_json("jobs", payload)  # type: ignore[arg-type]
    assert producer.stored == []


def test_encode_job_checks_the_queue_first_then_wraps_once() -> None:
    with pytest.raises(QueueNameError):
        encode_job("", {1, 2})  # type: ignore[arg-type]
    data = encode_job("jobs", {"a": 1})
    assert json.loads(data) == {"v": 1, "payload": {"a": 1}}


def test_job_producer_is_abstract_on_push_json_only() -> None:
    with pytest.raises(TypeError, match="push_json"):
        JobProducer()  # type: ignore[abstract]
    assert JobProducer.__abstractmethods__ == frozenset({"push_json"})
