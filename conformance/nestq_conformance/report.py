"""Rule outcomes and the reports made from them: the JSON report, the Markdown report card, the badge, the table.

The plugin feeds every test report of a rule item to a :class:`Collector`; :func:`build_report` turns what it
collected into one plain-data report (validated by ``report.schema.json``, shipped beside this module), and every
other view (:func:`render_markdown`, :func:`badge`, :func:`render_table`) is rendered from that data, so
``nestq check`` can print the card of a report it only read from disk.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from nestq_conformance.redaction import redact_text

__all__ = [
    "LEVELS",
    "OUTCOMES",
    "REPORT_FILES",
    "SCHEMA_PATH",
    "SMOKE_MIN_RULES",
    "Collector",
    "ItemResult",
    "Outcome",
    "RuleResult",
    "badge",
    "build_report",
    "load_schema",
    "render_markdown",
    "render_table",
    "smoke_notice",
    "totals",
    "write_reports",
]

Outcome = Literal["passed", "failed", "error", "xpassed", "xfailed", "skipped"]
OUTCOMES: tuple[Outcome, ...] = ("passed", "failed", "error", "xpassed", "xfailed", "skipped")
"""Every outcome, in the order a rule with several items (parametrized cases) takes the first one present."""
LEVELS = ("MUST", "SHOULD", "MAY")
BROKEN: frozenset[str] = frozenset({"failed", "error", "xpassed"})
"""Outcomes that make a run fail (an unexpected pass of a strict expected failure included)."""
SMOKE_MIN_RULES = 3
"""The everything-failed notice needs at least this many rules to have run."""
REPORT_FILES = {"json": "nestq-report.json", "markdown": "nestq-report.md", "badge": "nestq-badge.json"}
"""File names written by :func:`write_reports`."""
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
"""The JSON Schema of :func:`build_report`'s output."""

NOT_APPLICABLE = "does not apply:"
"""How a rule's own skip starts when the driver declares nothing it could check (counted like an undeclared
capability: the rule does not apply)."""

PROPERTY_PREFIX = "nestq_"
"""Rule metadata travels on each report's ``user_properties`` under these keys (so xdist/JUnit carry it too)."""

_SOURCES = {"option": "--nestq-driver", "env": "env NESTQ_DRIVER", "ini": "ini nestq_driver", "argument": "argument"}
_PRECEDENCE = {name: i for i, name in enumerate(OUTCOMES)}
_ICONS = {
    "passed": "✅ passed",
    "failed": "❌ failed",
    "error": "💥 error",
    "xpassed": "❗ xpassed (strict)",
    "xfailed": "⚠️ xfailed",
    "skipped": "⏭️ skipped",
}


@dataclass(slots=True)
class ItemResult:
    """One collected test item of a rule (a rule may be parametrized into several)."""

    nodeid: str
    outcome: Outcome = "passed"
    reason: str | None = None
    duration: float = 0.0


@dataclass(slots=True)
class RuleResult:
    """A rule's metadata and the results of its items."""

    id: str
    level: str
    title: str
    hint: str
    requires: list[str]
    probes: list[str]
    area_title: str | None = None
    items: list[ItemResult] = field(default_factory=list)
    not_declared: bool = False
    """Skipped because the rule needs a capability the driver does not declare (it does not apply)."""

    @property
    def area(self) -> str:
        """The id's prefix (``DLV`` for ``DLV-004``)."""
        return self.id.split("-", 1)[0]

    @property
    def outcome(self) -> Outcome:
        """The worst outcome among the items (error > failed > xpassed > xfailed > passed > skipped)."""
        return min((item.outcome for item in self.items), key=_PRECEDENCE.__getitem__, default="skipped")

    @property
    def reason(self) -> str | None:
        """The reason or message of the first item whose outcome is the rule's."""
        outcome = self.outcome
        return next((item.reason for item in self.items if item.outcome == outcome), None)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "id": self.id,
            "level": self.level,
            "title": self.title,
            "hint": self.hint,
            "requires": list(self.requires),
            "probes": list(self.probes),
            "area": self.area,
            "area_title": self.area_title,
            "outcome": self.outcome,
            "reason": self.reason,
            "not_declared": self.outcome == "skipped" and self.not_declared,
            "duration": round(sum(item.duration for item in self.items), 6),
            "items": [
                {"nodeid": i.nodeid, "outcome": i.outcome, "reason": i.reason, "duration": round(i.duration, 6)}
                for i in self.items
            ],
        }


