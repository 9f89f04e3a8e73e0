"""The nestq pytest plugin (entry point ``pytest11: nestq``): judge a named driver with the conformance suite.

The plugin is inert and cheap to import until a driver is named, by ``--nestq-driver``, the environment variable
``NESTQ_DRIVER`` or the ini option ``nestq_driver`` (that precedence). Then it:

- resolves the driver (see :mod:`nestq_conformance.resolve`) and refuses to start on an unknown name or a
  contradictory capability manifest, and says in the report header which driver, from where, and its manifest;
- adds the suite's directory to the paths pytest collects (beside the project's own tests; ``--nestq-no-suite``
  opts out, and nothing is added when a path given already points into the suite);
- turns rules into outcomes: a rule needing an undeclared capability, or a probe the harness lacks, is skipped
  with a reason naming it; a rule the driver lists in ``expected_failures`` is a strict xfail; a failing rule's
  report starts with the rule id, level and title and ends with its hint; a ``NotImplementedError`` raised by a
  harness probe becomes a skip naming the probe;
- writes ``nestq-report.json``, ``nestq-report.md`` and ``nestq-badge.json`` with ``--nestq-report=DIR``, and
  says when every rule that ran failed (a broken environment rather than a broken driver).

Fixtures: ``nestq_harness`` (session; ``session_start()``/``session_end()`` around the session),
``nestq_settings``, ``nestq_timeout_scale``, ``nestq_capabilities``, ``nestq_driver`` and ``nestq_driver_spec``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import re
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _pytest._code.code import TerminalRepr

if TYPE_CHECKING:
    from _pytest._io import TerminalWriter

    from nestq_conformance.capabilities import Capabilities
    from nestq_conformance.harness import DriverHarness, SuiteSettings
    from nestq_conformance.report import Collector
    from nestq_conformance.resolve import DriverChoice
    from nestq_conformance.rules import Rule

__all__ = ["NestqSession", "RuleRepr", "load_harness"]

TIMEOUT_SCALE_ENV = "NESTQ_TIMEOUT_SCALE"
_NO_DRIVER = (
    "no nestq driver is named: pass --nestq-driver=NAME, set NESTQ_DRIVER, or set the ini option nestq_driver "
    "(an entry-point name in nestq.drivers, a module exposing `harness`, or package.module:attribute)"
)
_PROBE_MESSAGE = re.compile(r"\s*(\w+) (probe|hook)\b")
_WANTED = {"durability": "durable", "delivery": "at-least-once", "ordering": "fifo"}


def load_harness(spec: str) -> DriverHarness:
    """Resolve a driver spec to its harness exactly as the plugin does (used by the worker subprocess)."""
    from nestq_conformance.resolve import load_harness as resolve

    return resolve(spec)


# ---------------------------------------------------------------------------------------------------------------
# Options


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``--nestq-*`` options and the ``nestq_*`` ini options."""
    group = parser.getgroup("nestq", "nestq conformance suite")
    group.addoption(
        "--nestq-driver",
        dest="nestq_driver",
        metavar="NAME",
        default=None,
        help="run the nestq conformance suite against this driver: an entry-point name in nestq.drivers, a module "
        "exposing `harness`, or package.module:attribute (else env NESTQ_DRIVER, else ini nestq_driver)",
    )
    group.addoption(
        "--nestq-timeout-scale",
        dest="nestq_timeout_scale",
        metavar="FACTOR",
        default=None,
        help=f"multiply every deadline and timing of the suite by FACTOR for slow machines (else env "
        f"{TIMEOUT_SCALE_ENV}, else ini nestq_timeout_scale, else 1.0)",
    )
    group.addoption(
        "--nestq-report",
        dest="nestq_report",
        metavar="DIR",
        default=None,
        help="write nestq-report.json, nestq-report.md (report card) and nestq-badge.json into DIR",
    )
    group.addoption(
        "--nestq-report-scratch",
        dest="nestq_report_scratch",
        action="store_true",
        default=False,
        help=argparse.SUPPRESS,  # `nestq check` without --report: the folder is temporary, so never name it
    )
    group.addoption(
        "--nestq-no-suite",
        dest="nestq_no_suite",
        action="store_true",
        default=False,
        help="do not add the conformance suite to the collected paths (its fixtures stay available)",
    )
    parser.addini("nestq_driver", "the driver the nestq conformance suite runs against (see --nestq-driver)")
    parser.addini("nestq_timeout_scale", "deadline scale factor for the nestq suite (see --nestq-timeout-scale)")
    parser.addini(
        "nestq_suite_path",
        "run another suite directory instead of nestq_conformance.suite (for the kit's own tests; env "
        "NESTQ_SUITE_PATH wins)",
    )


