"""Where the suite lives, which version it is, its hash, and the rule catalogue read from its test functions.

The suite is the package ``nestq_conformance.suite``. Kit tests point the plugin and the commands at a small fake
suite instead with the environment variable ``NESTQ_SUITE_PATH`` (or the ini option ``nestq_suite_path``); that
is what the variable is for, not for drivers.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from nestq_conformance.rules import Rule, rule_of

__all__ = [
    "SUITE_PACKAGE",
    "SUITE_PATH_ENV",
    "SUITE_VERSION",
    "CatalogueEntry",
    "area_title",
    "default_suite_dir",
    "load_catalogue",
    "suite_dir",
    "suite_hash",
]

SUITE_VERSION = "2"
"""The version of the rule set; a rule's ``since`` names the suite version that added it."""
SUITE_PACKAGE = "nestq_conformance.suite"
"""The package holding the suite's test modules."""
SUITE_PATH_ENV = "NESTQ_SUITE_PATH"
"""Points the plugin and ``nestq check``/``nestq rules`` at another suite directory (for the kit's own tests)."""


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One rule of the catalogue and the test that states it."""

    rule: Rule
    module: str
    function: str
    area_title: str | None
    """The area's name from the module docstring (``"PRD: the producer side ..."`` -> ``"the producer side"``)."""

    @property
    def area(self) -> str:
        """The rule id's prefix (``PRD`` for ``PRD-001``)."""
        return self.rule.id.split("-", 1)[0]

    def as_dict(self) -> dict[str, object]:
        """Plain data for ``nestq rules --json``."""
        r = self.rule
        return {
            "id": r.id,
            "level": r.level,
            "title": r.title,
            "hint": r.hint,
            "requires": list(r.requires),
            "probes": list(r.probes),
            "since": r.since,
            "area": self.area,
            "area_title": self.area_title,
            "module": self.module,
            "function": self.function,
        }


def default_suite_dir() -> Path:
    """The directory of the ``nestq_conformance.suite`` package (found without importing the suite)."""
    spec = importlib.util.find_spec(SUITE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the conformance suite package {SUITE_PACKAGE!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def suite_dir(ini_value: str | None = None, *, base: Path | None = None) -> Path:
    """The suite directory: ``NESTQ_SUITE_PATH``, then the ini value (relative to ``base``), then the package."""
    for value in (os.environ.get(SUITE_PATH_ENV), ini_value):
        if value and value.strip():
            path = Path(value.strip()).expanduser()
            if not path.is_absolute() and base is not None:
                path = base / path
            return path.resolve()
    return default_suite_dir()


def _suite_files(path: Path) -> Iterator[Path]:
    for found in sorted(path.rglob("*")):
        if found.is_file() and "__pycache__" not in found.parts and found.suffix not in (".pyc", ".pyo"):
            yield found


def suite_hash(path: Path) -> str:
    """``sha256:<hex>`` over the suite's files (relative path and content of each), so a report names its suite."""
    digest = hashlib.sha256()
    for file in _suite_files(path):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


def area_title(module: ModuleType) -> str | None:
    """The area name a suite module's docstring starts with (``"PRD: the producer side..."``), if any."""
    first = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
    head, sep, rest = first.partition(":")
    if sep and len(head) == 3 and head.isupper():
        return rest.strip().rstrip(".").split(":")[0].strip() or None
    return None


def _suite_modules(path: Path) -> Iterator[ModuleType]:
    files = sorted(p for p in path.glob("*.py") if p.name.startswith("test_") or p.name.endswith("_test.py"))
    if path == default_suite_dir():
        for file in files:
            yield importlib.import_module(f"{SUITE_PACKAGE}.{file.stem}")
        return
    # Another suite (a kit test's fake one): load each file under a private name, its directory importable.
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    for file in files:
        name = f"_nestq_catalogue_{digest}_{file.stem}"
        if name in sys.modules:
            yield sys.modules[name]
            continue
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load suite module {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        yield module


def _test_functions(module: ModuleType) -> Iterator[tuple[str, object]]:
    for name, obj in vars(module).items():
        if inspect.isfunction(obj) and name.startswith("test"):
            yield name, obj
        elif inspect.isclass(obj) and name.startswith("Test"):
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and attr.startswith("test"):
                    yield f"{name}.{attr}", member


def load_catalogue(path: Path | None = None) -> list[CatalogueEntry]:
    """Import the suite's test modules and return every rule they declare, sorted by id."""
    found: dict[str, CatalogueEntry] = {}
    for module in _suite_modules(path or suite_dir()):
        title = area_title(module)
        for name, func in _test_functions(module):
            declared = rule_of(func)
            if declared is not None and declared.id not in found:
                found[declared.id] = CatalogueEntry(declared, module.__name__, name, title)
    return [found[key] for key in sorted(found)]
