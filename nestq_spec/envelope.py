"""The wire envelope: ``{"v": 1, "payload": <job JSON>}``.

The producer wraps exactly once; the consumer unwraps and fails closed on anything else. The storage in between
only moves the JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any, Final

from nestq_spec.errors import MalformedEnvelopeError, UnsupportedVersionError
from nestq_spec.jsonvalue import JSONValue, explain_not_json, keys_are_strings

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


def _not_json(obj: object) -> Any:
    raise TypeError(f"{type(obj).__name__} is not a JSON type")


def _make_encode(ascii_only: bool = False) -> Callable[[object], str]:
    """Compact, strict (no NaN) JSON encoding, built once.

    ``json.dumps`` builds a new encoder on every call; reusing the C encoder directly is what keeps the seam's
    encode step as fast as a bare ``json.dumps`` while it also checks the keys.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # no C accelerator (another Python implementation): the stdlib encoder object
        encoder = json.JSONEncoder(
            ensure_ascii=ascii_only, allow_nan=False, separators=(",", ":"), default=_not_json
        )
        return encoder.encode
    strings = json.encoder.encode_basestring_ascii if ascii_only else json.encoder.encode_basestring
    # markers=None: no circular check; a cycle ends in RecursionError, which dumps_envelope reports.
    chunks = c_make_encoder(None, _not_json, strings, None, ":", ",", False, False, False)

    def encode(obj: object) -> str:
        return "".join(chunks(obj, 0))

    return encode


_encode: Final = _make_encode()
# For the rare string holding a lone surrogate, which UTF-8 cannot carry but a JSON \u escape can.
_encode_ascii: Final = _make_encode(ascii_only=True)
_ENVELOPE_HEAD: Final = f'{{"v":{WIRE_FORMAT_VERSION},"payload":'


def wrap(payload: JSONValue) -> dict[str, JSONValue]:
    """Wrap a job's JSON payload in the wire envelope. Call it exactly once, at the producer edge."""
    return {"v": WIRE_FORMAT_VERSION, "payload": payload}


def dumps_envelope(payload: JSONValue) -> bytes:
    """Wrap ``payload`` and encode it as compact UTF-8 JSON, ready for storage.

    Raises :class:`TypeError` naming the part that cannot become JSON (a set, a NaN, a non-string key, an
    object...), before anything is sent. The bytes equal ``json.dumps(wrap(payload), separators=(",", ":"),
    ensure_ascii=False).encode()``.
    """
    problem: BaseException | None = None
    try:
        if keys_are_strings(payload):
            text = _encode(payload)
            try:
                return (_ENVELOPE_HEAD + text + "}").encode()
            except UnicodeEncodeError:
                return (_ENVELOPE_HEAD + _encode_ascii(payload) + "}").encode()
    except (TypeError, ValueError, RecursionError) as exc:
        problem = exc
    raise TypeError(f"job payload is not JSON: {explain_not_json(payload, problem)}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# One decoder, built once: json.loads(text, parse_constant=...) would build a new one per call.
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_scan_once: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _parse(text: str) -> Any:
    """``_DECODER.decode(text)``, minus its Python-level wrapping for the usual case of text with no padding."""
    try:
        value, end = _scan_once(text, 0)
    except (StopIteration, ValueError):
        return _DECODER.decode(text)  # leading whitespace, or an error: let decode() say precisely what
    if end != len(text):
        return _DECODER.decode(text)  # trailing whitespace is fine, anything else is "Extra data"
    return value


_ENVELOPE_SHAPE: Final = f'expected {{"v": {WIRE_FORMAT_VERSION}, "payload": ...}}'


def loads_envelope(data: str | bytes | bytearray | memoryview) -> JSONValue:
    """Parse stored text or UTF-8 bytes as strict JSON, raising :class:`MalformedEnvelopeError`.

    Strict: bytes must be UTF-8 (no other encoding is guessed, no lone surrogates, no byte-order mark), and
    ``NaN``/``Infinity`` are refused.
    """
    try:
        text = data if isinstance(data, str) else str(data, "utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEnvelopeError(
            f"message is not a JSON envelope: it is not UTF-8 ({exc.reason} at byte {exc.start}); "
            f"{_ENVELOPE_SHAPE}, found {_shown(data)}"
        ) from None
    try:
        return _parse(text)  # type: ignore[no-any-return]
    except (ValueError, RecursionError) as exc:
        reason = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise MalformedEnvelopeError(
            f"message is not a JSON envelope: {reason}; {_ENVELOPE_SHAPE}, found {_shown(data)}"
        ) from None


def _shown(data: str | bytes | bytearray | memoryview) -> str:
    return repr(data[:60] if isinstance(data, str) else bytes(data[:60]))


def _describe(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def unwrap(value: JSONValue | Mapping[str, Any] | bytes | bytearray | memoryview) -> JSONValue:
    """Return the payload of a wire envelope, failing closed.

    ``value`` is the envelope as parsed JSON (any JSON value is accepted, and anything but an object refused) or
    as the raw text/bytes from storage (a ``str`` is always taken as JSON text). A missing ``v`` or ``payload``,
    an extra key, a value that is not an object, text that is not JSON, or a version other than
    :data:`WIRE_FORMAT_VERSION` raises a subclass of :class:`~nestq_spec.errors.EnvelopeError`, which is never
    retryable. The message says what was expected and what was found.
    """
    if isinstance(value, str | bytes | bytearray | memoryview):
        value = loads_envelope(value)
    if type(value) is not dict and not isinstance(value, Mapping):
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
def _schema_text() -> str:
    return resources.files("nestq_spec").joinpath("schema/envelope.schema.json").read_text("utf-8")


def envelope_schema() -> dict[str, Any]:
    """Return the envelope's JSON Schema (draft-07), as shipped in ``nestq_spec/schema/envelope.schema.json``.

    Each call returns a fresh copy, so a caller that edits it cannot change what :func:`validate_envelope` checks.
    """
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


@cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(envelope_schema())


def validate_envelope(value: object) -> None:
    """Validate a parsed envelope against the shipped JSON Schema (slow; not on the hot path).

    Raises :class:`MalformedEnvelopeError` with the schema's complaint. :func:`unwrap` is stricter in one place
    JSON Schema cannot express: it refuses ``"v": 1.0``, which draft-07 counts as the integer 1.
    """
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator().iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise MalformedEnvelopeError(f"envelope fails its JSON Schema at {where}: {error.message}")