def _ini(config: pytest.Config, name: str) -> str | None:
    value = config.getini(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _timeout_scale(config: pytest.Config) -> tuple[float, str]:
    """The scale factor and where it came from; a bad value is a usage error naming its source."""
    candidates = [
        (config.getoption("nestq_timeout_scale", None), "--nestq-timeout-scale"),
        (os.environ.get(TIMEOUT_SCALE_ENV), f"env {TIMEOUT_SCALE_ENV}"),
        (_ini(config, "nestq_timeout_scale"), "ini option nestq_timeout_scale"),
    ]
    for raw, source in candidates:
        if raw is None or not str(raw).strip():
            continue
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise pytest.UsageError(f"nestq: {source}={raw!r} is not a positive number")
        return value, source
    return 1.0, "default"


# ---------------------------------------------------------------------------------------------------------------
# Configuration: resolve the driver and add the suite


@dataclass(slots=True)
class _State:
    choice: DriverChoice
    description: str
    scale: float
    scale_source: str
    suite: Path
    suite_added: str
    """Why the suite was or was not added to the collected paths (for the header)."""
    report_dir: Path | None
    collector: Collector
    started: float
    custom_suite: str | None = None
    """The suite's path when it is not the shipped one (``NESTQ_SUITE_PATH`` or the ini option)."""
    environment_error: str | None = None
    """The preflight's message when the environment is broken (no rule ran)."""
    session_started: bool = False
    narrowed: bool = False
    """A path or node id given points at part of the suite, not all of it."""


_STATE = pytest.StashKey[_State]()
_RULE = pytest.StashKey["Rule"]()
_RULE_PROBLEM = pytest.StashKey[str]()


def _describe(harness: DriverHarness) -> str:
    from nestq_conformance.redaction import redact_text

    try:
        return redact_text(" ".join(str(harness.describe()).split()))
    except Exception as exc:  # the header must come out even when describe() is broken
        return redact_text(f"(describe() raised {type(exc).__name__}: {exc})")


def _arg_path(arg: str, base: Path) -> Path:
    path = Path(arg.split("::", 1)[0])
    return (path if path.is_absolute() else base / path).resolve()


def pytest_configure(config: pytest.Config) -> None:
    """Resolve the named driver (if any), validate its manifest, and add the suite to the collected paths."""
    config.addinivalue_line("markers", "nestq: a rule of the nestq conformance suite (added by the nestq plugin)")
    if getattr(config.option, "help", False):
        return
    option = config.getoption("nestq_driver", None)
    env_value = os.environ.get("NESTQ_DRIVER")
    ini_value = _ini(config, "nestq_driver")
    if not any(v and v.strip() for v in (option, env_value, ini_value)):
        return  # inert: nothing named, nothing imported

    from nestq_conformance.capabilities import Capabilities
    from nestq_conformance.catalogue import default_suite_dir, suite_dir
    from nestq_conformance.report import Collector
    from nestq_conformance.resolve import DriverError, choose_spec, resolve_harness

    chosen = choose_spec(option, os.environ, ini_value)
    assert chosen is not None
    spec, source = chosen
    try:
        choice = resolve_harness(spec, source)
    except DriverError as exc:
        raise pytest.UsageError(f"nestq: {exc}") from None
    harness = choice.harness
    caps = harness.capabilities
    if not isinstance(caps, Capabilities):
        raise pytest.UsageError(
            f"nestq: driver {choice.name!r} ({choice.source_label}): harness.capabilities is {caps!r}, "
            "not a nestq_conformance.Capabilities"
        )
    problems = caps.problems()
    if problems:
        raise pytest.UsageError(
            f"nestq: driver {choice.name!r} ({choice.source_label}) declares a capability manifest that contradicts "
            "itself:\n" + "\n".join(f"  - {p}" for p in problems) + "\nFix the Capabilities(...) of its harness: "
            "the suite holds a driver to exactly what it declares, so the declaration must be consistent."
        )
    bad_ids = [key for key in harness.expected_failures if not re.fullmatch(r"[A-Z]{3}-\d{3}", str(key))]
    if bad_ids:
        raise pytest.UsageError(
            f"nestq: driver {choice.name!r}: expected_failures keys must be rule ids like 'DLV-004', found {bad_ids}"
        )
    scale, scale_source = _timeout_scale(config)
    ini_base = config.inipath.parent if config.inipath else config.rootpath
    suite = suite_dir(_ini(config, "nestq_suite_path"), base=ini_base)
    if not suite.is_dir():
        raise pytest.UsageError(f"nestq: the suite directory {suite} does not exist")

    invocation = config.invocation_params.dir
    inside = [a for a in config.args if _arg_path(a, invocation).is_relative_to(suite)]
    if config.getoption("nestq_no_suite", False):
        added = "not added (--nestq-no-suite)"
    elif inside:
        added = "not added (a path given points into it)"
    else:
        config.args.append(str(suite))
        added = "collected beside the given paths"
    report_option = config.getoption("nestq_report", None)
    report_dir = (invocation / report_option).resolve() if report_option else None

    state = _State(
        choice=choice,
        description=_describe(harness),
        scale=scale,
        scale_source=scale_source,
        suite=suite,
        suite_added=added,
        report_dir=report_dir,
        collector=Collector(),
        started=time.time(),
        custom_suite=None if suite == default_suite_dir() else str(suite),
        narrowed=any("::" in a or _arg_path(a, invocation) != suite for a in inside),
    )
    config.stash[_STATE] = state
    # The suite's conftest reads this to hand the same spec to worker subprocesses.
    config.nestq_driver_spec = spec  # type: ignore[attr-defined]
    config.pluginmanager.register(NestqSession(config, state), "nestq-session")


# ---------------------------------------------------------------------------------------------------------------
# Fixtures


def _state_or_fail(config: pytest.Config) -> _State:
    state = config.stash.get(_STATE, None)
    if state is None:
        pytest.fail(_NO_DRIVER, pytrace=False)
    return state


@pytest.fixture(scope="session")
def nestq_driver(request: pytest.FixtureRequest) -> DriverChoice:
    """The resolved driver: its spec, where the spec came from, how it resolved, and the harness."""
    return _state_or_fail(request.config).choice


@pytest.fixture(scope="session")
def nestq_driver_spec(nestq_driver: DriverChoice) -> str:
    """The driver spec as named (what a worker subprocess resolves again)."""
    return nestq_driver.spec


@pytest.fixture(scope="session")
def nestq_harness(nestq_driver: DriverChoice, request: pytest.FixtureRequest) -> Iterator[DriverHarness]:
    """The driver's harness; ``session_start()`` runs before its first use and ``session_end()`` at the end."""
    harness = nestq_driver.harness
    state = request.config.stash.get(_STATE, None)
    if state is not None and state.session_started:
        yield harness  # the plugin started the session before its preflight, and ends it after the run
        return
    harness.session_start()
    if state is not None:
        # The header was written before the session started; the report says where the storage really is.
        state.description = _describe(harness)
        state.session_started = True
    try:
        yield harness
    finally:
        if state is not None:
            state.session_started = False
        harness.session_end()


@pytest.fixture(scope="session")
def nestq_timeout_scale(request: pytest.FixtureRequest) -> float:
    """The factor every deadline is multiplied by (``--nestq-timeout-scale``, ``NESTQ_TIMEOUT_SCALE``, ini, 1.0)."""
    state = request.config.stash.get(_STATE, None)
    return state.scale if state is not None else _timeout_scale(request.config)[0]


@pytest.fixture(scope="session")
def nestq_settings(nestq_timeout_scale: float) -> SuiteSettings:
    """The suite's settings for the driver's modules, every duration multiplied by the timeout scale."""
    return _scaled_settings(nestq_timeout_scale)


def _scaled_settings(scale: float) -> SuiteSettings:
    from nestq_conformance.harness import SuiteSettings

    base = SuiteSettings()
    floats = [f.name for f in dataclasses.fields(base) if isinstance(getattr(base, f.name), float)]
    scaled = {name: getattr(base, name) * scale for name in floats}
    return base.with_(**scaled)


@pytest.fixture(scope="session")
def nestq_capabilities(nestq_driver: DriverChoice) -> Capabilities:
    """The driver's capability manifest (validated at session start)."""
    return nestq_driver.harness.capabilities


# ---------------------------------------------------------------------------------------------------------------
# Outcomes and reports, active only when a driver is named


class RuleRepr(TerminalRepr):
    """A failing rule's report: the rule id, level and title first, pytest's report, then the rule's hint."""

    def __init__(self, header: str, inner: object, footer: str, rule_id: str) -> None:
        self.header = header
        self.inner = inner
        self.footer = footer
        crash = getattr(inner, "reprcrash", None)
        if crash is not None and isinstance(getattr(crash, "message", None), str):
            from nestq_conformance.redaction import redact_text

            with contextlib.suppress(TypeError):  # not the dataclass pytest uses today: keep it as is
                crash = dataclasses.replace(crash, message=redact_text(f"{rule_id}: {crash.message}"))
        self.reprcrash = crash

    def toterminal(self, tw: TerminalWriter) -> None:
        """Write header, the inner report, and the hint."""
        from nestq_conformance.redaction import redact_text

        tw.line(self.header, red=True, bold=True)
        tw.line("")
        # Rendered to text first, so that what the terminal shows goes through the spec's redaction too.
        for line in redact_text(str(self.inner)).splitlines():
            tw.line(line)
        tw.line("")
        tw.line(self.footer, yellow=True, bold=True)


def _hint_line(hint: str) -> str:
    hint = hint.strip()
    return f"if this fails, {hint}" if hint.lower().startswith("check") else f"if this fails, check: {hint}"


def _missing_probe(exc: BaseException) -> str | None:
    """The probe/hook a ``NotImplementedError`` (possibly grouped or chained) says the harness lacks."""
    from nestq_conformance.harness import DriverHarness

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            names = {_missing_probe(e) for e in current.exceptions}
            return names.pop() if len(names) == 1 and None not in names else None
        if isinstance(current, NotImplementedError):
            match = _PROBE_MESSAGE.match(str(current))
            if match and hasattr(DriverHarness, match.group(1)):
                return f"{match.group(1)} {match.group(2)}"
            return None
        current = current.__cause__
    return None


class NestqSession:
    """The hooks that act once a driver is named (registered by ``pytest_configure`` as ``nestq-session``)."""

    def __init__(self, config: pytest.Config, state: _State) -> None:
        self.config = config
        self.state = state
        self.written: dict[str, Path] = {}
        self.report_error: str | None = None
        self.seen_ids: set[str] = set()
        """Rule ids collected (before any deselection)."""
        self.collected: dict[str, str] = {}
        """Node id -> rule id of the rule items collected (before any deselection)."""
        self.selected: set[str] | None = None
        """Node ids of the rule items left after deselection (``None`` where this process did not collect)."""
        self.manifest_problems: list[str] = []
        self.stopped_early = False
        self.started_here = False
        """The plugin (not the fixture) started the harness's session, for the preflight."""
        self.session_end_error: str | None = None
        self.preflight_note: str | None = None

    @property
    def _driver(self) -> str:
        return self.state.choice.name

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        """Which driver, from where, how it resolved, its description and manifest, and the suite."""
        from nestq_conformance.catalogue import SUITE_VERSION

        choice, state = self.state.choice, self.state
        suite_name = "custom suite (not the shipped one)" if state.custom_suite else f"suite {SUITE_VERSION}"
        manifest = ", ".join(f"{k}={v!r}" for k, v in choice.harness.capabilities.as_dict().items())
        lines = [
            f"nestq: driver {self._driver!r} from {choice.source_label} ({choice.spec!r}): {choice.origin}",
            f"nestq: harness: {state.description}",
            f"nestq: manifest: {manifest}",
            f"nestq: {suite_name} at {state.suite}: {state.suite_added}; timeout scale {state.scale:g} "
            f"({state.scale_source})",
        ]
        if choice.harness.expected_failures:
            lines.append("nestq: expected failures declared: " + ", ".join(sorted(choice.harness.expected_failures)))
        return lines

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Attach rule metadata, capability and probe skips, and strict expected failures to every rule item."""
        from nestq_conformance.rules import rule_of

        for item in items:
            func = getattr(item, "function", None)
            found = rule_of(func) if func is not None else None
            if found is not None:
                self.seen_ids.add(found.id)
                self.collected[item.nodeid] = found.id
                self._mark(item, found)
        if self.manifest_problems:
            # Nothing is reported: like a contradictory manifest, this is the driver's declaration to fix first.
            self.state.report_dir = None
            problems = sorted(set(self.manifest_problems))
            pytest.exit(
                f"nestq: driver {self._driver!r} ({self.state.choice.source_label}) declares capabilities whose "
                "probes its harness does not implement:\n" + "\n".join(f"  - {p}" for p in problems)
                + "\nImplement the probe (override the DriverHarness method) or stop declaring the capability: "
                "a declared capability is held to its rules, never skipped.",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Remember which rule items survived deselection (``-k``, ``-m``, ``--deselect``, node ids)."""
        self.selected = {item.nodeid for item in session.items if _RULE in item.stash}

    def _mark(self, item: pytest.Item, rule: Rule) -> None:
        from nestq_conformance.capabilities import Capabilities
        from nestq_conformance.catalogue import area_title

        harness = self.state.choice.harness
        item.stash[_RULE] = rule
        item.add_marker(pytest.mark.nestq)
        item.extra_keyword_matches.add(rule.id)  # so `-k DLV-004` (or `-k DLV`) selects by rule id
        item.user_properties.extend(
            [
                ("nestq_rule", rule.id),
                ("nestq_level", rule.level),
                ("nestq_requires", ",".join(rule.requires)),
                ("nestq_probes", ",".join(rule.probes)),
                ("nestq_title", rule.title),
                ("nestq_hint", rule.hint),
            ]
        )
        module = getattr(item, "module", None)
        title = area_title(module) if module is not None else None
        if title:
            self.state.collector.area_titles.setdefault(rule.id.split("-", 1)[0], title)
        known = {f.name for f in dataclasses.fields(Capabilities)}
        unknown = [name for name in rule.requires if name not in known]
        if unknown:
            item.stash[_RULE_PROBLEM] = (
                f"the rule requires unknown capabilities {unknown}; known: {sorted(known)} "
                "(a bug in the suite, not in the driver)"
            )
            return
        caps = harness.capabilities
        missing = [name for name in rule.requires if not caps.declared(name)]
        if missing:
            item.add_marker(pytest.mark.skip(reason=self._capability_reason(rule, missing, caps)))
            item.user_properties.append(("nestq_skip", "not-declared"))
            return
        from nestq_conformance.harness import OPTIONAL_PROBES, implemented_probes

        have = implemented_probes(harness)
        lacking = [name for name in rule.probes if name in OPTIONAL_PROBES and name not in have]
        if lacking and rule.requires:
            for name in lacking:
                self.manifest_problems.append(
                    f"capability {' + '.join(repr(r) for r in rule.requires)} is declared, but its rule {rule.id} "
                    f"needs the {name} probe, which the harness does not implement (DriverHarness.{name} not "
                    "overridden)"
                )
            return
        if lacking:
            names = ", ".join(lacking)
            item.add_marker(
                pytest.mark.skip(
                    reason=f"{rule.id} skipped: the {names} probe{'s' if len(lacking) > 1 else ''} "
                    f"{'are' if len(lacking) > 1 else 'is'} not provided by the harness of driver {self._driver} "
                    f"(DriverHarness.{lacking[0]} not overridden)"
                )
            )
            return
        reason = harness.expected_failures.get(rule.id)
        if reason is not None:
            item.add_marker(
                pytest.mark.xfail(
                    reason=f"{rule.id} is a known failure of driver {self._driver}: {reason}", strict=True
                )
            )

    def _capability_reason(self, rule: Rule, missing: list[str], caps: Capabilities) -> str:
        parts = []
        for name in missing:
            wanted = _WANTED.get(name, True)
            have = getattr(caps, name)
            parts.append(f"'{name}' ({name}={wanted!r}; the driver declares {name}={have!r})")
        noun = "capability" if len(parts) == 1 else "capabilities"
        return f"{rule.id} skipped: {noun} {', '.join(parts)} not declared by driver {self._driver}"

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Fail a rule whose declaration is broken (an unknown capability) before it runs."""
        problem = item.stash.get(_RULE_PROBLEM, None)
        if problem is not None:
            pytest.fail(problem, pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        """Turn a ``NotImplementedError`` from a harness probe or hook into a skip naming it."""
        rule = item.stash.get(_RULE, None)
        if rule is None:
            return (yield)
        try:
            return (yield)
        except Exception as exc:
            probe = _missing_probe(exc)
            if probe is None:
                raise
            if rule.requires:
                # The rule applies (its capabilities are declared): a probe that gives up is not a reason to skip.
                pytest.fail(
                    f"{rule.id}: the harness of driver {self._driver} declares "
                    f"{', '.join(rule.requires)}, but its {probe} raised NotImplementedError({str(exc)!r}); "
                    "a declared capability's probes must work",
                    pytrace=False,
                )
            raise pytest.skip.Exception(
                f"{rule.id} skipped: the {probe} is not provided by the harness of driver {self._driver} "
                f"(it raised NotImplementedError({str(exc) if isinstance(exc, NotImplementedError) else probe!r}))",
                _use_item_location=True,
            ) from None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """Frame a failing rule's report with its id, level, title and hint (after xfail handling)."""
        report = yield
        rule = item.stash.get(_RULE, None)
        if rule is None or not report.failed:
            return report
        header = f"{rule.id} [{rule.level}] {rule.title} (driver {self._driver})"
        longrepr = report.longrepr
        if report.when == "call" and isinstance(longrepr, str) and longrepr.startswith("[XPASS(strict)]"):
            reason = self.state.choice.harness.expected_failures.get(rule.id, "")
            report.nestq_xpassed = True
            report.longrepr = RuleRepr(
                header,
                f"[XPASS(strict)] {rule.id} passed, but driver {self._driver} lists it in expected_failures "
                f"({reason!r}).",
                f"the driver now honours {rule.id}: remove it from the harness's expected_failures",
                rule.id,
            )
        else:
            phase = "" if report.when == "call" else f"[{report.when} error] "
            report.longrepr = RuleRepr(phase + header, longrepr, _hint_line(rule.hint), rule.id)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Feed every report to the outcome collector."""
        self.state.collector.add(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Start the harness's session and run the preflight before the first rule (the shipped suite only)."""
        config = session.config
        if config.option.collectonly or getattr(config.option, "dist", "no") not in ("no", None):
            return  # nothing runs here (xdist's controller hands the rules to its workers, which do this)
        if self.state.custom_suite is not None or not self.selected:
            return  # a kit test's fake suite builds no apps; and no rule, no preflight
        from nestq_conformance.preflight import preflight, unfinished_driver

        harness = self.state.choice.harness
        harness.selected_requires = frozenset(
            need for item in session.items if _RULE in item.stash for need in item.stash[_RULE].requires
        )
        try:
            harness.session_start()
        except Exception as exc:
            self._environment_error(f"session_start() raised {type(exc).__name__}: {exc}")
        self.state.session_started = True
        self.state.description = _describe(harness)
        self.started_here = True
        settings = _scaled_settings(self.state.scale)
        problem = preflight(harness, settings, scale=self.state.scale, driver_spec=self.state.choice.spec)
        if problem is not None and unfinished_driver(problem):
            self.preflight_note = (
                f"the preflight job did not get through (the driver is not finished: {problem[:300]}); "
                "the rules run anyway, each failure naming what to fill in"
            )
        elif problem is not None:
            self._environment_error(problem)

    def _environment_error(self, problem: str) -> None:
        from nestq_conformance.preflight import PREFLIGHT_SECONDS
        from nestq_conformance.redaction import redact_text

        message = redact_text(
            f"nestq: environment error, no rule ran: driver {self._driver!r} could not round-trip one job through "
            f"its producer and worker modules within {PREFLIGHT_SECONDS * self.state.scale:g}s "
            f"(harness: {self.state.description}): {problem}"
        )
        self.state.environment_error = message
        pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)

    def _completeness(self) -> tuple[bool, list[str]]:
        """Whether every rule of the shipped suite ran, and what was left out (and why) when not."""
        from nestq_conformance.catalogue import SUITE_VERSION, load_catalogue

        state = self.state
        left: list[str] = []
        results = state.collector.results()
        ran_ids = {r.id for r in results}
        ran_items = {i.nodeid for r in results for i in r.items}
        causes = _selection_causes(self.config, state)
        why = f" ({', '.join(causes)})" if causes else ""
        if state.custom_suite is not None:
            left.append(f"the shipped suite {SUITE_VERSION}: a custom suite at {state.custom_suite} ran instead")
        else:
            try:
                every = {e.rule.id for e in load_catalogue(state.suite)}
            except Exception as exc:  # a suite that cannot be read is not a complete run either
                every = set()
                left.append(f"the catalogue could not be read ({type(exc).__name__}: {exc})")
            missing = sorted(every - ran_ids)
            if missing:
                shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                left.append(f"{len(missing)} of {len(every)} rules did not run{why}: {shown}")
        if self.selected is not None:
            # Items of a rule that still ran (one case of a parametrized rule): the catalogue check cannot see them.
            partly = sorted(n for n, rid in self.collected.items() if n not in self.selected and rid in ran_ids)
            if partly:
                left.append(f"{len(partly)} case(s) of rules that ran were deselected{why}")
            not_run = sorted(self.selected - ran_items)
            if not_run:
                left.append(f"{len(not_run)} selected rule item(s) never ran (the run stopped early{why})")
        if self.stopped_early and not any("stopped early" in part for part in left):
            left.append(f"the run stopped early{why}")
        return not left, left

    def _report_data(self, exitstatus: int) -> dict[str, Any]:
        import nestq_spec
        from nestq_conformance.catalogue import SUITE_VERSION, suite_hash
        from nestq_conformance.report import build_report

        choice, state = self.state.choice, self.state
        complete, left_out = self._completeness()
        return build_report(
            state.collector.results(),
            driver={
                "name": self._driver,
                "spec": choice.spec,
                "source": choice.source,
                "origin": choice.origin,
                "description": state.description,
            },
            manifest=choice.harness.capabilities.as_dict(),
            expected_failures=dict(choice.harness.expected_failures),
            kit_version=nestq_spec.__version__,
            suite_version=SUITE_VERSION,
            suite_hash=suite_hash(state.suite),
            suite_path=str(state.suite),
            timeout_scale=state.scale,
            duration=time.time() - state.started,
            exit_status=exitstatus,
            complete=complete,
            left_out=left_out,
            custom_suite=state.custom_suite,
            environment_error=state.environment_error,
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the report files when ``--nestq-report`` asks (on the controller only, under xdist)."""
        self.stopped_early = bool(session.shouldstop or session.shouldfail)
        if self.started_here and self.state.session_started:
            self.state.session_started = False
            try:
                self.state.choice.harness.session_end()
            except Exception as exc:  # after an environment error the storage may be unusable; say so, once
                from nestq_conformance.redaction import redact_text

                self.session_end_error = redact_text(f"session_end() raised {type(exc).__name__}: {exc}")
        if self.state.report_dir is None or hasattr(session.config, "workerinput"):
            return
        from nestq_conformance.report import write_reports

        try:
            self.written = write_reports(self.state.report_dir, self._report_data(int(exitstatus)))
        except OSError as exc:
            self.report_error = f"nestq: could not write the report into {self.state.report_dir}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """A one-line verdict for the rules, the everything-failed notice, and where the report went."""
        from nestq_conformance.report import smoke_notice, totals

        tr = terminalreporter
        if self.preflight_note:
            tr.write_line(f"nestq: driver {self._driver}: {self.preflight_note}", yellow=True)
        if self.session_end_error:
            tr.write_line(f"nestq: driver {self._driver}: {self.session_end_error}", yellow=True)
        rules = [r.as_dict() for r in self.state.collector.results()]
        if not rules:
            return
        counts = totals(rules)
        summary = ", ".join(
            f"{counts[o]} {o}" for o in ("passed", "failed", "error", "xpassed", "xfailed", "skipped") if counts[o]
        )
        tr.write_sep("-", f"nestq: driver {self._driver}: {counts['rules']} rules: {summary}")
        notice = smoke_notice(rules, self.state.description)
        if notice:
            tr.write_line(f"nestq: {notice}", red=True, bold=True)
        stale = sorted(set(self.state.choice.harness.expected_failures) - self.seen_ids)
        if stale and self.state.suite_added.startswith("collected"):
            tr.write_line(
                f"nestq: expected_failures of driver {self._driver} names rules the suite does not have: "
                + ", ".join(stale)
                + " (renamed or removed: drop them)",
                yellow=True,
            )
        if self.written and not self.config.getoption("nestq_report_scratch", False):
            tr.write_line(
                f"nestq: report written to {self.state.report_dir} ("
                + ", ".join(path.name for path in self.written.values())
                + ")"
            )
        if self.report_error:
            tr.write_line(self.report_error, red=True)


def _selection_causes(config: pytest.Config, state: _State) -> list[str]:
    """The options and arguments that narrow what runs, as the user typed them."""
    causes = []
    if config.getoption("keyword", None):
        causes.append(f"-k {config.getoption('keyword')!r}")
    if config.getoption("markexpr", None):
        causes.append(f"-m {config.getoption('markexpr')!r}")
    if config.getoption("deselect", None):
        causes.append("--deselect")
    if config.getoption("maxfail", 0):
        causes.append("-x/--maxfail")
    if state.narrowed:
        causes.append("node ids or paths inside the suite")
    if state.suite_added.startswith("not added (--nestq-no-suite)"):
        causes.append("--nestq-no-suite")
    return causes
