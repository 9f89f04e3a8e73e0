"""Find the driver a run names, and the harness it exposes.

A driver spec is resolved as ``module:attr`` (when it holds a colon), then as an entry-point name in the group
``nestq.drivers``, then as an importable module whose attribute ``harness`` is used. What is found may be a
:class:`~nestq_conformance.harness.DriverHarness` instance, a subclass of it, or a zero-argument factory returning
one. An unknown name fails with the installed driver names and a "did you mean".
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from nestq_conformance.harness import DriverHarness

__all__ = [
    "DRIVER_ENV",
    "ENTRY_POINT_GROUP",
    "DriverChoice",
    "DriverError",
    "Source",
    "UnknownDriverError",
    "choose_spec",
    "installed_drivers",
    "load_harness",
    "resolve_harness",
]

ENTRY_POINT_GROUP = "nestq.drivers"
"""The entry-point group drivers register their harness in."""
DRIVER_ENV = "NESTQ_DRIVER"
"""The environment variable naming the driver (below ``--nestq-driver``, above the ini option)."""

Source = Literal["option", "env", "ini", "argument"]
"""Where the driver spec came from: ``--nestq-driver``, ``NESTQ_DRIVER``, the ini option, or a direct call."""

_SOURCE_LABELS: dict[str, str] = {
    "option": "--nestq-driver",
    "env": f"env {DRIVER_ENV}",
    "ini": "ini option nestq_driver",
    "argument": "argument",
}


class DriverError(Exception):
    """The named driver cannot be resolved to a harness; the message says why and what to do."""


class UnknownDriverError(DriverError, LookupError):
    """The name is neither an installed driver (entry point) nor an importable module."""

    def __init__(self, spec: str, installed: list[str]) -> None:
        self.spec = spec
        self.installed = installed
        self.suggestions = difflib.get_close_matches(spec, installed, n=3, cutoff=0.6)
        lines = [
            f"unknown nestq driver {spec!r}: it is not an entry point in the group {ENTRY_POINT_GROUP!r}, "
            "nor an importable module."
        ]
        if installed:
            lines.append("Installed drivers: " + ", ".join(installed) + ".")
        else:
            lines.append(f"No driver is installed (no entry point in the group {ENTRY_POINT_GROUP!r}).")
        if self.suggestions:
            lines.append("Did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?")
        lines.append(
            "Name a driver by its entry-point name, by a module exposing `harness`, or as 'package.module:attribute'."
        )
        super().__init__("\n".join(lines))


@dataclass(frozen=True, slots=True)
class DriverChoice:
    """A resolved driver: the spec as given, where it came from, how it resolved, and the harness."""

    spec: str
    source: Source
    origin: str
    """How the spec resolved, for the report header (``entry point nestq.drivers:memory -> pkg.mod:harness``)."""
    harness: DriverHarness

    @property
    def source_label(self) -> str:
        """Where the spec came from, as a user would type it (``--nestq-driver``, ``env NESTQ_DRIVER``...)."""
        return _SOURCE_LABELS[self.source]

    @property
    def name(self) -> str:
        """The harness's short name, falling back to the spec when the harness keeps the default name."""
        name = getattr(self.harness, "name", "") or ""
        return name if name and name != "unnamed" else self.spec


def choose_spec(option: str | None, env: Mapping[str, str], ini: str | None) -> tuple[str, Source] | None:
    """Pick the driver spec by precedence (option, then ``NESTQ_DRIVER``, then ini); ``None`` when none is set."""
    candidates: list[tuple[str | None, Source]] = [(option, "option"), (env.get(DRIVER_ENV), "env"), (ini, "ini")]
    for value, source in candidates:
        if value is not None and value.strip():
            return value.strip(), source
    return None


