"""CFG: dual-path configuration: every setting read from NESTQ_<NS>__<KEY>, and a value pinned in code wins."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import pytest

from nestq_conformance.kit import Scenario
from nestq_conformance.rules import rule
from nestq_spec import ConfigError, describe_settings, env_var, load_settings
from nestq_spec.config import is_url_setting


def _settings_class(nq: Scenario) -> type[Any]:
    cls = nq.harness.settings_class
    if cls is None:
        pytest.skip("does not apply: the harness declares no settings_class, so its configuration cannot be checked")
    return cls


def _fields(cls: type[Any]) -> list[dataclasses.Field[Any]]:
    """The settings that have a plain default (the ones the environment and pins can be compared against)."""
    return [f for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING]


def _inner(kind: Any) -> Any:
    """``int`` for ``int | None`` and the like; ``kind`` itself otherwise."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def _alternative(f: dataclasses.Field[Any], kind: Any) -> tuple[str, Any] | None:
    """An env text for setting ``f`` and the value it must load as; differs from the default. None: untestable."""
    default = f.default
    low, high, choices = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("choices")
    kind = _inner(kind)

    def fits(v: float) -> bool:
        return (low is None or v >= low) and (high is None or v <= high)

    if kind is bool:
        flag = not bool(default)
        return ("true" if flag else "false"), flag
    if kind is int:
        whole = default if isinstance(default, int) else (int(low) if low is not None else 1)
        for number in (whole + 1, whole - 1, whole + 7, int(low) if low is not None else whole):
            if number != default and fits(number):
                return str(number), number
        return None
    if kind is float:
        base = float(default) if isinstance(default, int | float) else (float(low) if low is not None else 1.0)
        for candidate in (base * 2 + 0.5, base / 2, base + 0.25, float(low) if low is not None else base):
            if candidate != default and fits(candidate):
                return repr(candidate), candidate
        return None
    if kind is str:
        if choices:
            others = [c for c in choices if c != default]
            return (others[0], others[0]) if others else None
        text = str(default or "")
        if "://" in text:
            value = text.split("://", 1)[0] + "://nestq-suite.invalid:1234/1"
        else:
            value = (text + "-nestq-suite") if text else "nestq-suite"
        return value, value
    return None


@rule(
    "CFG-001",
    "MUST",
    hint="the harness's settings_class must be a @settings(\"ns\") class whose defaults are valid on their own",
)
def test_cfg_001_defaults_load(nq: Scenario) -> None:
    """The driver's settings class is a @settings class that loads from its defaults with an empty environment."""
    cls = _settings_class(nq)
    try:
        loaded = load_settings(cls, None, env={})
    except ConfigError as exc:
        raise AssertionError(f"{cls.__qualname__} does not load from its defaults: {exc}") from exc
    assert dataclasses.is_dataclass(loaded), f"{cls.__qualname__} is not a settings dataclass"


@rule(
    "CFG-002",
    "MUST",
    hint="give every setting a type the environment can express (bool, int, float, str, or one of them | None) "
    "and read it with load_settings(cls, pinned) so NESTQ_<NS>__<KEY> works for each",
)
def test_cfg_002_every_setting_readable_from_env(nq: Scenario) -> None:
    """Every setting is read from its NESTQ_<NAMESPACE>__<KEY> variable."""
    cls = _settings_class(nq)
    hints = typing.get_type_hints(cls)
    problems = []
    for f in _fields(cls):
        var = env_var(cls, f.name)
        if not var.startswith("NESTQ_"):
            problems.append(f"{f.name}: variable {var} does not start with NESTQ_")
            continue
        alt = _alternative(f, hints[f.name])
        if alt is None:
            problems.append(f"{f.name}: type {hints[f.name]!r} cannot be set from the environment")
            continue
        text, expected = alt
        try:
            got = getattr(load_settings(cls, None, env={var: text}), f.name)
        except ConfigError as exc:
            problems.append(f"{var}={text!r} was refused: {exc}")
            continue
        if got != expected:
            problems.append(f"{var}={text!r} loaded as {got!r}, expected {expected!r}")
    assert not problems, "settings not readable from their variables: " + "; ".join(problems)


