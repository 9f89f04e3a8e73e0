"""JSON values, and the conversions between them and typed jobs.

``to_json_value`` turns what an app pushes (a dataclass, a dict or TypedDict, a pydantic model) into plain JSON;
``decode_payload`` turns a payload back into the type a handler declares.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeAlias, Union, get_args, get_origin, get_type_hints, is_typeddict

from nestq_spec.errors import PayloadDecodeError

__all__ = ["JSONValue", "decode_payload", "to_json_value"]

JSONValue: TypeAlias = Union[bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"], None]  # noqa: UP007 - a recursive alias needs Union
"""Any value that JSON can carry: the payload of a job."""


def _check(value: object, path: str) -> JSONValue:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{path} is {value!r}, which JSON cannot carry")
        return value
    if isinstance(value, Mapping):
        out: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a key {key!r} of type {type(key).__name__}; JSON keys are strings")
            out[key] = _check(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_check(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{path} is a {type(value).__name__}, which is not a JSON type")


def to_json_value(job: object) -> JSONValue:
    """Turn a job into a JSON value, or raise :class:`TypeError` saying which part cannot become JSON.

    Accepted: a dataclass instance, an object with ``model_dump()`` (pydantic), or plain JSON data (dicts,
    TypedDicts, lists, strings, numbers, booleans, ``None``). Tuples become arrays.
    """
    what = type(job).__name__
    if dataclasses.is_dataclass(job) and not isinstance(job, type):
        raw: object = dataclasses.asdict(job)
    elif callable(getattr(job, "model_dump", None)) and not isinstance(job, type):
        try:
            raw = job.model_dump(mode="json")  # type: ignore[attr-defined]
        except TypeError:
            raw = job.model_dump()  # type: ignore[attr-defined]
    else:
        raw = job
    try:
        return _check(raw, "$")
    except TypeError as exc:
        raise TypeError(f"job of type {what} cannot become JSON: {exc}") from None


_PASSTHROUGH: frozenset[object] = frozenset((Any, object, JSONValue))


def decode_payload(payload: JSONValue, target: Any, where: str = "payload") -> Any:
    """Decode a JSON payload into ``target``, the job type a handler annotates.

    Supports dataclasses (recursively), pydantic models (``model_validate``), TypedDicts, ``dict``/``list`` with
    item types, ``Optional``/unions, the JSON scalars and ``Any``. Raises :class:`PayloadDecodeError` naming the
    path and the mismatch; that error is never retryable.
    """
    if target in _PASSTHROUGH or target is typing.Any:
        return payload
    origin = get_origin(target)
    if origin is Union or origin is types.UnionType:
        errors = []
        for option in get_args(target):
            try:
                return decode_payload(payload, option, where)
            except PayloadDecodeError as exc:
                errors.append(str(exc))
        raise PayloadDecodeError(f"{where} fits none of {target}: " + "; ".join(errors))
    if target is type(None):
        if payload is not None:
            raise PayloadDecodeError(f"{where}: expected null, found {type(payload).__name__}")
        return None
    if isinstance(target, type) and dataclasses.is_dataclass(target):
        return _decode_dataclass(payload, target, where)
    if isinstance(target, type) and callable(getattr(target, "model_validate", None)):
        try:
            return target.model_validate(payload)  # type: ignore[attr-defined]
        except Exception as exc:  # pydantic's ValidationError, without importing pydantic
            raise PayloadDecodeError(f"{where} does not validate as {target.__name__}: {exc}") from None
    if is_typeddict(target):
        if not isinstance(payload, dict):
            raise PayloadDecodeError(f"{where}: expected an object for {target.__name__}, found {_kind(payload)}")
        missing = sorted(getattr(target, "__required_keys__", frozenset()) - payload.keys())
        if missing:
            raise PayloadDecodeError(f"{where}: {target.__name__} is missing key(s) {', '.join(missing)}")
        return payload
    container = origin or target
    if container in (dict, Mapping):
        if not isinstance(payload, dict):
            raise PayloadDecodeError(f"{where}: expected an object, found {_kind(payload)}")
        args = get_args(target)
        if len(args) == 2:
            return {k: decode_payload(v, args[1], f"{where}.{k}") for k, v in payload.items()}
        return payload
    if container in (list, tuple):
        if not isinstance(payload, list):
            raise PayloadDecodeError(f"{where}: expected an array, found {_kind(payload)}")
        args = get_args(target)
        items = payload if not args else [decode_payload(v, args[0], f"{where}[{i}]") for i, v in enumerate(payload)]
        return tuple(items) if container is tuple else items
    if target is float:
        if isinstance(payload, int | float) and not isinstance(payload, bool):
            return float(payload)
    elif target in (int, str, bool):
        if type(payload) is target:
            return payload
    else:
        raise PayloadDecodeError(f"{where}: cannot decode into {target!r}; annotate a JSON-shaped type")
    raise PayloadDecodeError(f"{where}: expected {target.__name__}, found {_kind(payload)}")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _decode_dataclass(payload: JSONValue, target: type[Any], where: str) -> Any:
    if not isinstance(payload, dict):
        raise PayloadDecodeError(f"{where}: expected an object for {target.__name__}, found {_kind(payload)}")
    hints = get_type_hints(target)
    fields = {f.name: f for f in dataclasses.fields(target) if f.init}
    unknown = sorted(payload.keys() - fields.keys())
    if unknown:
        raise PayloadDecodeError(f"{where}: {target.__name__} has no field(s) {', '.join(unknown)}")
    kwargs = {}
    for name, field in fields.items():
        if name in payload:
            kwargs[name] = decode_payload(payload[name], hints.get(name, Any), f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise PayloadDecodeError(f"{where}: {target.__name__} is missing field {name!r}")
    return target(**kwargs)
