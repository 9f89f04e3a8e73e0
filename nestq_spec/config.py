"""Dual-path configuration: every setting reads ``NESTQ_<NAMESPACE>__<KEY>`` and can be pinned in code.

Precedence per setting: pinned in code, then the environment, then the default. A bad value fails at boot with
a :class:`~nestq_spec.errors.ConfigError` naming the variable and the value; secret values (and passwords inside
URLs) never appear in reprs or error messages.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, Union, dataclass_transform, get_args, get_origin, get_type_hints

from nestq_spec.errors import ConfigError

__all__ = [
    "SettingInfo", "describe_settings", "env_var", "is_url_setting", "load_settings", "redact", "setting", "settings",
]

S = TypeVar("S")
T = TypeVar("T")

_NAMESPACE = "__nestq_namespace__"
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
_QUERY_SECRET = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|pass|secret|token|api_key|apikey)=)[^&;#\s'\"]*",
                           re.IGNORECASE)
_MASK = "***"


def _mask_userinfo(text: str) -> str:
    # The userinfo is everything up to the LAST '@' (not up to the first '/', '#' or '?', as a URL parser reads
    # it), so a password holding an unescaped '@', '/', '#', '?' or '[' is hidden whole. The password starts at
    # the first ':' of the userinfo (a user name cannot hold one). Over-redacting a URL whose path or query holds
    # '@' is the safe way to be wrong.
    at = text.rfind("@")
    if at < 0:
        return text
    scheme = _SCHEME.search(text, 0, at)
    start = scheme.end() if scheme else 0
    colon = text.find(":", start, at)
    if colon < 0:
        return text
    return f"{text[:colon + 1]}{_MASK}{text[at:]}"


def _mask_text(text: str) -> str:
    if "\n" not in text and _SCHEME.match(text.strip()):
        # One URL (a setting's value): masked as a whole, so even a password holding a space is hidden.
        masked = _mask_userinfo(text)
    else:
        # Free text: each whitespace-separated word that holds a userinfo is masked on its own.
        masked = "".join(_mask_userinfo(word) if "@" in word else word for word in re.split(r"(\s+)", text))
    return _QUERY_SECRET.sub(rf"\g<head>{_MASK}", masked)


def redact(value: object, *, as_repr: bool = True) -> str:
    """Return ``repr(value)`` with the passwords of URLs replaced by ``***``: the one redaction function.

    Masks the password of ``scheme://user:password@host`` and of a URL without a scheme (``user:password@host``),
    reading the userinfo up to the last ``@`` so that a password holding unescaped ``/ # ? [ @`` is masked whole,
    and query parameters such as ``?password=...`` or ``&token=...``. Strings inside dicts, lists, tuples and sets
    are masked before they are quoted. With ``as_repr=False`` a string comes back masked but unquoted (for URLs
    shown in logs and reports).
    """
    if isinstance(value, str):
        masked = _mask_text(value)
        return masked if not as_repr else repr(masked)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{redact(k)}: {redact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(redact(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(redact(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, set | frozenset) and value:
        inner = ", ".join(sorted(redact(v) for v in value))
        return "{" + inner + "}" if isinstance(value, set) else f"frozenset({{{inner}}})"
    return _mask_text(repr(value))


def setting(
    default: T,
    *,
    help: str = "",
    secret: bool = False,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    url: bool = False,
) -> T:
    """Declare one setting of a ``@settings`` class: its default, description, bounds and secrecy.

    Pass the default by keyword (``setting(default=10, ...)``): type checkers only see a field's default when the
    field specifier receives it as ``default=``, and otherwise report the settings class's constructor as
    requiring every field. ``url=True`` marks a URL (or DSN) setting whose name and default do not show it (see
    :func:`is_url_setting`): the conformance rules about passwords in URLs then apply to it.
    """
    meta = {"help": help, "secret": secret, "min": min, "max": max, "choices": choices, "url": url}
    return dataclasses.field(default=default, metadata=meta)


_URL_NAMES = re.compile(r"(?:^|_)(?:url|uri|dsn)$", re.IGNORECASE)


def is_url_setting(f: dataclasses.Field[Any]) -> bool:
    """Whether a setting (a field of a ``@settings`` class) holds a URL, which may carry a password.

    It does when marked ``url=True``, named ``url``, ``dsn``, ``uri`` or ``..._url`` (``endpoint_url``), or when
    its default is a ``scheme://`` URL, whatever its name (an empty default shows nothing, hence the name and the
    marker). Secret settings are not URL settings (they are hidden whole); settings with ``choices`` are not either.
    """
    if f.metadata.get("secret") or f.metadata.get("choices"):
        return False
    if f.metadata.get("url"):
        return True
    default = f.default if isinstance(f.default, str) else ""
    return bool(_URL_NAMES.search(f.name)) or bool(_SCHEME.match(default))


@dataclass_transform(frozen_default=True, field_specifiers=(setting, dataclasses.field))
def settings(namespace: str) -> Callable[[type[S]], type[S]]:
    """Make a class a frozen settings dataclass read from ``NESTQ_<NAMESPACE>__<FIELD>``.

    Its repr hides secret settings and URL passwords.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", namespace):
        raise ConfigError(f"settings namespace {namespace!r} must be an identifier")

    def decorate(cls: type[S]) -> type[S]:
        made: Any = dataclass(frozen=True, repr=False)(cls)
        setattr(made, _NAMESPACE, namespace.upper())

        def __repr__(self: object) -> str:
            shown = ", ".join(f"{f.name}={_show(f, getattr(self, f.name))}" for f in dataclasses.fields(made))
            return f"{made.__qualname__}({shown})"

        made.__repr__ = __repr__
        for f in dataclasses.fields(made):
            _check(made, f, getattr(made, f.name, f.default), source="default")
        return made  # type: ignore[no-any-return]

    return decorate