@rule(
    "CFG-003",
    "MUST",
    hint="build the settings with load_settings(cls, pinned) where pinned is what for_root(config) received; "
    "do not read os.environ after that",
)
def test_cfg_003_pinned_value_wins_over_env(nq: Scenario) -> None:
    """A value pinned in code wins over the same setting's environment variable."""
    cls = _settings_class(nq)
    hints = typing.get_type_hints(cls)
    problems = []
    for f in _fields(cls):
        alt = _alternative(f, hints[f.name])
        if alt is None:
            continue
        text, _ = alt
        pinned = f.default
        got = getattr(load_settings(cls, {f.name: pinned}, env={env_var(cls, f.name): text}), f.name)
        if got != pinned:
            problems.append(f"{f.name}: pinned {pinned!r}, env {text!r}, loaded {got!r}")
    assert not problems, "pinned values must win over the environment: " + "; ".join(problems)


@rule(
    "CFG-004",
    "MUST",
    hint="let load_settings raise ConfigError for a bad value at boot; never fall back silently to the default",
)
def test_cfg_004_invalid_env_value_names_the_variable(nq: Scenario) -> None:
    """An invalid value in a numeric or boolean setting's variable fails with ConfigError naming the variable."""
    cls = _settings_class(nq)
    hints = typing.get_type_hints(cls)
    checked, problems = 0, []
    for f in _fields(cls):
        if _inner(hints[f.name]) not in (int, float, bool):
            continue
        var = env_var(cls, f.name)
        checked += 1
        try:
            load_settings(cls, None, env={var: "not-a-valid-value"})
        except ConfigError as exc:
            if var not in str(exc):
                problems.append(f"{var}: the error does not name the variable: {exc}")
        else:
            problems.append(f"{var}=not-a-valid-value was accepted")
    if not checked:
        pytest.skip("does not apply: the settings class has no numeric or boolean setting to feed a bad value")
    assert not problems, "; ".join(problems)


@rule(
    "CFG-005",
    "SHOULD",
    hint="pass help=\"...\" to every setting(...): it is what `--help`, the docs table and describe_settings show",
)
def test_cfg_005_every_setting_documented(nq: Scenario) -> None:
    """Every setting has help text, so describe_settings can document it."""
    cls = _settings_class(nq)
    missing = [row.name for row in describe_settings(cls) if not row.help.strip()]
    assert not missing, f"settings without help text: {missing}"


@rule(
    "CFG-006",
    "MUST",
    hint="mark passwords and tokens secret=True, and keep URL passwords out of reprs and errors (the @settings "
    "repr does this; a custom __repr__ or log line may not)",
)
def test_cfg_006_secrets_never_shown(nq: Scenario) -> None:
    """Secret settings and passwords inside URL settings never appear in the settings' repr."""
    cls = _settings_class(nq)
    hints = typing.get_type_hints(cls)
    secret = "nestq-suite-s3cret"
    env: dict[str, str] = {}
    for f in _fields(cls):
        if _inner(hints[f.name]) is not str or f.metadata.get("choices"):
            continue
        if f.metadata.get("secret"):
            env[env_var(cls, f.name)] = secret
        elif is_url_setting(f):
            env[env_var(cls, f.name)] = f"{_scheme(f)}://user:{secret}@nestq-suite.invalid:1/0"
    if not env:
        pytest.skip("does not apply: the settings class has no secret or URL setting")
    try:
        shown = repr(load_settings(cls, None, env=env))
    except ConfigError as exc:  # a driver may refuse the suite's URL: then its error must not show the secret
        shown = str(exc)
    assert secret not in shown, f"a secret shows in the settings repr: {shown}"


def _scheme(f: dataclasses.Field[Any]) -> str:
    """The scheme of a URL setting's default, or ``https`` when the default shows none (an empty endpoint)."""
    default = str(f.default or "")
    return default.split("://", 1)[0] if "://" in default else "https"


