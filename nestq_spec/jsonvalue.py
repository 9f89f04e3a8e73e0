"""JSON values, and the conversions between them and typed jobs.

``to_json_value`` turns what an app pushes (a dataclass, a dict or TypedDict, a pydantic model) into plain JSON;
``decode_payload`` turns a payload back into the type a handler declares.

Both sit on the per-job path, so they avoid work on success: a decoder is compiled once per target type and
cached, and the path of a failing value (``$.items[3].sku``) is assembled only when something fails.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, Union, get_args, get_origin, get_type_hints, is_typeddict

from nestq_spec.errors import PayloadDecodeError, RegistrationError

__all__ = ["JSONValue", "decode_payload", "to_json_value"]

JSONValue: TypeAlias = Union[bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"], None]  # noqa: UP007 - a recursive alias needs Union
"""Any value that JSON can carry: the payload of a job."""


class _Mismatch(Exception):
    """Raised inside the converters; ``path`` collects the segments, innermost first, as it propagates."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def where(self, root: str) -> str:
        return root + "".join(reversed(self.path))


def _key_segment(key: object) -> str:
    return f".{key}" if isinstance(key, str) and key.isidentifier() else f"[{key!r}]"


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


# -- to JSON ------------------------------------------------------------------------------------------------------


def _to_json(value: object, convert: bool) -> JSONValue:
    """Return ``value`` as plain JSON or raise :class:`_Mismatch`.

    ``convert`` also turns dataclasses, enums and ``model_dump()`` objects into JSON (what ``push`` accepts);
    without it only JSON data passes (what ``push_json`` accepts).
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # type: ignore[return-value]
    if kind is float:
        if math.isfinite(value):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        raise _Mismatch(f"is {value!r}, which JSON cannot carry")
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, JSONValue] = {}
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                if not isinstance(key, str):
                    raise _Mismatch(f"has a key {key!r} of type {type(key).__name__}; JSON keys are strings")
                key = str.__str__(key)
            try:
                out[key] = _to_json(item, convert)
            except _Mismatch as exc:
                exc.path.append(_key_segment(key))
                raise
        return out
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        items: list[JSONValue] = []
        for index, item in enumerate(value):  # type: ignore[arg-type]
            try:
                items.append(_to_json(item, convert))
            except _Mismatch as exc:
                exc.path.append(f"[{index}]")
                raise
        return items
    if isinstance(value, enum.Enum) and convert and not isinstance(value, int | str | float):
        return _to_json(value.value, convert)
    # Subclasses of the JSON scalars (IntEnum, StrEnum...) become the plain scalar JSON stores anyway.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float):
        return _to_json(float(value), convert)
    if convert:
        if _is_dataclass_instance(value):
            fields: dict[str, JSONValue] = {}
            for f in dataclasses.fields(value):  # type: ignore[arg-type]
                try:
                    fields[f.name] = _to_json(getattr(value, f.name), convert)
                except _Mismatch as exc:
                    exc.path.append(f".{f.name}")
                    raise
            return fields
        dump = getattr(value, "model_dump", None)
        if callable(dump) and not isinstance(value, type):
            return _to_json(_model_dump(value, dump), convert)
    raise _Mismatch(f"is {_article(kind.__name__)}, which is not a JSON type")


def _article(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _is_dataclass_instance(value: object) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _model_dump(value: object, dump: Callable[..., Any]) -> object:
    try:
        try:
            return dump(mode="json")
        except TypeError:
            return dump()  # a model_dump() without pydantic's ``mode`` keyword
    except Exception as exc:  # pydantic raises its own serialization errors; push promises a TypeError
        raise _Mismatch(f"is {_article(type(value).__name__)} whose model_dump() failed: {exc}") from None


def to_json_value(job: object) -> JSONValue:
    """Turn a job into a JSON value, or raise :class:`TypeError` saying which part cannot become JSON.

    Accepted: a dataclass instance, an object with ``model_dump()`` (pydantic), or plain JSON data (dicts,
    TypedDicts, lists, strings, numbers, booleans, ``None``), nested in any combination. Tuples become arrays,
    enum members their values. The result is plain JSON (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``,
    ``None``), never the objects passed in.
    """
    try:
        return _to_json(job, True)
    except _Mismatch as exc:
        what = type(job).__name__
        raise TypeError(f"job of type {what} cannot become JSON: {exc.where('$')} {exc.message}") from None
    except RecursionError:
        raise TypeError(
            f"job of type {type(job).__name__} cannot become JSON: it is nested too deeply or contains itself"
        ) from None


def explain_not_json(payload: object, problem: BaseException | None = None) -> str:
    """Say where ``payload`` stops being JSON data (``$.a[2] is nan, ...``); for error messages only.

    ``problem`` is what the encoder raised, reported when the walk finds nothing more precise.
    """
    try:
        _to_json(payload, False)
    except _Mismatch as exc:
        return f"{exc.where('$')} {exc.message}"
    except RecursionError:
        return "$ is nested too deeply or contains itself"
    return f"$ cannot be encoded: {problem}" if problem is not None else "$ cannot be encoded"


def keys_are_strings(value: object) -> bool:
    """Tell whether every object key in ``value`` is a ``str`` (the one rule the C JSON encoder does not enforce).

    The encoder quietly turns ``1``, ``True`` or ``None`` keys into strings, so a round trip would change the
    job; this walk is the cheap part of refusing that.
    """
    kind = type(value)
    if kind is dict or isinstance(value, dict):
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str and not isinstance(key, str):
                return False
            kind = type(item)
            if not (kind is str or kind is int or kind is float or kind is bool or item is None) and not (
                keys_are_strings(item)
            ):
                return False
    elif kind is list or kind is tuple or isinstance(value, list | tuple):
        for item in value:  # type: ignore[attr-defined]
            kind = type(item)
            if not (kind is str or kind is int or kind is float or kind is bool or item is None) and not (
                keys_are_strings(item)
            ):
                return False
    return True


# -- from JSON ----------------------------------------------------------------------------------------------------

_Decoder: TypeAlias = Callable[[Any], Any]
"""A compiled decoder: takes a payload, returns the typed value, raises :class:`_Mismatch`."""

_PASSTHROUGH: frozenset[object] = frozenset((Any, object, JSONValue))
_CACHE: dict[object, _Decoder | None] = {}
_ABSENT: Any = object()
_NONE_TYPE = type(None)
_NOTHING: frozenset[type[Any]] = frozenset()


def _accepts(target: Any) -> frozenset[type[Any]]:
    """The exact payload types that ``target``'s decoder returns unchanged without looking inside them.

    A container skips the decoder call for such values: checking ``type(value) in accepts`` inline is what keeps
    decoding a dataclass close to building it by hand.
    """
    if target is str or target is int or target is bool or target is float:
        return frozenset((target,))
    if target is _NONE_TYPE or target is None:
        return frozenset((_NONE_TYPE,))
    origin = get_origin(target)
    if origin is Union or origin is types.UnionType:
        return frozenset().union(*(_accepts(a) for a in get_args(target)))
    return _NOTHING


def _compiled(target: Any) -> _Decoder | None:
    """The decoder of ``target`` (``None`` when the payload passes through unchanged), compiled once."""
    try:
        return _CACHE[target]
    except KeyError:
        pass
    except TypeError:  # an unhashable annotation: compile it every time rather than fail
        return _compile(target)
    decoder = _compile(target)
    _CACHE[target] = decoder
    return decoder


def _type_name(target: Any) -> str:
    """A short, readable name for an annotation: ``Line | None``, ``list[Line]``, ``Literal['a', 'b']``."""
    origin, args = get_origin(target), get_args(target)
    if origin is Union or origin is types.UnionType:
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None and args:
        return f"{_type_name(origin)}[{', '.join('...' if a is Ellipsis else _type_name(a) for a in args)}]"
    if target is type(None):
        return "None"
    if isinstance(target, type):
        return target.__name__
    return repr(target).replace("typing.", "")


def _scalar(kind: type[Any]) -> _Decoder:
    name = kind.__name__

    def decode(payload: Any) -> Any:
        if type(payload) is kind:
            return payload
        raise _Mismatch(f"expected {name}, found {_kind(payload)}")

    return decode


def _decode_float(payload: Any) -> float:
    kind = type(payload)
    if kind is float:
        return payload  # type: ignore[no-any-return]
    if kind is int:
        try:
            return float(payload)
        except OverflowError:
            raise _Mismatch("expected float, found an integer too large for a float") from None
    raise _Mismatch(f"expected float, found {_kind(payload)}")


def _decode_none(payload: Any) -> None:
    if payload is not None:
        raise _Mismatch(f"expected null, found {_kind(payload)}")


def _compile(target: Any) -> _Decoder | None:
    try:
        if target in _PASSTHROUGH:
            return None
    except TypeError:  # unhashable, so not one of them
        pass
    if target is str or target is int or target is bool:
        return _scalar(target)
    if target is float:
        return _decode_float
    if target is type(None) or target is None:
        return _decode_none
    origin = get_origin(target)
    if origin is Union or origin is types.UnionType:
        return _compile_union(target)
    if origin is typing.Literal:
        return _compile_literal(target)
    if isinstance(target, type) and dataclasses.is_dataclass(target):
        return _compile_dataclass(target)
    if isinstance(target, type) and callable(getattr(target, "model_validate", None)):
        return _compile_model(target)
    if is_typeddict(target):
        return _compile_typeddict(target)
    if isinstance(target, type) and issubclass(target, enum.Enum):
        return _compile_enum(target)
    container = origin or target
    if container in (dict, Mapping, collections.abc.MutableMapping):
        return _compile_dict(target)
    if container in (list, collections.abc.Sequence, collections.abc.MutableSequence):
        return _compile_list(target)
    if container is tuple:
        return _compile_tuple(target)
    message = f"cannot decode into {_type_name(target)}; annotate a JSON-shaped type"

    def unsupported(payload: Any) -> Any:
        raise _Mismatch(message)

    return unsupported


def _compile_union(target: Any) -> _Decoder:
    options = get_args(target)
    exact = {o for o in options if o in (str, int, float, bool)}
    has_none = type(None) in options
    decoders = [(o, _compiled(o)) for o in options if o is not type(None)]
    name = _type_name(target)

    def decode(payload: Any) -> Any:
        if payload is None and has_none:
            return None
        if type(payload) in exact:  # an exact JSON scalar type wins over an earlier converting option
            return payload
        problems = []
        for option, decoder in decoders:
            if decoder is None:
                return payload
            try:
                return decoder(payload)
            except _Mismatch as exc:
                problems.append(f"as {_type_name(option)}: {exc.where('')}{': ' if exc.path else ''}{exc.message}")
        if has_none:
            problems.append(f"as None: expected null, found {_kind(payload)}")
        raise _Mismatch(f"fits none of {name} ({'; '.join(problems)})")

    return decode


def _compile_literal(target: Any) -> _Decoder:
    allowed = get_args(target)

    def decode(payload: Any) -> Any:
        for value in allowed:
            if type(payload) is type(value) and payload == value:
                return payload
        raise _Mismatch(f"expected one of {', '.join(repr(v) for v in allowed)}, found {_short(payload)}")

    return decode


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hints(target: type[Any]) -> dict[str, Any]:
    try:
        return get_type_hints(target)
    except Exception as exc:
        raise RegistrationError(
            f"cannot resolve the annotations of {target.__qualname__} to decode payloads into it: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _compile_dataclass(target: type[Any]) -> _Decoder:
    """Generate a decoder for one dataclass, as ``dataclasses`` generates ``__init__``.

    Per field it checks the exact type inline (``type(v) is not int``) and calls a nested decoder only for
    values that need one; unknown and missing keys are left to the constructor, whose ``TypeError`` is then
    explained precisely. The generated code is what makes a decode cost close to ``Job(**payload)`` by hand.
    """
    # A forwarding entry first, so a dataclass that refers to itself (a tree) compiles.
    generated: list[_Decoder] = []
    _CACHE[target] = lambda payload: generated[0](payload)
    try:
        decoder = _generate_dataclass_decoder(target)
    except BaseException:
        _CACHE.pop(target, None)
        raise
    generated.append(decoder)
    return decoder


def _generate_dataclass_decoder(target: type[Any]) -> _Decoder:
    name = target.__name__
    hints = _hints(target)
    init_fields = [f for f in dataclasses.fields(target) if f.init]
    names = frozenset(f.name for f in init_fields)
    required = frozenset(
        f.name for f in init_fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )

    def not_an_object(payload: Any) -> Any:
        raise _Mismatch(f"expected an object for {name}, found {_kind(payload)}")

    def refused(payload: dict[str, Any], exc: Exception) -> Any:
        unknown = sorted(payload.keys() - names)
        if unknown:
            raise _Mismatch(f"{name} has no field(s) {', '.join(unknown)}")
        missing = sorted(required - payload.keys())
        if missing:
            raise _Mismatch(f"{name} is missing field {missing[0]!r}" if len(missing) == 1 else
                            f"{name} is missing fields {', '.join(repr(m) for m in missing)}")
        # The keys fit, so the constructor itself (a __post_init__ that validates) refused the values.
        raise _Mismatch(f"{name}(...) refused the payload: {type(exc).__name__}: {exc}")

    namespace: dict[str, Any] = {
        "_ABSENT": _ABSENT, "_Mismatch": _Mismatch, "_target": target, "_not_an_object": not_an_object,
        "_refused": refused,
    }
    lines = [
        "def decode(payload):",
        "    if type(payload) is not dict:",
        "        return _not_an_object(payload)",
        "    get = payload.get",
        "    kwargs = None",
    ]
    for index, f in enumerate(init_fields):
        hint = hints.get(f.name, Any)
        decoder = _compiled(hint)
        if decoder is None:
            continue  # Any, object, JSONValue: nothing to check
        namespace[f"_decode{index}"] = decoder
        accepts = sorted(_accepts(hint), key=lambda t: t.__name__)
        for position, kind in enumerate(accepts):
            namespace[f"_type{index}_{position}"] = kind
        skip = "".join(f"t is not _type{index}_{position} and " for position in range(len(accepts)))
        lines += [
            f"    v = get({f.name!r}, _ABSENT)",
            "    t = type(v)",
            f"    if {skip}v is not _ABSENT:",
            "        try:",
            f"            new = _decode{index}(v)",
            "        except _Mismatch as exc:",
            f"            exc.path.append({'.' + f.name!r})",
            "            raise",
            "        if new is not v:",
            "            if kwargs is None:",
            "                kwargs = dict(payload)",
            f"            kwargs[{f.name!r}] = new",
        ]
    lines += [
        "    try:",
        "        return _target(**(payload if kwargs is None else kwargs))",
        "    except (TypeError, ValueError) as exc:",
        "        return _refused(payload, exc)",
    ]
    exec(compile("\n".join(lines), f"<nestq decoder of {target.__qualname__}>", "exec"), namespace)
    decode: _Decoder = namespace["decode"]
    return decode


def _compile_model(target: type[Any]) -> _Decoder:
    validate = target.model_validate
    name = target.__name__

    def decode(payload: Any) -> Any:
        try:
            return validate(payload)
        except Exception as exc:  # pydantic's ValidationError, without importing pydantic
            raise _Mismatch(f"does not validate as {name}: {exc}") from None

    return decode


def _compile_typeddict(target: Any) -> _Decoder:
    name = target.__name__
    required = frozenset(getattr(target, "__required_keys__", frozenset()))
    specs = [(key, _accepts(hint), d) for key, hint in _hints(target).items() if (d := _compiled(hint)) is not None]

    def decode(payload: Any) -> Any:
        if type(payload) is not dict:
            raise _Mismatch(f"expected an object for {name}, found {_kind(payload)}")
        if not required <= payload.keys():
            raise _Mismatch(f"{name} is missing key(s) {', '.join(sorted(required - payload.keys()))}")
        out = None
        for key, accepts, decoder in specs:
            value = payload.get(key, _ABSENT)
            if value is _ABSENT or type(value) in accepts:
                continue
            try:
                new = decoder(value)
            except _Mismatch as exc:
                exc.path.append(_key_segment(key))
                raise
            if new is not value:
                if out is None:
                    out = dict(payload)
                out[key] = new
        return payload if out is None else out

    return decode


def _compile_enum(target: type[enum.Enum]) -> _Decoder:
    def decode(payload: Any) -> Any:
        try:
            return target(payload)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in target)
            raise _Mismatch(f"expected a {target.__name__} value ({choices}), found {_short(payload)}") from None

    return decode


def _compile_dict(target: Any) -> _Decoder:
    args = get_args(target)
    values = _compiled(args[1]) if len(args) == 2 else None
    accepts = _accepts(args[1]) if len(args) == 2 else _NOTHING

    def decode(payload: Any) -> Any:
        if type(payload) is not dict:
            raise _Mismatch(f"expected an object, found {_kind(payload)}")
        if values is None:
            return payload
        out = None
        for key, item in payload.items():
            if type(item) in accepts:
                continue
            try:
                new = values(item)
            except _Mismatch as exc:
                exc.path.append(_key_segment(key))
                raise
            if new is not item:
                if out is None:
                    out = dict(payload)
                out[key] = new
        return payload if out is None else out

    return decode


def _compile_list(target: Any) -> _Decoder:
    args = get_args(target)
    items = _compiled(args[0]) if args else None
    accepts = _accepts(args[0]) if args else _NOTHING

    def decode(payload: Any) -> Any:
        if type(payload) is not list:
            raise _Mismatch(f"expected an array, found {_kind(payload)}")
        if items is None:
            return payload
        out = None
        for index, item in enumerate(payload):
            if type(item) in accepts:
                continue
            try:
                new = items(item)
            except _Mismatch as exc:
                exc.path.append(f"[{index}]")
                raise
            if new is not item:
                if out is None:
                    out = list(payload)
                out[index] = new
        return payload if out is None else out

    return decode


def _compile_tuple(target: Any) -> _Decoder:
    args = get_args(target)
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        every = _compiled(args[0]) if args else None
        positional: list[_Decoder | None] | None = None
    else:
        every = None
        positional = [] if args == ((),) else [_compiled(a) for a in args]

    def decode(payload: Any) -> Any:
        if type(payload) is not list:
            raise _Mismatch(f"expected an array, found {_kind(payload)}")
        if positional is not None and len(payload) != len(positional):
            raise _Mismatch(f"expected an array of {len(positional)} item(s), found {len(payload)}")
        out = []
        for index, item in enumerate(payload):
            decoder = every if positional is None else positional[index]
            try:
                out.append(item if decoder is None else decoder(item))
            except _Mismatch as exc:
                exc.path.append(f"[{index}]")
                raise
        return tuple(out)

    return decode


def decoder_for(target: Any, where: str) -> Callable[[JSONValue], Any]:
    """Compile ``target`` once and return ``decode(payload)`` raising :class:`PayloadDecodeError` under ``where``.

    Raises :class:`~nestq_spec.errors.RegistrationError` when ``target`` (or a dataclass inside it) has
    annotations that cannot be resolved.
    """
    decoder = _compiled(target)
    if decoder is None:
        return _identity

    def decode(payload: JSONValue) -> Any:
        try:
            return decoder(payload)
        except _Mismatch as exc:
            raise PayloadDecodeError(f"{exc.where(where)}: {exc.message}") from None

    return decode


def _identity(payload: JSONValue) -> JSONValue:
    return payload


def decode_payload(payload: JSONValue, target: Any, where: str = "payload") -> Any:
    """Decode a JSON payload into ``target``, the job type a handler annotates.

    Supports dataclasses (recursively, including ``__post_init__`` checks), pydantic models (``model_validate``),
    TypedDicts, ``dict``/``list``/``tuple``/``Sequence`` with item types, ``Optional``/unions, ``Literal``, enums,
    the JSON scalars and ``Any``. Raises :class:`PayloadDecodeError` naming the path and the mismatch; that error is
    never retryable.
    """
    decoder = _compiled(target)
    if decoder is None:
        return payload
    try:
        return decoder(payload)
    except _Mismatch as exc:
        raise PayloadDecodeError(f"{exc.where(where)}: {exc.message}") from None