def installed_drivers() -> list[str]:
    """The names of the drivers registered in the ``nestq.drivers`` entry-point group, sorted."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_harness(spec: str) -> DriverHarness:
    """Resolve ``spec`` to its harness (what a worker subprocess calls to find the parent's driver)."""
    return resolve_harness(spec).harness


def resolve_harness(spec: str, source: Source = "argument") -> DriverChoice:
    """Resolve a driver spec to a :class:`DriverChoice`; raise :class:`DriverError` with a clear message."""
    spec = spec.strip()
    if not spec:
        raise DriverError("the nestq driver name is empty")
    obj: Any
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise DriverError(f"driver {spec!r}: expected 'package.module:attribute'")
        obj = _import(module_name, spec)
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise DriverError(f"driver {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
        origin = f"{spec} (module:attribute)"
    else:
        found = _entry_point(spec)
        if found is not None:
            try:
                obj = found.load()
            except Exception as exc:
                raise DriverError(
                    f"driver {spec!r}: the entry point {ENTRY_POINT_GROUP}:{spec} = {found.value} failed to load: "
                    f"{type(exc).__name__}: {exc}{_trace(exc)}"
                ) from exc
            origin = f"entry point {ENTRY_POINT_GROUP}:{spec} -> {found.value}"
        else:
            try:
                module = importlib.import_module(spec)
            except ModuleNotFoundError as exc:
                if exc.name and (spec == exc.name or spec.startswith(exc.name + ".")):
                    raise UnknownDriverError(spec, installed_drivers()) from None
                raise DriverError(f"driver {spec!r}: importing the module failed: {exc}{_trace(exc)}") from exc
            except Exception as exc:
                raise DriverError(
                    f"driver {spec!r}: importing the module failed: {type(exc).__name__}: {exc}{_trace(exc)}"
                ) from exc
            obj = getattr(module, "harness", None)
            if obj is None:
                raise DriverError(
                    f"driver {spec!r}: the module has no attribute 'harness'; expose the DriverHarness as `harness` "
                    f"or name it as '{spec}:attribute'"
                )
            origin = f"module {spec} (attribute harness)"
    return DriverChoice(spec=spec, source=source, origin=origin, harness=_coerce(obj, spec))


def _import(module_name: str, spec: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise DriverError(f"driver {spec!r}: no module named {module_name!r}") from None
        raise DriverError(f"driver {spec!r}: importing {module_name!r} failed: {exc}{_trace(exc)}") from exc
    except Exception as exc:
        raise DriverError(
            f"driver {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}{_trace(exc)}"
        ) from exc


def _trace(exc: BaseException) -> str:
    """The traceback of an error raised while importing or building a driver, without the import machinery's frames.

    ``KeyError: 'missing'`` alone does not say where; the file and line of the driver's own code do.
    """
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if "importlib" not in f.filename and f.filename != __file__ and not f.filename.startswith("<frozen")
    ]
    if not frames:
        return ""
    shown = "".join(traceback.format_list(frames[-8:])).rstrip()
    return "\nTraceback (most recent call last, import machinery left out):\n" + shown


def _entry_point(name: str) -> EntryPoint | None:
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    values = sorted({ep.value for ep in found})
    if len(values) > 1:
        raise DriverError(
            f"driver {name!r} is registered more than once in {ENTRY_POINT_GROUP!r} with different targets: "
            + ", ".join(values)
            + "; uninstall one, or name the driver as 'package.module:attribute'"
        )
    return found[0] if found else None


def _coerce(obj: object, spec: str) -> DriverHarness:
    """Accept an instance, a subclass (instantiated) or a zero-argument factory (called)."""
    from nestq_conformance.harness import DriverHarness

    if isinstance(obj, DriverHarness):
        return obj
    if isinstance(obj, type):
        if not issubclass(obj, DriverHarness):
            raise DriverError(f"driver {spec!r} names the class {obj.__qualname__}, which is not a DriverHarness")
        if inspect.isabstract(obj):
            missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
            raise DriverError(f"driver {spec!r}: {obj.__qualname__} is abstract; implement {missing}")
        try:
            return obj()
        except Exception as exc:
            raise DriverError(
                f"driver {spec!r}: {obj.__qualname__}() raised {type(exc).__name__}: {exc}{_trace(exc)}"
            ) from exc
    if callable(obj):
        try:
            made = obj()
        except Exception as exc:
            raise DriverError(f"driver {spec!r}: the factory raised {type(exc).__name__}: {exc}{_trace(exc)}") from exc
        if isinstance(made, DriverHarness):
            return made
        raise DriverError(f"driver {spec!r}: the factory returned {made!r}, which is not a DriverHarness")
    raise DriverError(
        f"driver {spec!r} resolved to {obj!r} ({type(obj).__name__}), which is not a DriverHarness instance, "
        "a subclass of it, or a factory returning one"
    )