def _int_settings(cls: type[Any]) -> list[tuple[str, int, int]]:
    """(name, first value, second value) for every plain int setting with two valid values besides the default."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in _fields(cls):
        if _inner(hints[f.name]) is not int or f.metadata.get("secret") or not isinstance(f.default, int):
            continue
        low, high = f.metadata.get("min"), f.metadata.get("max")
        values = [v for v in (f.default + 1, f.default + 2, f.default - 1, f.default - 2)
                  if (low is None or v >= low) and (high is None or v <= high)]
        if len(values) >= 2:
            found.append((f.name, values[0], values[1]))
    return found


@rule(
    "CFG-007",
    "MUST",
    since="2",
    probes=("configured_module", "live_settings"),
    hint="load the settings when the module is booted (in its register/collect), with load_settings(cls, pinned) "
    "reading os.environ then; never at import time, never with an empty or cached environment, and hand the "
    "loaded object to the connection and the worker",
)
def test_cfg_007_booted_driver_uses_env_and_pinned_values(nq: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    """The booted driver uses NESTQ_<NS>__<KEY> values read at boot, and values pinned in code win over them."""
    cls = _settings_class(nq)
    chosen = _int_settings(cls)
    if not chosen:
        pytest.skip("does not apply: the settings class has no integer setting to move through the environment")
    for f in _fields(cls):  # the rule's own environment: nothing of the namespace but what it sets
        monkeypatch.delenv(env_var(cls, f.name), raising=False)
    defaults = {f.name: f.default for f in _fields(cls)}
    pinned_half = {name: first for name, first, _ in chosen[: max(1, len(chosen) // 2)]}

    def boot(pinned: dict[str, object], env: dict[str, int]) -> object:
        for name, value in env.items():
            monkeypatch.setenv(env_var(cls, name), str(value))
        try:
            root = nq.harness.configured_module(pinned)
            app = nq.worker_application(producer=root)
            return nq.harness.live_settings(app.container)
        finally:
            for name in env:
                monkeypatch.delenv(env_var(cls, name), raising=False)

    async def scenario() -> list[str]:
        problems: list[str] = []
        live = boot({}, {name: first for name, first, _ in chosen})
        for name, first, _ in chosen:
            if getattr(live, name) != first:
                problems.append(f"{env_var(cls, name)}={first}: the booted driver uses {name}={getattr(live, name)!r}")
        live = boot(dict(pinned_half), {name: second for name, _, second in chosen})
        for name, first, second in chosen:
            want = pinned_half.get(name, second)
            if getattr(live, name) != want:
                how = f"pinned {first} in code" if name in pinned_half else f"{env_var(cls, name)}={second} at boot"
                problems.append(f"{how}: the booted driver uses {name}={getattr(live, name)!r}, expected {want!r}")
        live = boot({}, {})
        for name, _, _ in chosen:
            if getattr(live, name) != defaults[name]:
                problems.append(f"no variable set: the booted driver uses {name}={getattr(live, name)!r}, "
                                f"expected the default {defaults[name]!r}")
        return problems

    problems = nq.run(scenario)
    assert not problems, "the booted driver does not use its configuration as set: " + "; ".join(problems)


SECRET_MARK = "s3cr"
URL_PASSWORDS = ("s3cr/et", "s3cr#et", "s3cr?et", "s3cr@et", "s3cr/#?@et", "s3cr:et")


@rule(
    "CFG-008",
    "MUST",
    since="2",
    hint="redact URLs with nestq_spec.config.redact (the userinfo ends at the last '@' before the host; the "
    "password may hold / # ? @ :), and use it in reprs, errors and describe(); never print a URL as given",
)
def test_cfg_008_url_passwords_with_special_characters_never_shown(nq: Scenario) -> None:
    """Passwords holding / # ? @ inside URL settings never show in the settings' repr, errors or the kit's output."""
    from nestq_conformance.redaction import redact_text

    cls = _settings_class(nq)
    hints = typing.get_type_hints(cls)
    urls = [f for f in _fields(cls) if _inner(hints[f.name]) is str and is_url_setting(f)]
    if not urls:
        pytest.skip("does not apply: the settings class has no URL setting")
    problems = []
    for f in urls:
        scheme = _scheme(f)
        var = env_var(cls, f.name)
        for password in URL_PASSWORDS:
            url = f"{scheme}://user:{password}@nestq-suite.invalid:1/0"
            shown: list[tuple[str, str]] = [("the kit's redaction", redact_text(f"connecting to {url} failed"))]
            try:
                loaded = load_settings(cls, None, env={var: url})
            except ConfigError as exc:
                shown.append(("the ConfigError", str(exc)))
            else:
                shown.append(("the settings' repr", repr(loaded)))
                shown.append(("str() of the settings", str(loaded)))
            try:
                load_settings(cls, {f.name: url}, env={_bad_companion(cls, f.name): "not-a-valid-value"})
            except ConfigError as exc:
                shown.append(("a ConfigError about another setting", str(exc)))
            except Exception as exc:  # not the point of this rule: only what it prints matters
                shown.append((f"a {type(exc).__name__}", str(exc)))
            for where, text in shown:
                if SECRET_MARK in text:
                    problems.append(f"password {password!r} of {var} shows in {where}: {text[:200]}")
    assert not problems, "; ".join(problems[:6])


def _bad_companion(cls: type[Any], name: str) -> str:
    """The variable of another numeric setting, to provoke an error while the URL is loaded."""
    hints = typing.get_type_hints(cls)
    for f in _fields(cls):
        if f.name != name and _inner(hints[f.name]) in (int, float):
            return env_var(cls, f.name)
    return env_var(cls, name) + "_UNUSED"
