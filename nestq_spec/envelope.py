"""The wire envelope: ``{"v": 1, "payload": <job JSON>}``.

The producer wraps exactly once; the consumer unwraps and fails closed on anything else. The storage in between
only moves the JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, Final

from nestq_spec.errors import MalformedEnvelopeError, UnsupportedVersionError
from nestq_spec.jsonvalue import JSONValue

__all__ = [
    "WIRE_FORMAT_VERSION",
    "dumps_envelope",
    "envelope_schema",
    "loads_envelope",
    "unwrap",
    "validate_envelope",
    "wrap",
]

WIRE_FORMAT_VERSION: Final = 1
"""The envelope version this package writes and accepts. Use it instead of hard-coding ``1``."""

_KEYS: Final = frozenset(("v", "payload"))
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def wrap(payload: JSONValue) -> dict[str, JSONValue]:
    """Wrap a job's JSON payload in the wire envelope. Call it exactly once, at the producer edge."""
    return {"v": WIRE_FORMAT_VERSION, "payload": payload}


def dumps_envelope(payload: JSONValue) -> bytes:
    """Wrap ``payload`` and encode it as compact UTF-8 JSON, ready for storage.

    Raises :class:`TypeError` naming the problem when the payload cannot become JSON (a set, a NaN, a non-string
    key...), before anything is sent.
    """
    try:
        text = _ENCODER.encode({"v": WIRE_FORMAT_VERSION, "payload": payload})
    except (TypeError, ValueError) as exc:
        raise TypeError(f"job payload is not JSON: {exc}") from None
    return text.encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_envelope(data: str | bytes | bytearray | memoryview) -> JSONValue:
    """Parse stored bytes as strict JSON (no ``NaN``/``Infinity``), raising :class:`MalformedEnvelopeError`."""
    try:
        if isinstance(data, memoryview):
            data = data.tobytes()
        return json.loads(data, parse_constant=_reject_constant)  # type: ignore[no-any-return]
    except (ValueError, UnicodeDecodeError) as exc:
        shown = bytes(data[:60]) if not isinstance(data, str) else data[:60]
        raise MalformedEnvelopeError(
            f"message is not a JSON envelope: {exc}; expected {{\"v\": {WIRE_FORMAT_VERSION}, "
            f"\"payload\": ...}}, found {shown!r}"
        ) from None


def _describe(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def unwrap(value: Mapping[str, Any] | str | bytes | bytearray | memoryview) -> JSONValue:
    """Return the payload of a wire envelope, failing closed.

    ``value`` is the envelope as parsed JSON or as the raw text/bytes from storage. A missing ``v`` or ``payload``,
    an extra key, a value that is not an object, text that is not JSON, or a version other than
    :data:`WIRE_FORMAT_VERSION` raises a subclass of :class:`~nestq_spec.errors.EnvelopeError`, which is never
    retryable. The message says what was expected and what was found.
    """
    if isinstance(value, str | bytes | bytearray | memoryview):
        value = loads_envelope(value)  # type: ignore[assignment]
    if not isinstance(value, Mapping):
        raise MalformedEnvelopeError(
            f"envelope must be a JSON object {{\"v\": {WIRE_FORMAT_VERSION}, \"payload\": ...}}, "
            f"found {_describe(value)}"
        )
    if len(value) != 2 or "v" not in value or "payload" not in value:
        missing = sorted(_KEYS - value.keys())
        extra = sorted(str(k) for k in value.keys() - _KEYS)
        problems = []
        if missing:
            problems.append("missing key(s) " + ", ".join(repr(k) for k in missing))
        if extra:
            problems.append("unexpected key(s) " + ", ".join(repr(k) for k in extra))
        raise MalformedEnvelopeError(
            f"envelope must have exactly the keys 'v' and 'payload': {'; '.join(problems)}"
        )
    version = value["v"]
    # bool is an int subclass: {"v": true} must not pass for version 1.
    if type(version) is not int or version != WIRE_FORMAT_VERSION:
        raise UnsupportedVersionError(WIRE_FORMAT_VERSION, version)
    payload: JSONValue = value["payload"]
    return payload


@cache
def envelope_schema() -> dict[str, Any]:
    """Return the envelope's JSON Schema (draft-07), as shipped in ``nestq_spec/schema/envelope.schema.json``."""
    text = resources.files("nestq_spec").joinpath("schema/envelope.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_envelope(value: object) -> None:
    """Validate a parsed envelope against the shipped JSON Schema (slow; not on the hot path).

    Raises :class:`MalformedEnvelopeError` with the schema's complaint.
    """
    import jsonschema

    validator = jsonschema.Draft7Validator(envelope_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise MalformedEnvelopeError(f"envelope fails its JSON Schema at {where}: {error.message}")