def _show(f: dataclasses.Field[Any], value: object) -> str:
    return "'***'" if f.metadata.get("secret") else redact(value)


def env_var(cls: type[Any], name: str) -> str:
    """The environment variable of setting ``name`` of the ``@settings`` class ``cls``."""
    return f"NESTQ_{getattr(cls, _NAMESPACE)}__{name.upper()}"


_TRUE = frozenset(("1", "true", "yes", "on"))
_FALSE = frozenset(("0", "false", "no", "off"))


def _parse(kind: Any, text: str) -> object:
    if kind is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expected one of true/false, 1/0, yes/no, on/off")
    # The messages never quote the text: the caller decides whether the value may be shown.
    if kind is int:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError("expected an integer") from None
    if kind is float:
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError("expected a number") from None
    if kind is str:
        return text
    if kind == (str | None) or kind == (int | None) or kind == (float | None):
        if text.strip().lower() in ("", "none", "null"):
            return None
        inner = next(a for a in kind.__args__ if a is not type(None))
        return _parse(inner, text)
    raise ValueError(f"settings of type {kind!r} cannot be read from the environment")


_OK_TYPES: dict[object, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


def _check(cls: type[Any], f: dataclasses.Field[Any], value: object, source: str) -> object:
    shown = "'***'" if f.metadata.get("secret") else redact(value)
    label = f"{env_var(cls, f.name)}={shown} ({source})"
    kind = get_type_hints(cls)[f.name]
    optional = get_origin(kind) in (Union, types.UnionType) and type(None) in get_args(kind)
    if optional:
        if value is None:
            return value
        inner = [a for a in get_args(kind) if a is not type(None)]
        kind = inner[0] if len(inner) == 1 else kind
    ok_types: tuple[type, ...] = _OK_TYPES.get(kind, ())
    if ok_types and (not isinstance(value, ok_types) or (kind is not bool and isinstance(value, bool))):
        raise ConfigError(f"{label} is not a valid {kind.__name__}{' or None' if optional else ''}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{label} is not a finite number")
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if low is not None and value < low:
            raise ConfigError(f"{label} is below the minimum {low}")
        if high is not None and value > high:
            raise ConfigError(f"{label} is above the maximum {high}")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{label} is not one of {', '.join(choices)}")
    return value


def load_settings(
    cls: type[S],
    pinned: S | Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> S:
    """Build a ``@settings`` instance: pinned values win over the environment, the environment over defaults.

    ``pinned`` is a whole instance (used as is, the environment ignored) or a mapping of some settings by name.
    Raises :class:`ConfigError` naming the variable for an unknown pinned name or an invalid value.
    """
    if not hasattr(cls, _NAMESPACE):
        raise ConfigError(f"{cls.__qualname__} is not a @settings class")
    if isinstance(pinned, cls):
        for f in dataclasses.fields(pinned):  # type: ignore[arg-type]
            _check(cls, f, getattr(pinned, f.name), "pinned in code")
        return pinned
    env = os.environ if env is None else env
    pins: dict[str, object] = dict(pinned or {})  # type: ignore[arg-type]
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(pins) - set(fields))
    if unknown:
        raise ConfigError(f"{cls.__qualname__} has no setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    hints = get_type_hints(cls)
    values: dict[str, object] = {}
    for name, f in fields.items():
        var = env_var(cls, name)
        if name in pins:
            values[name] = _check(cls, f, pins[name], "pinned in code")
        elif var in env:
            raw = env[var]
            try:
                parsed = _parse(hints[name], raw)
            except ValueError as exc:
                shown = "'***'" if f.metadata.get("secret") else redact(raw)
                raise ConfigError(f"{var}={shown} is invalid: {exc}") from None
            values[name] = _check(cls, f, parsed, "from the environment")
    return cls(**values)


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """One row of a settings table: for docs and ``--help`` output."""

    name: str
    env_var: str
    type: str
    default: str
    help: str


def describe_settings(cls: type[Any]) -> list[SettingInfo]:
    """List the settings of a ``@settings`` class with their variables, types, defaults (redacted) and help."""
    hints = get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        rows.append(
            SettingInfo(
                f.name, env_var(cls, f.name), getattr(kind, "__name__", str(kind)), _show(f, f.default),
                str(f.metadata.get("help", "")),
            )
        )
    return rows
