"""nestq_conformance: the conformance kit that holds queue drivers to the nestq contract.

A driver exposes one :class:`DriverHarness` (entry point group ``nestq.drivers``) declaring its
:class:`Capabilities`; ``pytest --nestq-driver=NAME`` or ``nestq check NAME`` runs the suite's rules against it.

The names below are imported on first use, so importing the package (which the pytest plugin does in every
pytest run) costs nothing until a driver is named.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nestq_conformance.capabilities import Capabilities, ManifestError
    from nestq_conformance.catalogue import SUITE_VERSION, CatalogueEntry, load_catalogue
    from nestq_conformance.harness import DeadLetterInfo, DriverHarness, SuiteSettings
    from nestq_conformance.resolve import DriverChoice, DriverError, UnknownDriverError, load_harness, resolve_harness
    from nestq_conformance.rules import Rule, rule, rule_of

__all__ = [
    "SUITE_VERSION",
    "Capabilities",
    "CatalogueEntry",
    "DeadLetterInfo",
    "DriverChoice",
    "DriverError",
    "DriverHarness",
    "ManifestError",
    "Rule",
    "SuiteSettings",
    "UnknownDriverError",
    "load_catalogue",
    "load_harness",
    "resolve_harness",
    "rule",
    "rule_of",
]

_HOMES = {
    "Capabilities": "capabilities",
    "ManifestError": "capabilities",
    "SUITE_VERSION": "catalogue",
    "CatalogueEntry": "catalogue",
    "load_catalogue": "catalogue",
    "DeadLetterInfo": "harness",
    "DriverHarness": "harness",
    "SuiteSettings": "harness",
    "DriverChoice": "resolve",
    "DriverError": "resolve",
    "UnknownDriverError": "resolve",
    "load_harness": "resolve",
    "resolve_harness": "resolve",
    "Rule": "rules",
    "rule": "rules",
    "rule_of": "rules",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'nestq_conformance' has no attribute {name!r}")
    # Not cached in globals(): a re-imported submodule (pytester restores sys.modules) must win.
    return getattr(importlib.import_module(f"nestq_conformance.{home}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
