"""The rule catalogue: every suite test is a rule with a stable id, a level, the capabilities it needs, a hint.

The catalogue is read from the suite itself (the ``@rule`` decorator), so docs and reports cannot drift from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

__all__ = ["Rule", "rule"]

F = TypeVar("F", bound=Callable[..., Any])
Level = Literal["MUST", "SHOULD", "MAY"]

_ID = re.compile(r"[A-Z]{3}-\d{3}")
_RULE_ATTR = "__nestq_rule__"
_BY_ID: dict[str, Rule] = {}


@dataclass(frozen=True, slots=True)
class Rule:
    """One numbered rule of the contract."""

    id: str
    level: Level
    title: str
    """One sentence: what the rule checks (the test's docstring)."""
    hint: str
    """'If this fails, check ...'."""
    requires: tuple[str, ...] = ()
    """Capability names (see :class:`~nestq_conformance.capabilities.Capabilities`) the rule needs."""
    probes: tuple[str, ...] = ()
    """Harness probes or hooks the rule calls (``dead_letters``, ``restart_storage``...)."""
    since: str = "1"
    """The suite version that added the rule."""


def rule(
    id: str,
    level: Level,
    *,
    hint: str,
    requires: tuple[str, ...] = (),
    probes: tuple[str, ...] = (),
    since: str = "1",
) -> Callable[[F], F]:
    """Make a suite test a numbered rule; its docstring's first line is the rule's one sentence."""
    if not _ID.fullmatch(id):
        raise ValueError(f"rule id {id!r} must look like ABC-123")

    def decorate(func: F) -> F:
        title = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        if not title:
            raise ValueError(f"rule {id} ({func.__qualname__}) needs a docstring saying what it checks")
        made = Rule(id, level, title, hint, tuple(requires), tuple(probes), since)
        if id in _BY_ID and _BY_ID[id] != made:
            raise ValueError(f"rule id {id} is used twice: {_BY_ID[id].title!r} and {title!r}")
        _BY_ID[id] = made
        setattr(func, _RULE_ATTR, made)
        return func

    return decorate


def rule_of(func: object) -> Rule | None:
    """The rule a test function declares, if any."""
    return getattr(func, _RULE_ATTR, None)
