"""The wire envelope: wrap, unwrap failing closed, strict encoding and parsing, the shipped schema."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from nestq_spec import (
    WIRE_FORMAT_VERSION,
    EnvelopeError,
    MalformedEnvelopeError,
    NestqError,
    NonRetryableError,
    UnsupportedVersionError,
    dumps_envelope,
    envelope_schema,
    is_retryable,
    loads_envelope,
    unwrap,
    validate_envelope,
    wrap,
)

SHAPE = 'expected {"v": 1, "payload": ...}'


def test_version_is_one_and_wrap_is_the_two_key_object() -> None:
    assert WIRE_FORMAT_VERSION == 1
    assert wrap({"a": 1}) == {"v": 1, "payload": {"a": 1}}
    assert unwrap({"v": 1, "payload": {"a": 1}}) == {"a": 1}


@pytest.mark.parametrize("payload", [None, 0, -1, 1.5, "", "text", [], {}, [1, [2, {"x": None}]], True, False])
def test_unwrap_of_wrap_gives_the_payload_back(payload: Any) -> None:
    assert unwrap(wrap(payload)) == payload
    assert unwrap(dumps_envelope(payload)) == payload
    assert unwrap(dumps_envelope(payload).decode()) == payload


# -- wrong versions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "shown"),
    [(True, "True"), (False, "False"), ("1", "'1'"), (2, "2"), (0, "0"), (-1, "-1"), (1.0, "1.0"), (None, "None"),
     ([1], "[1]"), ({"major": 1}, "{'major': 1}")],
)
def test_wrong_version_is_refused_naming_expected_and_found(version: object, shown: str) -> None:
    with pytest.raises(UnsupportedVersionError) as info:
        unwrap({"v": version, "payload": {"a": 1}})
    message = str(info.value)
    assert "expected v=1" in message
    assert f"found v={shown}" in message
    assert "wrap exactly once" in message
    assert info.value.expected == 1
    assert info.value.found == version
    assert type(info.value.found) is type(version)


@pytest.mark.parametrize(
    ("text", "shown"),
    [(b'{"v": true, "payload": 1}', "True"), (b'{"v": "1", "payload": 1}', "'1'"), (b'{"v": 2, "payload": 1}', "2"),
     (b'{"v": 1.0, "payload": 1}', "1.0")],
)
def test_wrong_version_in_raw_bytes(text: bytes, shown: str) -> None:
    with pytest.raises(UnsupportedVersionError, match=f"expected v=1, found v={shown}"):
        unwrap(text)


def test_envelope_errors_are_one_non_retryable_family() -> None:
    bad: Any
    for bad in ({"v": 2, "payload": 1}, {"payload": 1}, [], b"{"):
        with pytest.raises(EnvelopeError) as info:
            unwrap(bad)
        assert isinstance(info.value, NonRetryableError)
        assert isinstance(info.value, NestqError)
        assert not isinstance(info.value, KeyError)
        assert is_retryable(info.value) is False


# -- wrong shape -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "expected"),
    [
        ({"payload": 1}, "missing key(s) 'v'"),
        ({"v": 1}, "missing key(s) 'payload'"),
        ({}, "missing key(s) 'payload', 'v'"),
        ({"v": 1, "payload": 1, "id": "x"}, "unexpected key(s) 'id'"),
        ({"v": 1, "payload": 1, "id": "x", "attempt": 2}, "unexpected key(s) 'attempt', 'id'"),
        ({"v": 1, "body": 1}, "missing key(s) 'payload'; unexpected key(s) 'body'"),
        ({"version": 1, "payload": 1}, "missing key(s) 'v'; unexpected key(s) 'version'"),
    ],
)
def test_missing_and_extra_keys_are_named(envelope: dict[str, Any], expected: str) -> None:
    with pytest.raises(MalformedEnvelopeError) as info:
        unwrap(envelope)
    assert "envelope must have exactly the keys 'v' and 'payload'" in str(info.value)
    assert expected in str(info.value)


def test_missing_keys_in_raw_text() -> None:
    with pytest.raises(MalformedEnvelopeError, match="missing key\\(s\\) 'v'"):
        unwrap(b'{"payload": {"a": 1}}')
    with pytest.raises(MalformedEnvelopeError, match="unexpected key\\(s\\) 'x'"):
        unwrap('{"v": 1, "payload": 1, "x": 0}')


@pytest.mark.parametrize(
    ("value", "found"),
    [([], "an array"), ([{"v": 1, "payload": 1}], "an array"), ((1, 2), "tuple"), (1, "a number"),
     (1.5, "a number"), (None, "null"), (True, "a boolean")],
)
def test_non_objects_are_refused(value: object, found: str) -> None:
    with pytest.raises(MalformedEnvelopeError) as info:
        unwrap(value)  # type: ignore[arg-type]
    assert str(info.value) == f'envelope must be a JSON object {{"v": 1, "payload": ...}}, found {found}'


@pytest.mark.parametrize(
    ("text", "found"),
    [(b"[1, 2]", "an array"), (b'"text"', "a string"), (b"42", "a number"), (b"-0.5", "a number"),
     (b"null", "null"), (b"true", "a boolean")],
)
def test_non_objects_in_raw_bytes_are_refused(text: bytes, found: str) -> None:
    with pytest.raises(MalformedEnvelopeError, match=f"must be a JSON object .*, found {found}$"):
        unwrap(text)


def test_json_text_encoded_twice_is_a_string_not_an_envelope() -> None:
    twice = json.dumps(json.dumps({"v": 1, "payload": 1}))
    with pytest.raises(MalformedEnvelopeError, match="found a string"):
        unwrap(twice)


# -- not JSON ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "Expecting value"),
        (b"{", "Expecting property name"),
        (b"hello", "Expecting value"),
        (b"{'v': 1, 'payload': 1}", "Expecting property name enclosed in double quotes"),
        (b'{"v": 1, "payload": 1} trailing', "Extra data"),
        (b'{"v": 1, "payload": 1}{"v": 1, "payload": 2}', "Extra data"),
        (b'{"v": 1, "payload": [1,]}', "Expecting value"),
    ],
)
def test_bytes_that_are_not_json(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEnvelopeError) as info:
        unwrap(data)
    message = str(info.value)
    assert message.startswith("message is not a JSON envelope: ")
    assert reason in message
    assert SHAPE in message
    assert f"found {data[:60]!r}" in message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_text_is_refused(constant: str) -> None:
    for data in (f'{{"v": 1, "payload": {constant}}}', f'{{"v": 1, "payload": {{"x": [{constant}]}}}}'.encode()):
        with pytest.raises(MalformedEnvelopeError) as info:
            unwrap(data)
        assert f"{constant} is not valid JSON" in str(info.value)
        assert SHAPE in str(info.value)
    with pytest.raises(MalformedEnvelopeError, match=f"{constant} is not valid JSON"):
        loads_envelope(constant)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"v": 1, "payload": "\xff"}', "invalid start byte at byte 21"),
        (b'{"v": 1, "payload": "\xc3"}', "invalid continuation byte at byte 21"),
        (b"\xed\xa0\x80", "invalid continuation byte at byte 0"),  # a UTF-8-encoded lone surrogate
        (b'{"v": 1, "payload": "caf\xe9"}', "at byte 24"),  # Latin-1, not UTF-8
    ],
)
def test_invalid_utf8_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEnvelopeError) as info:
        unwrap(data)
    assert "message is not a JSON envelope: it is not UTF-8" in str(info.value)
    assert reason in str(info.value)
    assert SHAPE in str(info.value)


def test_other_unicode_encodings_are_not_guessed() -> None:
    text = '{"v": 1, "payload": "x"}'
    bom = b"\xef\xbb\xbf"
    for data in (text.encode("utf-16"), text.encode("utf-16-le"), text.encode("utf-32"), bom + text.encode()):
        with pytest.raises(MalformedEnvelopeError, match="message is not a JSON envelope"):
            unwrap(data)


def test_nesting_too_deep_for_the_parser_is_malformed_not_a_recursion_error() -> None:
    data = b'{"v": 1, "payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(MalformedEnvelopeError, match="nested too deeply"):
        unwrap(data)


def test_raw_forms_accepted() -> None:
    text = '{"v":1,"payload":{"name":"Zoë","n":[1,2.5,null]}}'
    expected = {"name": "Zoë", "n": [1, 2.5, None]}
    for data in (text, text.encode(), bytearray(text.encode()), memoryview(text.encode())):
        assert unwrap(data) == expected
    assert loads_envelope(memoryview(text.encode())) == {"v": 1, "payload": expected}


def test_escaped_lone_surrogate_round_trips() -> None:
    payload: Any = {"s": "\ud800 and \udfff"}
    data = dumps_envelope(payload)
    assert b"\\ud800" in data
    assert unwrap(data) == payload


# -- encoding --------------------------------------------------------------------------------------------------


def test_dumps_envelope_is_compact_utf8_json_of_the_wrapped_payload() -> None:
    payload: Any = {"name": "Zoë ☃ 𝄞", "n": [1, 2.5, None, True], "big": 2**80, "neg": -0.0}
    data = dumps_envelope(payload)
    assert isinstance(data, bytes)
    assert data == json.dumps(wrap(payload), separators=(",", ":"), ensure_ascii=False).encode()
    assert data.startswith(b'{"v":1,"payload":{')
    assert "Zoë ☃ 𝄞".encode() in data


class _Opaque:
    pass


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({1, 2}, "$ is a set, which is not a JSON type"),
        ({"tags": frozenset({"a"})}, "$.tags is a frozenset, which is not a JSON type"),
        (float("nan"), "$ is nan, which JSON cannot carry"),
        ({"x": [1.0, float("inf")]}, "$.x[1] is inf, which JSON cannot carry"),
        ({"x": float("-inf")}, "$.x is -inf, which JSON cannot carry"),
        ({1: "one"}, "$ has a key 1 of type int; JSON keys are strings"),
        ({"a": {True: 1}}, "$.a has a key True of type bool; JSON keys are strings"),
        ({"a": [{None: 1}]}, "$.a[0] has a key None of type NoneType; JSON keys are strings"),
        ({(1, 2): "pair"}, "$ has a key (1, 2) of type tuple; JSON keys are strings"),
        ({"when": _Opaque()}, "$.when is a _Opaque, which is not a JSON type"),
        ({"raw": b"bytes"}, "$.raw is a bytes, which is not a JSON type"),
        ({"odd key": object()}, "$['odd key'] is an object, which is not a JSON type"),
        pytest.param(10**5000, "$ cannot be encoded: Exceeds the limit", id="int-over-4300-digits"),
    ],
)
def test_dumps_envelope_rejects_what_is_not_json_naming_the_part(payload: Any, expected: str) -> None:
    with pytest.raises(TypeError) as info:
        dumps_envelope(payload)
    assert str(info.value).startswith("job payload is not JSON: ")
    assert expected in str(info.value)


def test_dumps_envelope_rejects_a_cycle() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="nested too deeply or contains itself"):
        dumps_envelope(loop)  # type: ignore[arg-type]


def test_tuples_and_scalar_subclasses_encode_as_their_json() -> None:
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    assert unwrap(dumps_envelope({"t": (1, "a"), "l": Level.HIGH})) == {"t": [1, "a"], "l": 3}  # type: ignore[dict-item]


# -- the schema ------------------------------------------------------------------------------------------------


def test_schema_ships_as_package_data_and_is_draft_07() -> None:
    shipped = resources.files("nestq_spec").joinpath("schema/envelope.schema.json")
    assert shipped.is_file()
    schema = envelope_schema()
    assert schema == json.loads(shipped.read_text("utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["required"] == ["v", "payload"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["v"]["const"] == WIRE_FORMAT_VERSION


def test_schema_copies_cannot_change_validation() -> None:
    schema = envelope_schema()
    schema["additionalProperties"] = True
    schema["required"] = []
    assert envelope_schema()["additionalProperties"] is False
    with pytest.raises(MalformedEnvelopeError):
        validate_envelope({"v": 1, "payload": 1, "x": 2})


@pytest.mark.parametrize(
    ("envelope", "where", "complaint"),
    [
        ({"v": 2, "payload": 1}, "v", "1 was expected"),
        ({"v": True, "payload": 1}, "v", "is not of type 'integer'"),
        ({"v": "1", "payload": 1}, "v", "is not of type 'integer'"),
        ({"payload": 1}, "(root)", "'v' is a required property"),
        ({"v": 1}, "(root)", "'payload' is a required property"),
        ({"v": 1, "payload": 1, "x": 0}, "(root)", "Additional properties are not allowed ('x' was unexpected)"),
        ([1], "(root)", "is not of type 'object'"),
    ],
)
def test_validate_envelope_reports_the_schema_complaint(envelope: object, where: str, complaint: str) -> None:
    with pytest.raises(MalformedEnvelopeError) as info:
        validate_envelope(envelope)
    assert f"envelope fails its JSON Schema at {where}: " in str(info.value)
    assert complaint in str(info.value)
    # Whatever the schema refuses, unwrap refuses too.
    with pytest.raises(EnvelopeError):
        unwrap(envelope)  # type: ignore[arg-type]


def test_validate_envelope_accepts_what_wrap_makes() -> None:
    payloads: list[Any] = [None, 1, "x", [1, {"a": []}], {"deep": {"er": [True]}}]
    for payload in payloads:
        validate_envelope(wrap(payload))
        validate_envelope(json.loads(dumps_envelope(payload)))