def _props(report: Any) -> dict[str, str]:
    """The ``nestq_*`` user properties of a report (tuples in-process, lists after xdist serialisation)."""
    found: dict[str, str] = {}
    for pair in getattr(report, "user_properties", ()) or ():
        if len(pair) == 2 and isinstance(pair[0], str) and pair[0].startswith(PROPERTY_PREFIX):
            found[pair[0][len(PROPERTY_PREFIX) :]] = str(pair[1])
    return found


def _split(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]


def _crash_message(report: Any) -> str:
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) if crash is not None else None
    if not text:
        text = str(longrepr) if longrepr is not None else ""
    text = redact_text(text.strip())
    return text if len(text) <= 2000 else text[:1980] + " ... (truncated)"


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr or "")
    return redact_text(reason.removeprefix("Skipped: ").strip())


class Collector:
    """Collects the outcome of every rule item from pytest's test reports (setup, call and teardown phases)."""

    def __init__(self) -> None:
        self._rules: dict[str, RuleResult] = {}
        self._items: dict[str, ItemResult] = {}
        self.area_titles: dict[str, str] = {}
        """Area prefix -> name, filled by the plugin from the suite modules' docstrings when it can see them."""

    def add(self, report: Any) -> None:
        """Record one ``TestReport``; reports of items that are not rules are ignored."""
        props = _props(report)
        rule_id = props.get("rule")
        if not rule_id:
            return
        rule = self._rules.get(rule_id)
        if rule is None:
            rule = RuleResult(
                id=rule_id,
                level=props.get("level", "MUST"),
                title=props.get("title", ""),
                hint=props.get("hint", ""),
                requires=_split(props.get("requires")),
                probes=_split(props.get("probes")),
            )
            self._rules[rule_id] = rule
        if props.get("skip") == "not-declared":
            rule.not_declared = True
        item = self._items.get(report.nodeid)
        if item is None:
            item = ItemResult(report.nodeid)
            self._items[report.nodeid] = item
            rule.items.append(item)
        item.duration += float(getattr(report, "duration", 0.0) or 0.0)
        if report.skipped and _skip_reason(report).startswith(NOT_APPLICABLE):
            rule.not_declared = True  # the rule found nothing of the driver's to check (no secret setting, say)
        when = report.when
        wasxfail = getattr(report, "wasxfail", None)
        if when == "setup":
            if report.failed:
                item.outcome, item.reason = "error", _crash_message(report)
            elif report.skipped:
                if wasxfail is not None:
                    item.outcome, item.reason = "xfailed", str(wasxfail)
                else:
                    item.outcome, item.reason = "skipped", _skip_reason(report)
        elif when == "call":
            if report.passed:
                item.outcome, item.reason = "passed", None
            elif report.failed:
                if getattr(report, "nestq_xpassed", False) or str(report.longrepr).startswith("[XPASS(strict)]"):
                    item.outcome, item.reason = "xpassed", _crash_message(report)
                else:
                    item.outcome, item.reason = "failed", _crash_message(report)
            elif wasxfail is not None:
                item.outcome, item.reason = "xfailed", str(wasxfail)
            else:
                item.outcome, item.reason = "skipped", _skip_reason(report)
        elif when == "teardown" and report.failed and item.outcome in ("passed", "skipped", "xfailed"):
            item.outcome, item.reason = "error", "teardown: " + _crash_message(report)

    def results(self) -> list[RuleResult]:
        """The rules seen so far, sorted by id, with their area names filled in."""
        for rule in self._rules.values():
            if rule.area_title is None:
                rule.area_title = self.area_titles.get(rule.area)
        return [self._rules[key] for key in sorted(self._rules)]


def totals(rules: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Outcome counts over report rules (plain dicts), plus ``rules``, ``not_declared`` and ``applicable``.

    ``not_declared`` counts rules skipped because they need a capability the driver does not declare;
    ``applicable`` is ``rules - not_declared``.
    """
    counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
    n = 0
    not_declared = 0
    for rule in rules:
        counts[rule["outcome"]] += 1
        n += 1
        not_declared += bool(rule.get("not_declared"))
    return {**counts, "rules": n, "not_declared": not_declared, "applicable": n - not_declared}


def smoke_notice(rules: Sequence[Mapping[str, Any]], describe: str | None = None) -> str | None:
    """The "everything failed" notice: every rule that ran failed or errored (and enough ran), else ``None``.

    Rules skipped or expected to fail are left out; what remains must be at least :data:`SMOKE_MIN_RULES` rules.
    """
    ran = [r for r in rules if r["outcome"] in ("passed", "failed", "error", "xpassed")]
    if len(ran) < SMOKE_MIN_RULES or any(r["outcome"] not in ("failed", "error") for r in ran):
        return None
    where = f" (the harness says: {describe})" if describe else ""
    return (
        f"every rule that ran failed ({len(ran)} of {len(ran)}): the environment is probably broken, not the driver. "
        f"Is the storage server running and reachable{where}? Fix the environment, read the first failure, "
        "then run again."
    )


def build_report(
    results: Sequence[RuleResult],
    *,
    driver: Mapping[str, str],
    manifest: Mapping[str, object],
    expected_failures: Mapping[str, str],
    kit_version: str,
    suite_version: str,
    suite_hash: str,
    suite_path: str,
    timeout_scale: float,
    duration: float,
    exit_status: int,
    timestamp: datetime | None = None,
    complete: bool = True,
    left_out: Sequence[str] = (),
    custom_suite: str | None = None,
    environment_error: str | None = None,
) -> dict[str, Any]:
    """The JSON report as plain data (see ``report.schema.json``).

    ``complete`` is false when any rule of the installed suite was left out (``left_out`` says what and why) or
    the suite is not the shipped one (``custom_suite`` names its path; ``suite_version`` is then ``"custom"``).
    ``environment_error`` is the preflight's message when the run stopped before any rule.
    """
    rules = [r.as_dict() for r in results]
    by_level = {level: totals(r for r in rules if r["level"] == level) for level in LEVELS}
    complete = complete and custom_suite is None and environment_error is None
    return {
        "format": "nestq-report",
        "format_version": 1,
        "driver": dict(driver),
        "manifest": dict(manifest),
        "expected_failures": dict(expected_failures),
        "kit_version": kit_version,
        "suite_version": "custom" if custom_suite is not None else suite_version,
        "suite_hash": suite_hash,
        "suite_path": suite_path,
        "timeout_scale": timeout_scale,
        "timestamp": (timestamp or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration": round(duration, 3),
        "exit_status": int(exit_status),
        "ok": environment_error is None and not any(r["outcome"] in BROKEN for r in rules),
        "complete": complete,
        "left_out": list(left_out),
        "custom_suite": custom_suite,
        "environment_error": environment_error,
        "totals": totals(rules),
        "by_level": by_level,
        "notice": smoke_notice(rules, driver.get("description")),
        "rules": rules,
    }


def load_schema() -> dict[str, Any]:
    """The JSON Schema the JSON report follows."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _applicable(counts: Mapping[str, int]) -> int:
    """Rules that ran (everything but skips), for the per-level summary."""
    return counts["rules"] - counts["skipped"]


def _unchecked(counts: Mapping[str, int]) -> int:
    """Rules that apply to the declared capabilities but were skipped (a probe the harness lacks, say)."""
    return counts["skipped"] - counts["not_declared"]


def badge(report: Mapping[str, Any]) -> dict[str, Any]:
    """A shields.io endpoint badge: ``<MUST passed>/<MUST that apply> MUST``, coloured by the worst outcome.

    "Apply" means every MUST rule whose capabilities the driver declares, so a rule skipped for a missing probe
    counts against it. Green only for a complete run of the shipped suite with nothing failing, unchecked or
    expected to fail; a partial run is blue ("partial"), a custom suite grey, a broken environment red.
    """
    must = report["by_level"]["MUST"]
    every = report["totals"]
    label = f"nestq {report['driver'].get('name', '')}".strip()
    if report.get("environment_error"):
        return {"schemaVersion": 1, "label": label, "message": "environment error", "color": "red"}
    if _applicable(every) == 0:
        return {"schemaVersion": 1, "label": label, "message": "no rules ran", "color": "lightgrey"}
    message = f"{must['passed']}/{must['applicable']} MUST"
    broken_must = must["failed"] + must["error"] + must["xpassed"]
    broken = every["failed"] + every["error"] + every["xpassed"]
    if broken_must:
        color = "red"
    elif broken:
        color = "orange"
        message += f", {broken} other failing"
    elif every["xfailed"] or _unchecked(every):
        color = "yellow"
        if every["xfailed"]:
            message += f", {every['xfailed']} known failing"
        if _unchecked(every):
            message += f", {_unchecked(every)} unchecked"
    else:
        color = "brightgreen"
        message += " ok"
    if report.get("custom_suite"):
        return {"schemaVersion": 1, "label": label, "message": f"custom suite: {message}", "color": "lightgrey"}
    if not report.get("complete", True):
        return {
            "schemaVersion": 1,
            "label": label,
            "message": f"partial: {message}",
            "color": "red" if broken_must else "blue",
        }
    return {"schemaVersion": 1, "label": label, "message": message, "color": color}


def _cell(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _level_summary(report: Mapping[str, Any]) -> str:
    parts = []
    for level in LEVELS:
        counts = report["by_level"][level]
        if counts["applicable"]:
            parts.append(f"{counts['passed']}/{counts['applicable']} {level}")
    every = report["totals"]
    if every["not_declared"]:
        parts.append(f"{every['not_declared']} not declared")
    if _unchecked(every):
        parts.append(f"{_unchecked(every)} unchecked (a probe missing)")
    if every["xfailed"]:
        parts.append(f"{every['xfailed']} expected failure{'s' if every['xfailed'] != 1 else ''}")
    return ", ".join(parts) or "no rules"


def _verdict(report: Mapping[str, Any]) -> str:
    if report.get("environment_error"):
        return "ENVIRONMENT ERROR"
    verdict = "NO RULES RAN" if _applicable(report["totals"]) == 0 else "PASS" if report["ok"] else "FAIL"
    if not report.get("complete", True):
        left = "; ".join(report.get("left_out") or ()) or "not every rule ran"
        return f"PARTIAL ({verdict}; left out: {left})"
    return verdict


def _suite_line(report: Mapping[str, Any]) -> str:
    if report.get("custom_suite"):
        return f"custom suite at {report['custom_suite']} (not the shipped suite)"
    return f"suite {report['suite_version']}"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown report card: header, manifest, totals per level, then the rules grouped by area."""
    driver = report["driver"]
    lines = [
        f"# nestq conformance report card: `{driver.get('name', '?')}`",
        "",
        "| | |",
        "|---|---|",
        f"| Result | **{_verdict(report)}**: {_cell(_level_summary(report))} |",
        f"| Driver | `{_cell(driver.get('spec', ''))}` from {_cell(_SOURCES.get(driver.get('source', ''), ''))}: "
        f"{_cell(driver.get('origin', ''))} |",
        f"| Harness | {_cell(driver.get('description', ''))} |",
        f"| Kit | nestq {report['kit_version']}, {_cell(_suite_line(report))} (`{report['suite_hash'][:19]}`) |",
        f"| Run | {report['timestamp']}, {report['duration']:.1f} s, timeout scale {report['timeout_scale']:g} |",
        "",
    ]
    if report.get("environment_error"):
        lines += [f"> **Environment error:** {_cell(report['environment_error'])}", ""]
    if report.get("notice"):
        lines += [f"> **Notice:** {report['notice']}", ""]
    lines += ["## Capability manifest", "", "| capability | declared |", "|---|---|"]
    lines += [f"| {_cell(name)} | `{_cell(json.dumps(value))}` |" for name, value in report["manifest"].items()]
    if report["expected_failures"]:
        lines += ["", "Expected failures declared by the driver:", ""]
        lines += [f"- **{_cell(k)}**: {_cell(v)}" for k, v in sorted(report["expected_failures"].items())]
    lines += [
        "",
        "## Totals",
        "",
        "| level | rules | apply | passed | failed | error | xpassed | expected failure | skipped: not declared "
        "| unchecked (probe missing) |",
        "|---" * 10 + "|",
    ]
    for level, counts in [*((lvl, report["by_level"][lvl]) for lvl in LEVELS), ("all", report["totals"])]:
        cells = [counts["rules"], counts["applicable"], counts["passed"], counts["failed"], counts["error"],
                 counts["xpassed"], counts["xfailed"], counts["not_declared"], _unchecked(counts)]
        lines.append(f"| {level} | " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "## Rules"]
    areas: dict[str, list[Mapping[str, Any]]] = {}
    for rule in report["rules"]:
        areas.setdefault(rule["area"], []).append(rule)
    for area, rules in sorted(areas.items()):
        title = next((r["area_title"] for r in rules if r.get("area_title")), None)
        lines += ["", f"### {area}" + (f": {_cell(title)}" if title else ""), ""]
        lines += ["| rule | level | outcome | what it checks | note |", "|---|---|---|---|---|"]
        ordered = sorted(rules, key=lambda r: (LEVELS.index(r["level"]) if r["level"] in LEVELS else 9, r["id"]))
        for rule in ordered:
            note = (rule.get("reason") or "").strip().split("\n", 1)[0]
            if rule["outcome"] in ("failed", "error") and rule.get("hint"):
                note = f"{note} (if this fails, check: {rule['hint']})" if note else f"check: {rule['hint']}"
            lines.append(
                f"| {rule['id']} | {rule['level']} | {_ICONS.get(rule['outcome'], rule['outcome'])} | "
                f"{_cell(rule['title'])} | {_cell(note)[:600]} |"
            )
    lines += ["", f"Suite hash `{report['suite_hash']}`, kit nestq {report['kit_version']}.", ""]
    return "\n".join(lines)


def render_table(report: Mapping[str, Any], width: int | None = None) -> str:
    """The report card as a plain-text table for the terminal: rule, level, outcome, title; totals; the notice."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    driver = report["driver"]
    lines = [
        f"nestq check: driver {driver.get('name', '?')} ({driver.get('origin', '')})",
        f"  harness: {driver.get('description', '')}",
        f"  kit nestq {report['kit_version']}, {_suite_line(report)} ({report['suite_hash'][:19]}), "
        f"timeout scale {report['timeout_scale']:g}",
        "",
    ]
    head = f"{'RULE':<8}  {'LEVEL':<6}  {'OUTCOME':<8}  TITLE"
    lines += [head, "-" * min(width, 100)]
    title_width = max(20, width - 30)
    for rule in report["rules"]:
        title = rule["title"] if len(rule["title"]) <= title_width else rule["title"][: title_width - 3] + "..."
        lines.append(f"{rule['id']:<8}  {rule['level']:<6}  {rule['outcome']:<8}  {title}")
        if rule["outcome"] != "passed" and rule.get("reason"):
            reason = " ".join(str(rule["reason"]).split())
            wrapped = textwrap.wrap(reason, max(20, width - 12), max_lines=3, placeholder=" ...")
            lines += [f"{'':<10}{'-> ' if i == 0 else '   '}{part}" for i, part in enumerate(wrapped)]
    lines += ["-" * min(width, 100)]
    counts = report["totals"]
    spelled = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o]) or "nothing selected"
    lines.append(f"{_verdict(report)}: {_level_summary(report)}  ({spelled}; {report['duration']:.1f} s)")
    if report.get("notice"):
        lines += ["", "NOTICE: " + report["notice"]]
    if report.get("environment_error"):
        lines += ["", "ENVIRONMENT ERROR: " + report["environment_error"]]
    return "\n".join(lines)


def write_reports(directory: Path, report: Mapping[str, Any]) -> dict[str, Path]:
    """Write the JSON report, the Markdown card and the badge into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / name for kind, name in REPORT_FILES.items()}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(report), encoding="utf-8")
    paths["badge"].write_text(json.dumps(badge(report), indent=2) + "\n", encoding="utf-8")
    return paths
