"""The conformance matrix: every driver's complete run side by side (rules as rows, drivers as columns).

:func:`run_matrix` runs ``nestq check DRIVER --report DIR/DRIVER`` for each driver, one after the other, each in a
subprocess of its own (a driver that hangs, crashes or cannot be imported cannot take the others down, and each
run is a complete run of the installed suite with its own report), then optionally ``nestq bench`` with a small N.
:func:`build_matrix` reads the reports back and makes the matrix data (validated by ``matrix.schema.json``,
shipped beside this module); every view (:func:`render_markdown`, :func:`render_html`, :func:`render_summary`) is
rendered from that data alone, so a cell can only say what the driver's own report says.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from nestq_conformance.report import LEVELS, REPORT_FILES

__all__ = [
    "CELL_STATUSES",
    "DEFAULT_BENCH_LATENCY_SAMPLES",
    "DEFAULT_BENCH_N",
    "DEFAULT_DEADLINE",
    "MARKDOWN_BEGIN",
    "MARKDOWN_END",
    "MATRIX_FILES",
    "MATRIX_SCHEMA_PATH",
    "BenchPlan",
    "CellStatus",
    "DriverRun",
    "MatrixProgress",
    "build_matrix",
    "cell_of",
    "host_info",
    "load_matrix_schema",
    "markdown_into",
    "render_html",
    "render_markdown",
    "render_summary",
    "run_driver",
    "run_matrix",
    "write_matrix",
]

MATRIX_FILES = {"markdown": "nestq-matrix.md", "json": "nestq-matrix.json", "html": "nestq-matrix.html"}
"""What ``nestq matrix --report DIR`` writes into DIR (each driver's own report goes into ``DIR/<driver>/``)."""
MATRIX_SCHEMA_PATH = Path(__file__).with_name("matrix.schema.json")
"""The JSON Schema of :func:`build_matrix`'s output."""
DEFAULT_DEADLINE = 1800.0
"""Seconds one driver's suite run (and, separately, its bench run) may take before it is killed."""
DEFAULT_BENCH_N = 500
"""Jobs per throughput phase of ``--bench``: small, since the matrix is about the rules and runs every driver."""
DEFAULT_BENCH_LATENCY_SAMPLES = 50
"""Latency samples of ``--bench``."""
MARKDOWN_BEGIN = "<!-- nestq-matrix begin -->"
MARKDOWN_END = "<!-- nestq-matrix end -->"
"""``--markdown-into FILE`` replaces what lies between these markers when FILE has them, else writes FILE whole."""
BENCH_LOG = "nestq-bench.log"
CHECK_LOG = "nestq-check.log"

CellStatus = Literal[
    "passed", "failed", "expected-failure", "not-declared", "unchecked", "not-run", "environment-error"
]
CELL_STATUSES: tuple[CellStatus, ...] = (
    "passed", "failed", "expected-failure", "not-declared", "unchecked", "not-run", "environment-error"
)
"""What a cell can say. ``failed`` covers the report's failed, error and xpassed (an expected failure that passed);
``unchecked`` is a skip that is not for an undeclared capability (a probe the harness lacks); ``not-run`` is a
rule the driver's report does not have (a partial run); ``environment-error`` is every cell of a driver whose run
did not start."""

_LABELS: dict[str, str] = {
    "passed": "passed",
    "failed": "FAILED",
    "expected-failure": "expected failure",
    "not-declared": "not declared",
    "unchecked": "unchecked",
    "not-run": "not run",
    "environment-error": "env error",
}
_ICONS: dict[str, str] = {
    "passed": "✅",
    "failed": "❌",
    "expected-failure": "⚠️",
    "not-declared": "\N{HEAVY MINUS SIGN}",
    "unchecked": "❔",
    "not-run": "·",
    "environment-error": "💥",
}
_GLYPHS: dict[str, str] = {
    "passed": "✓",
    "failed": "✗",
    "expected-failure": "!",
    "not-declared": "\N{EN DASH}",
    "unchecked": "?",
    "not-run": "·",
    "environment-error": "✗",
}
"""The HTML page's marks: plain glyphs every system font has (a headless browser may have no emoji font)."""
_TAIL_LINES = 15


# ---------------------------------------------------------------------------------------------------------------
# Running the drivers


@dataclass(frozen=True, slots=True)
class BenchPlan:
    """What ``--bench`` runs for each driver: ``nestq bench`` with these options."""

    n: int = DEFAULT_BENCH_N
    latency_samples: int = DEFAULT_BENCH_LATENCY_SAMPLES

    def args(self) -> list[str]:
        """The ``nestq bench`` options."""
        return ["--n", str(self.n), "--latency-samples", str(self.latency_samples)]


@dataclass(slots=True)
class DriverRun:
    """One driver's run: where its report went, how the subprocess ended, and the bench's outcome."""

    spec: str
    directory: Path
    exit_code: int | None = None
    wall_seconds: float = 0.0
    timed_out: bool = False
    start_error: str | None = None
    """Why the subprocess could not be started at all (no such interpreter, say)."""
    bench_exit_code: int | None = None
    bench_timed_out: bool = False
    bench_seconds: float = 0.0
    host: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    """When the run started (UTC), for a driver whose report does not say."""

    @property
    def report_path(self) -> Path:
        """The driver's own JSON report."""
        return self.directory / REPORT_FILES["json"]

    @property
    def log_path(self) -> Path:
        """What the ``nestq check`` subprocess printed."""
        return self.directory / CHECK_LOG

    @property
    def bench_path(self) -> Path:
        """The driver's bench JSON (written by ``nestq bench --report``)."""
        return self.directory / "nestq-bench.json"


class MatrixProgress:
    """One line per driver on ``stream``, rewritten in place while the driver runs on a terminal.

    Elsewhere the line is printed once, when the driver's run ends (a CI log gets no carriage-return noise).
    """

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool = True, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty()) if tty is None else tty
        self._live = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def update(self, text: str) -> None:
        """Show ``text`` as the current driver's line (in place on a terminal, nothing elsewhere)."""
        if self.enabled and self.tty:
            # A line longer than the terminal wraps, and a carriage return no longer takes the cursor to its start.
            width = shutil.get_terminal_size((120, 24)).columns
            self._write("\r\x1b[K" + text[: max(20, width - 1)])
            self._live = True

    def finish(self, text: str) -> None:
        """Replace the current line with its final ``text`` and end it."""
        if not self.enabled:
            return
        self._write(("\r\x1b[K" if self._live else "") + text + "\n")
        self._live = False

    def note(self, text: str) -> None:
        """A line of its own."""
        if self.enabled:
            self.finish(text)


_PROGRESS_LINE = re.compile(r"^([.sFExX]+)\s*(\[\s*(\d+)%\])?\s*$")


def _suite_progress(log: Path) -> str:
    """How far pytest is, counted from the one-letter outcomes of its quiet progress lines in the log."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "starting"
    done = 0
    percent = None
    for line in text.splitlines():
        found = _PROGRESS_LINE.match(line.strip())
        if found:
            done += len(found.group(1))
            percent = found.group(3) or percent
    if not done:
        return "starting"
    return f"{done} tests done" + (f" ({percent}%)" if percent else "")


def _run_child(
    argv: Sequence[str],
    log: Path,
    deadline: float,
    tick: Callable[[float], None],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int | None, bool, float]:
    """Run ``argv`` with its output in ``log``; return (exit code, timed out, seconds).

    At the deadline the whole process group is killed (the suite's worker subprocesses included).
    """
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            while True:
                elapsed = time.monotonic() - started
                remaining = deadline - elapsed
                if remaining <= 0:
                    _kill_group(proc)
                    return None, True, time.monotonic() - started
                try:
                    # The wait is the event; its one-second cap only paces the progress line.
                    code = proc.wait(timeout=min(1.0, remaining))
                    return code, False, time.monotonic() - started
                except subprocess.TimeoutExpired:
                    tick(time.monotonic() - started)
        except BaseException:
            _kill_group(proc)
            raise


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Each run names its driver on the command line; an inherited NESTQ_DRIVER must not override nothing or confuse
    # the report's "where the driver came from".
    env.pop("NESTQ_DRIVER", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("COLUMNS", "160")
    return env


def host_info() -> dict[str, Any]:
    """Where the runs happen: host name, platform, Python, cores and the load average now."""
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "load_average": load,
    }


def run_driver(
    spec: str,
    directory: Path,
    *,
    deadline: float = DEFAULT_DEADLINE,
    timeout_scale: float | None = None,
    bench: BenchPlan | None = None,
    progress: MatrixProgress | None = None,
    label: str = "",
    python: str | None = None,
) -> DriverRun:
    """Run the suite (and the bench, when asked) against ``spec`` in subprocesses, reports into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (REPORT_FILES["json"], "nestq-bench.json"):
        (directory / stale).unlink(missing_ok=True)  # a cell must come from this run, never an earlier one
    run = DriverRun(spec, directory, host=host_info(), started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    exe = python or sys.executable
    show = progress or MatrixProgress(enabled=False)
    argv = [exe, "-m", "nestq_spec.cli", "check", spec, "--report", str(directory)]
    if timeout_scale is not None:
        argv += ["--timeout-scale", str(timeout_scale)]

    def tick(elapsed: float) -> None:
        show.update(f"{label}{spec}: suite running, {_suite_progress(run.log_path)}, {elapsed:.0f} s")

    try:
        run.exit_code, run.timed_out, run.wall_seconds = _run_child(argv, run.log_path, deadline, tick, _child_env())
    except OSError as exc:
        run.start_error = f"could not start `{shlex.join(argv)}`: {exc}"
        return run
    if bench is not None and run.report_path.is_file() and run.exit_code in (0, 1):
        bargv = [exe, "-m", "nestq_spec.cli", "bench", spec, *bench.args(), "--report", str(directory), "-q"]

        def btick(elapsed: float) -> None:
            show.update(f"{label}{spec}: bench running (N={bench.n}), {elapsed:.0f} s")

        try:
            run.bench_exit_code, run.bench_timed_out, run.bench_seconds = _run_child(
                bargv, directory / BENCH_LOG, deadline, btick, _child_env()
            )
        except OSError as exc:
            (directory / BENCH_LOG).write_text(f"could not start the bench: {exc}\n", encoding="utf-8")
            run.bench_exit_code = None
    return run


def run_matrix(
    specs: Sequence[str],
    report_dir: Path,
    *,
    deadline: float = DEFAULT_DEADLINE,
    timeout_scale: float | None = None,
    bench: BenchPlan | None = None,
    progress: MatrixProgress | None = None,
    command: str = "nestq matrix",
) -> dict[str, Any]:
    """Run every driver in turn (reports in ``report_dir/<driver>/``) and return the matrix data."""
    show = progress or MatrixProgress(enabled=False)
    runs: list[DriverRun] = []
    for i, spec in enumerate(specs, 1):
        label = f"[{i}/{len(specs)}] "
        show.update(f"{label}{spec}: starting")
        run = run_driver(
            spec,
            report_dir / _folder_name(spec),
            deadline=deadline,
            timeout_scale=timeout_scale,
            bench=bench,
            progress=show,
            label=label,
        )
        runs.append(run)
        column = _driver_column(run, report_dir)
        show.finish(f"{label}{spec}: {_one_line(column)}")
    return build_matrix(runs, report_dir, command=command, bench=bench)


def _folder_name(spec: str) -> str:
    """A driver's report folder: its name, made safe for a path (``pkg.mod:attr`` -> ``pkg.mod-attr``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", spec).strip("-.") or "driver"


# ---------------------------------------------------------------------------------------------------------------
# Building the matrix from the reports


def load_matrix_schema() -> dict[str, Any]:
    """The JSON Schema the matrix JSON follows."""
    loaded: dict[str, Any] = json.loads(MATRIX_SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def cell_of(rule: Mapping[str, Any] | None) -> CellStatus:
    """What a cell says for one rule of a driver's report (``None``: the report does not have the rule)."""
    if rule is None:
        return "not-run"
    outcome = rule["outcome"]
    if outcome == "passed":
        return "passed"
    if outcome in ("failed", "error", "xpassed"):
        return "failed"
    if outcome == "xfailed":
        return "expected-failure"
    return "not-declared" if rule.get("not_declared") else "unchecked"


def _tail(path: Path, lines: int = _TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _first_error(path: Path) -> str:
    """The line of a run's output that says what went wrong (the first naming an error, else the last)."""
    lines = [line.strip() for line in _tail(path, 200).splitlines() if line.strip()]
    found = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
    return found.removeprefix("ERROR: ")[:500]


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"{path.name} could not be read: {exc}"
    if not isinstance(data, dict):
        return None, f"{path.name} is not a JSON object"
    return data, None


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _verdict(report: Mapping[str, Any]) -> str:
    if report.get("environment_error"):
        return "ENVIRONMENT ERROR"
    totals = report["totals"]
    verdict = "NO RULES RAN" if totals["rules"] - totals["skipped"] == 0 else "PASS" if report["ok"] else "FAIL"
    return verdict if report.get("complete", True) else f"PARTIAL ({verdict})"


def _bench_figures(data: Mapping[str, Any]) -> dict[str, float | None]:
    res = data.get("results") or {}

    def pick(section: str, key: str) -> float | None:
        value = (res.get(section) or {}).get(key)
        return float(value) if isinstance(value, int | float) else None

    return {
        "enqueue_jobs_per_s": pick("enqueue_single", "jobs_per_s"),
        "batch_jobs_per_s": pick("enqueue_batch", "jobs_per_s"),
        "e2e_jobs_per_s": pick("end_to_end", "jobs_per_s"),
        "latency_p50_ms": pick("latency", "p50_ms"),
        "latency_p99_ms": pick("latency", "p99_ms"),
    }


def _driver_column(run: DriverRun, base: Path) -> dict[str, Any]:
    """One driver's header, from its report when it wrote one, else from how its run ended."""
    report, unreadable = _read_json(run.report_path)
    column: dict[str, Any] = {
        "key": run.spec,
        "name": run.spec,
        "spec": run.spec,
        "folder": _rel(run.directory, base),
        "report": None,
        "log": _rel(run.log_path, base),
        "exit_code": run.exit_code,
        "wall_seconds": round(run.wall_seconds, 3),
        "host": run.host,
        "verdict": "ENVIRONMENT ERROR",
        "environment_error": None,
        "complete": False,
        "left_out": [],
        "description": "",
        "origin": "",
        "kit_version": None,
        "suite_version": None,
        "suite_hash": None,
        "timestamp": run.started or None,
        "duration": None,
        "manifest": {},
        "expected_failures": {},
        "totals": None,
        "by_level": None,
        "badge": None,
        "bench": None,
        "bench_error": None,
    }
    problem: str | None = None
    if run.start_error:
        problem = run.start_error
    elif run.timed_out:
        problem = f"the suite run did not finish within its deadline of {run.wall_seconds:.0f} s and was killed"
    elif report is None:
        why = unreadable or f"`nestq check` exited with {run.exit_code} and wrote no report"
        said = _first_error(run.log_path)
        problem = f"the suite run did not start ({why})" + (f": {said}" if said else "")
    if report is not None:
        from nestq_conformance.report import badge

        driver = report.get("driver") or {}
        column.update(
            name=driver.get("name") or run.spec,
            report=_rel(run.report_path, base),
            description=driver.get("description", ""),
            origin=driver.get("origin", ""),
            kit_version=report.get("kit_version"),
            suite_version=report.get("suite_version"),
            suite_hash=report.get("suite_hash"),
            timestamp=report.get("timestamp"),
            duration=report.get("duration"),
            manifest=dict(report.get("manifest") or {}),
            expected_failures=dict(report.get("expected_failures") or {}),
            totals=report.get("totals"),
            by_level=report.get("by_level"),
            complete=bool(report.get("complete")),
            left_out=list(report.get("left_out") or []),
            verdict=_verdict(report),
            badge=badge(report),
        )
        if report.get("environment_error"):
            problem = str(report["environment_error"])
        elif problem is not None:
            column["verdict"] = "ENVIRONMENT ERROR"
    if problem is not None:
        tail = _tail(run.log_path)
        column["environment_error"] = problem + (f"\n\nlast lines of its output:\n{tail}" if tail else "")
        column["verdict"] = "ENVIRONMENT ERROR"
    if run.bench_exit_code is not None or run.bench_timed_out:
        bench, bench_unreadable = _read_json(run.bench_path)
        if run.bench_timed_out:
            column["bench_error"] = f"the bench did not finish within its deadline ({run.bench_seconds:.0f} s)"
        elif bench is None or run.bench_exit_code != 0:
            why = bench_unreadable or f"nestq bench exited with {run.bench_exit_code}"
            tail = _tail(run.directory / BENCH_LOG, 5)
            column["bench_error"] = why + (f": {tail}" if tail else "")
        if bench is not None and run.bench_exit_code == 0:
            column["bench"] = {
                "report": _rel(run.bench_path, base),
                "date": bench.get("date"),
                "options": bench.get("options"),
                "load_average_at_start": (bench.get("machine") or {}).get("load_average_at_start"),
                "figures": _bench_figures(bench),
            }
    return column


def _one_line(column: Mapping[str, Any]) -> str:
    if column["verdict"] == "ENVIRONMENT ERROR":
        first = str(column["environment_error"] or "").split("\n", 1)[0]
        return f"ENVIRONMENT ERROR: {first[:200]}"
    parts: list[str] = [str(column["verdict"])]
    by_level = column.get("by_level") or {}
    for level in LEVELS:
        counts = by_level.get(level)
        if counts and counts["applicable"]:
            parts.append(f"{counts['passed']}/{counts['applicable']} {level}")
    totals = column.get("totals") or {}
    for key, word in (("failed", "failed"), ("error", "errors"), ("xpassed", "xpassed"), ("xfailed", "xfailed")):
        if totals.get(key):
            parts.append(f"{totals[key]} {word}")
    text = parts[0] + ": " + ", ".join(parts[1:]) if len(parts) > 1 else parts[0]
    text += f" ({column['wall_seconds']:.1f} s)"
    if column.get("bench"):
        e2e = column["bench"]["figures"].get("e2e_jobs_per_s")
        text += f"; bench e2e {e2e:,.0f} jobs/s" if e2e is not None else "; bench done"
    elif column.get("bench_error"):
        text += "; bench failed"
    return text


def build_matrix(
    runs: Sequence[DriverRun],
    report_dir: Path,
    *,
    command: str = "nestq matrix",
    bench: BenchPlan | None = None,
    generated: datetime | None = None,
) -> dict[str, Any]:
    """The matrix data (see ``matrix.schema.json``), read from each run's own report.

    The rows are the installed suite's rules (``load_catalogue``), plus any rule a report has that the catalogue
    lacks; the cells come from the reports only.
    """
    import nestq_spec
    from nestq_conformance.catalogue import SUITE_VERSION, load_catalogue, suite_dir, suite_hash
    from nestq_conformance.rulesdoc import AREA_ORDER

    columns = [_driver_column(run, report_dir) for run in runs]
    reports: dict[str, dict[str, Mapping[str, Any]]] = {}
    for run, column in zip(runs, columns, strict=True):
        data, _ = _read_json(run.report_path) if column["report"] else (None, None)
        reports[column["key"]] = {r["id"]: r for r in (data or {}).get("rules", [])}
    rows: dict[str, dict[str, Any]] = {}
    for entry in load_catalogue():
        r = entry.rule
        rows[r.id] = {
            "id": r.id,
            "level": r.level,
            "title": r.title,
            "hint": r.hint,
            "requires": list(r.requires),
            "area": entry.area,
            "area_title": entry.area_title,
        }
    for rules in reports.values():
        for rid, rule in rules.items():
            rows.setdefault(
                rid,
                {
                    "id": rid,
                    "level": rule["level"],
                    "title": rule["title"],
                    "hint": rule["hint"],
                    "requires": list(rule["requires"]),
                    "area": rule["area"],
                    "area_title": rule.get("area_title"),
                },
            )

    def order(row: Mapping[str, Any]) -> tuple[int, str]:
        area = row["area"]
        return (AREA_ORDER.index(area) if area in AREA_ORDER else len(AREA_ORDER), row["id"])

    ordered_rows = sorted(rows.values(), key=order)
    for row in ordered_rows:
        cells: dict[str, Any] = {}
        for column in columns:
            key = column["key"]
            if column["verdict"] == "ENVIRONMENT ERROR":
                cells[key] = {"status": "environment-error", "outcome": None, "reason": None}
                continue
            found = reports[key].get(row["id"])
            cells[key] = {
                "status": cell_of(found),
                "outcome": found["outcome"] if found else None,
                "reason": found.get("reason") if found else None,
            }
        row["cells"] = cells
    areas: list[dict[str, Any]] = []
    for row in ordered_rows:
        if not areas or areas[-1]["id"] != row["area"]:
            areas.append({"id": row["area"], "title": row["area_title"], "rules": []})
        areas[-1]["rules"].append(row["id"])
    try:
        the_suite = suite_dir()
        the_hash = suite_hash(the_suite)
    except RuntimeError:
        the_hash = ""
    return {
        "format": "nestq-matrix",
        "format_version": 1,
        "generated": (generated or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "kit_version": nestq_spec.__version__,
        "suite_version": SUITE_VERSION,
        "suite_hash": the_hash,
        "host": host_info(),
        "bench": None if bench is None else {"n": bench.n, "latency_samples": bench.latency_samples},
        "drivers": columns,
        "areas": areas,
        "rules": ordered_rows,
        "summary": _summary_counts(columns, ordered_rows),
    }


def _summary_counts(columns: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    per_driver: dict[str, dict[str, int]] = {}
    for column in columns:
        counts: dict[str, int] = dict.fromkeys(CELL_STATUSES, 0)
        for row in rows:
            counts[row["cells"][column["key"]]["status"]] += 1
        per_driver[column["key"]] = counts
    return {
        "drivers": len(columns),
        "rules": len(rows),
        "environment_errors": sum(1 for c in columns if c["verdict"] == "ENVIRONMENT ERROR"),
        # Passing as `nestq check` judges it (its exit code 0): a partial run that passes counts.
        "passing_drivers": sum(1 for c in columns if c["exit_code"] == 0 and c["verdict"] != "ENVIRONMENT ERROR"),
        "cells": per_driver,
    }


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def _md(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _heading_anchor(heading: str) -> str:
    """The anchor GitHub and MkDocs both give a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", heading.strip().lower()))


def _message_heading(driver: str, what: str) -> str:
    return f"{driver}: {what}"


def _anchor(driver: str, rule_id: str) -> str:
    return "msg-" + re.sub(r"[^a-z0-9]+", "-", f"{driver}-{rule_id}".lower()).strip("-")


def _caps_text(manifest: Mapping[str, Any]) -> str:
    shown = []
    for name, value in manifest.items():
        if value is False or value is None:
            continue
        shown.append(name if value is True else f"{name}={value}")
    return ", ".join(shown) or "(none)"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}/s"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


_BENCH_ROWS: tuple[tuple[str, str, Callable[[float | None], str]], ...] = (
    ("enqueue_jobs_per_s", "enqueue, one push per job", _rate),
    ("batch_jobs_per_s", "enqueue, batched", _rate),
    ("e2e_jobs_per_s", "end-to-end, one worker", _rate),
    ("latency_p50_ms", "latency push -> start, p50", _ms),
    ("latency_p99_ms", "latency push -> start, p99", _ms),
)


def _bench_cell(column: Mapping[str, Any], key: str, fmt: Callable[[float | None], str]) -> str:
    if column.get("bench"):
        return fmt(column["bench"]["figures"].get(key))
    if column.get("bench_error"):
        return "bench failed"
    return "not run"


def _load_text(column: Mapping[str, Any]) -> str:
    load = (column.get("bench") or {}).get("load_average_at_start")
    return " ".join(f"{x:.2f}" for x in load) if load else "-"


def _ran_text(column: Mapping[str, Any]) -> str:
    host = column.get("host") or {}
    when = column.get("timestamp") or "-"
    dur = f", {column['duration']:.0f} s" if isinstance(column.get("duration"), int | float) else ""
    verb = "finished" if column.get("duration") is not None else "started"
    return f"{verb} {when}{dur}, on {host.get('hostname', '?')} (Python {host.get('python', '?')})"


def render_markdown(data: Mapping[str, Any], *, link_reports: bool = True, embedded: bool = False) -> str:
    """The matrix as Markdown: a header table per driver, one table per area, the bench rows, the messages.

    ``link_reports`` links each driver to its own report (right for ``--report DIR``, where the reports sit beside
    the page; off for a page copied elsewhere, such as the docs site). ``embedded`` leaves out the page title and
    puts every heading one level down, for a block inside a page that has its own (``--markdown-into``).
    """
    text = _render_markdown(data, link_reports=link_reports)
    if not embedded:
        return text
    lines = text.split("\n")
    lines = lines[2:] if lines[0].startswith("# ") else lines
    fenced = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            lines[i] = "#" + line
    return "\n".join(lines)


def _render_markdown(data: Mapping[str, Any], *, link_reports: bool) -> str:
    drivers = data["drivers"]
    keys = [d["key"] for d in drivers]
    head = "| | " + " | ".join(f"**{_md(d['name'])}**" for d in drivers) + " |"
    sep = "|---" * (len(drivers) + 1) + "|"
    lines = [
        "# nestq conformance matrix",
        "",
        f"Generated {data['generated']} by `{_md(data['command'])}` with nestq {data['kit_version']}, "
        f"suite {data['suite_version']} (`{data['suite_hash'][:19]}`), on {data['host']['hostname']} "
        f"({data['host']['cores']} cores, {_md(data['host']['platform'])}).",
        "",
        "Cells: " + ", ".join(f"{_ICONS[s]} {_LABELS[s]}" for s in CELL_STATUSES) + ". A failed or "
        "expected-failure cell links to its message below.",
        "",
        "## Drivers",
        "",
        head,
        sep,
    ]
    verdicts = []
    for d in drivers:
        text = d["verdict"]
        if link_reports and d.get("report"):
            text = f"[{text}]({d['report'].removesuffix('.json')}.md)"
        elif d["verdict"] == "ENVIRONMENT ERROR":
            text = f"[{text}](#{_heading_anchor(_message_heading(d['key'], 'environment error'))})"
        verdicts.append(text)
    lines.append("| result | " + " | ".join(_md(v) if "](" not in v else v for v in verdicts) + " |")
    lines.append("| passed / applying | " + " | ".join(_level_text(d) for d in drivers) + " |")
    lines.append("| capabilities | " + " | ".join(_md(_caps_text(d["manifest"])) for d in drivers) + " |")
    lines.append("| kit, suite | " + " | ".join(_kit_text(d) for d in drivers) + " |")
    lines.append("| ran | " + " | ".join(_md(_ran_text(d)) for d in drivers) + " |")
    if data.get("bench") is not None:
        lines += ["", f"## Bench (`nestq bench`, N={data['bench']['n']}, "
                  f"{data['bench']['latency_samples']} latency samples)", "", head, sep]
        for key, label, fmt in _BENCH_ROWS:
            lines.append(f"| {label} | " + " | ".join(_bench_cell(d, key, fmt) for d in drivers) + " |")
        loads = [d["bench"]["load_average_at_start"] for d in drivers if d.get("bench")]
        if loads:
            lines += ["", "Load average at each bench's start: " + ", ".join(
                f"{d['name']} {' '.join(f'{x:.2f}' for x in d['bench']['load_average_at_start'] or [])}"
                for d in drivers if d.get("bench")) + "."]
    messages: list[tuple[str, str, str]] = []
    rules_by_id = {r["id"]: r for r in data["rules"]}
    for area in data["areas"]:
        title = (area.get("title") or "").strip()
        lines += ["", f"## {area['id']}" + (f": {_md(title[:1].upper() + title[1:])}" if title else ""), ""]
        lines.append("| rule | level | " + " | ".join(_md(d["name"]) for d in drivers) + " |")
        lines.append("|---" * (len(drivers) + 2) + "|")
        for rid in area["rules"]:
            row = rules_by_id[rid]
            cells = []
            for key in keys:
                cell = row["cells"][key]
                text = f"{_ICONS[cell['status']]} {_LABELS[cell['status']]}"
                if cell["status"] in ("failed", "expected-failure") and cell.get("reason"):
                    heading = _message_heading(key, rid)
                    anchor = _heading_anchor(heading)
                    messages.append((anchor, heading, str(cell["reason"])))
                    text = f"[{text}](#{anchor})"
                cells.append(text)
            hint = f"<br><small>if it fails, check: {_md(row['hint'])}</small>" if row.get("hint") else ""
            lines.append(f"| **{rid}** {_md(row['title'])}{hint} | {row['level']} | " + " | ".join(cells) + " |")
    errors = [d for d in drivers if d.get("environment_error")]
    bench_errors = [d for d in drivers if d.get("bench_error")]
    if messages or errors or bench_errors:
        lines += ["", "## Messages", ""]
        for d in errors:
            # Headings, not raw anchors: GitHub, MkDocs and the docs' own link check all know a heading's anchor.
            lines += [f"### {_md(_message_heading(d['key'], 'environment error'))}", "",
                      "```text", str(d["environment_error"]).replace("```", "'''"), "```", ""]
        for d in bench_errors:
            lines += [f"**{_md(d['key'])}: bench**: {_md(d['bench_error'])}", ""]
        for _anchor_id, what, reason in messages:
            lines += [f"### {_md(what)}", "", "```text", reason.replace("```", "'''"), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def _level_text(column: Mapping[str, Any]) -> str:
    by_level = column.get("by_level")
    if not by_level:
        return "-"
    return ", ".join(
        f"{by_level[lv]['passed']}/{by_level[lv]['applicable']} {lv}" for lv in LEVELS if by_level[lv]["applicable"]
    ) or "-"


def _kit_text(column: Mapping[str, Any]) -> str:
    if not column.get("kit_version"):
        return "-"
    return f"nestq {column['kit_version']}, suite {column['suite_version']} `{str(column['suite_hash'])[7:19]}`"


_CSS = """
:root { --ok: #d8f5d8; --bad: #ffd6d6; --xf: #fff1c2; --nd: #eeeeee; --un: #e6ecff; --env: #ffb3b3; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
.meta-line { color: #555; margin: .2em 0; }
code { font-size: .95em; }
.controls { margin: 1em 0; display: flex; gap: 1.5em; flex-wrap: wrap; }
table.matrix { border-collapse: collapse; }
table.matrix th, table.matrix td { border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; }
table.matrix thead th { background: #f5f5f5; position: sticky; top: 0; }
table.matrix thead tr.info th { text-align: left; }
table.matrix thead tr.info th, table.matrix thead tr.info td { position: static; font-weight: normal;
  font-size: .85em; background: #fafafa; max-width: 16em; }
th.driver { min-width: 8em; }
th.rule { text-align: left; font-weight: normal; min-width: 24em; max-width: 40em; }
th.rule .hint { color: #666; font-size: .82em; margin-top: .15em; }
th.rule .id { font-weight: bold; font-family: ui-monospace, monospace; margin-right: .4em; }
tr.area-head th { text-align: left; background: #e9eef5; font-size: 1.05em; }
td.cell { text-align: center; white-space: nowrap; }
td.passed { background: var(--ok); }
td.failed { background: var(--bad); font-weight: bold; }
td.expected-failure { background: var(--xf); }
td.not-declared { background: var(--nd); color: #666; }
td.unchecked { background: var(--un); }
td.not-run { color: #999; }
td.environment-error { background: var(--env); }
.verdict-PASS { color: #186a18; font-weight: bold; }
.verdict-FAIL, .verdict-ENV { color: #a40000; font-weight: bold; }
tbody.bench td { text-align: right; font-family: ui-monospace, monospace; }
tr.hidden { display: none; }
#messages dt { font-weight: bold; margin-top: 1em; }
#messages pre { white-space: pre-wrap; background: #f7f7f7; border: 1px solid #ddd; padding: .5em; margin: .3em 0; }
#messages dt:target { background: #fff1c2; }
.legend span { margin-right: .6em; padding: 1px 6px; white-space: nowrap; }
.legend .passed { background: var(--ok); } .legend .failed { background: var(--bad); }
.legend .expected-failure { background: var(--xf); } .legend .not-declared { background: var(--nd); }
.legend .unchecked { background: var(--un); } .legend .environment-error { background: var(--env); }
"""

_JS = """
(function () {
  "use strict";
  var table = document.getElementById("matrix");
  var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr.rule"));
  function differs(row) {
    var seen = {};
    Array.prototype.forEach.call(row.querySelectorAll("td.cell"), function (td) {
      seen[td.getAttribute("data-status")] = true;
    });
    return Object.keys(seen).length > 1;
  }
  function failing(row) {
    return row.querySelector("td.failed, td.environment-error") !== null;
  }
  function apply() {
    var onlyDiff = document.getElementById("only-differences").checked;
    var onlyFail = document.getElementById("only-failures").checked;
    var shown = 0;
    rows.forEach(function (row) {
      var hide = (onlyDiff && !differs(row)) || (onlyFail && !failing(row));
      row.classList.toggle("hidden", hide);
      if (!hide) { shown += 1; }
    });
    document.getElementById("shown").textContent = String(shown);
  }
  document.getElementById("only-differences").addEventListener("change", apply);
  document.getElementById("only-failures").addEventListener("change", apply);
  apply();
})();
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(data: Mapping[str, Any]) -> str:
    """The matrix as one self-contained HTML page (inline CSS and script, no fetch of anything)."""
    drivers = data["drivers"]
    keys = [d["key"] for d in drivers]
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # The page makes no request at all: say so to the browser too.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">",
        "<title>nestq conformance matrix</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>nestq conformance matrix</h1>",
        f'<p class="meta-line">Generated {_e(data["generated"])} by <code>{_e(data["command"])}</code> with nestq '
        f"{_e(data['kit_version'])}, suite {_e(data['suite_version'])} (<code>{_e(data['suite_hash'][:19])}</code>), "
        f"on {_e(data['host']['hostname'])} ({_e(data['host']['cores'])} cores, {_e(data['host']['platform'])}, "
        f"Python {_e(data['host']['python'])}).</p>",
        '<p class="legend">'
        + "".join(f'<span class="{s}">{_GLYPHS[s]} {_e(_LABELS[s])}</span>' for s in CELL_STATUSES)
        + "</p>",
        '<div class="controls"><label><input type="checkbox" id="only-differences"> only rules where the drivers '
        'differ</label><label><input type="checkbox" id="only-failures"> only rules with a failure</label>'
        f'<span><span id="shown">{len(data["rules"])}</span> of {len(data["rules"])} rules shown</span></div>',
        '<table class="matrix" id="matrix">',
        "<thead>",
        '<tr><th class="corner">rule</th><th>level</th>'
        + "".join(
            f'<th class="driver" scope="col" data-driver="{_e(d["key"])}">{_e(d["name"])}<br>'
            f'<span class="verdict-{_e(d["verdict"].split()[0][:4])}">{_e(d["verdict"])}</span></th>'
            for d in drivers
        )
        + "</tr>",
    ]

    def info_row(label: str, cells: Sequence[str]) -> str:
        return f'<tr class="info"><th colspan="2">{_e(label)}</th>' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    def report_link(d: Mapping[str, Any]) -> str:
        if d.get("report"):
            md = d["report"].removesuffix(".json") + ".md"
            return f'<a href="{_e(md)}">report</a> (<a href="{_e(d["report"])}">JSON</a>)'
        return f'<a href="#{_anchor(d["key"], "environment")}">environment error</a>'

    out.append(info_row("passed / applying", [_e(_level_text(d)) for d in drivers]))
    out.append(info_row("declared capabilities", [_e(_caps_text(d["manifest"])) for d in drivers]))
    out.append(info_row("kit, suite", [
        _e(f"nestq {d['kit_version']}, suite {d['suite_version']} {str(d['suite_hash'])[7:19]}")
        if d.get("kit_version") else "-" for d in drivers]))
    out.append(info_row("ran", [_e(_ran_text(d)) for d in drivers]))
    out.append(info_row("driver's own report", [report_link(d) for d in drivers]))
    out.append("</thead>")
    rules_by_id = {r["id"]: r for r in data["rules"]}
    messages: list[tuple[str, str, str]] = []
    for area in data["areas"]:
        title = (area.get("title") or "").strip()
        out.append(f'<tbody class="area" data-area="{_e(area["id"])}">')
        out.append(f'<tr class="area-head"><th colspan="{len(drivers) + 2}">{_e(area["id"])}'
                   + (f": {_e(title[:1].upper() + title[1:])}" if title else "") + "</th></tr>")
        for rid in area["rules"]:
            row = rules_by_id[rid]
            cells = []
            for key in keys:
                cell = row["cells"][key]
                status = cell["status"]
                text = f"{_GLYPHS[status]} {_e(_LABELS[status])}"
                tip = _e(cell.get("reason") or "")
                if status in ("failed", "expected-failure") and cell.get("reason"):
                    anchor = _anchor(key, rid)
                    messages.append((anchor, f"{key}: {rid}", str(cell["reason"])))
                    text = f'<a href="#{anchor}">{text}</a>'
                elif status == "environment-error":
                    text = f'<a href="#{_anchor(key, "environment")}">{text}</a>'
                cells.append(f'<td class="cell {status}" data-status="{status}" title="{tip}">{text}</td>')
            out.append(
                f'<tr class="rule" id="rule-{_e(rid)}" data-rule="{_e(rid)}">'
                f'<th class="rule" scope="row"><span class="id">{_e(rid)}</span>{_e(row["title"])}'
                + (f'<div class="hint">if it fails, check: {_e(row["hint"])}</div>' if row.get("hint") else "")
                + f'</th><td class="level">{_e(row["level"])}</td>'
                + "".join(cells) + "</tr>"
            )
        out.append("</tbody>")
    if data.get("bench") is not None:
        out.append('<tbody class="bench">')
        out.append(f'<tr class="area-head"><th colspan="{len(drivers) + 2}">Bench: nestq bench, '
                   f'N={_e(data["bench"]["n"])}, {_e(data["bench"]["latency_samples"])} latency samples</th></tr>')
        for key, label, fmt in _BENCH_ROWS:
            out.append(f'<tr class="bench"><th class="rule" colspan="2">{_e(label)}</th>'
                       + "".join(f"<td>{_e(_bench_cell(d, key, fmt))}</td>" for d in drivers) + "</tr>")
        out.append('<tr class="bench"><th class="rule" colspan="2">load average at the bench\'s start</th>'
                   + "".join(f"<td>{_e(_load_text(d))}</td>" for d in drivers) + "</tr>")
        out.append("</tbody>")
    out.append("</table>")
    out.append('<section id="messages"><h2>Messages</h2><dl>')
    for d in drivers:
        if d.get("environment_error"):
            out.append(f'<dt id="{_anchor(d["key"], "environment")}">{_e(d["key"])}: environment error</dt>'
                       f'<dd><pre>{_e(d["environment_error"])}</pre></dd>')
        if d.get("bench_error"):
            out.append(f'<dt>{_e(d["key"])}: bench</dt><dd><pre>{_e(d["bench_error"])}</pre></dd>')
    for anchor, what, reason in messages:
        out.append(f'<dt id="{anchor}">{_e(what)}</dt><dd><pre>{_e(reason)}</pre></dd>')
    out.append("</dl></section>")
    out.append(f"<script>{_JS}</script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_summary(data: Mapping[str, Any]) -> str:
    """The end-of-run summary for a terminal: one line per driver, then the totals."""
    drivers = data["drivers"]
    width = max([len(d["key"]) for d in drivers] + [6])
    lines = [f"{'DRIVER':<{width}}  {'RESULT':<18}  {'MUST':>7}  {'SHOULD':>7}  {'MAY':>7}  {'FAIL':>4}  "
             f"{'XFAIL':>5}  {'N/D':>4}  {'TIME':>7}"]
    for d in drivers:
        by_level = d.get("by_level") or {}
        totals = d.get("totals") or {}

        def lv(level: str, by_level: Mapping[str, Any] = by_level) -> str:
            c = by_level.get(level)
            return f"{c['passed']}/{c['applicable']}" if c and c["applicable"] else "-"

        broken = (totals.get("failed", 0) + totals.get("error", 0) + totals.get("xpassed", 0)) if totals else 0
        lines.append(
            f"{d['key']:<{width}}  {d['verdict'][:18]:<18}  {lv('MUST'):>7}  {lv('SHOULD'):>7}  {lv('MAY'):>7}  "
            f"{broken if totals else '-':>4}  {totals.get('xfailed', '-') if totals else '-':>5}  "
            f"{totals.get('not_declared', '-') if totals else '-':>4}  {d['wall_seconds']:>6.1f}s"
        )
        if d.get("environment_error"):
            lines.append(f"{'':<{width}}  -> {str(d['environment_error']).splitlines()[0][:300]}")
        if d.get("bench"):
            figures = d["bench"]["figures"]
            lines.append(
                f"{'':<{width}}  bench: enqueue {_rate(figures['enqueue_jobs_per_s'])}, "
                f"e2e {_rate(figures['e2e_jobs_per_s'])}, p50 {_ms(figures['latency_p50_ms'])}"
            )
        elif d.get("bench_error"):
            lines.append(f"{'':<{width}}  bench: {d['bench_error'].splitlines()[0][:300]}")
    s = data["summary"]
    lines.append(
        f"{s['drivers']} driver(s), {s['rules']} rules: {s['passing_drivers']} passing, "
        f"{s['environment_errors']} environment error(s)"
    )
    lines.append("(MUST/SHOULD/MAY: passed/applying; FAIL: failed, errors and strict xpasses; N/D: not declared)")
    return "\n".join(lines)


def markdown_into(path: Path, markdown: str) -> None:
    """Put the Markdown matrix into ``path``: between its markers when it has them, else as the whole file."""
    block = f"{MARKDOWN_BEGIN}\n{markdown.rstrip()}\n{MARKDOWN_END}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    begin, end = text.find(MARKDOWN_BEGIN), text.find(MARKDOWN_END)
    text = text[:begin] + block + text[end + len(MARKDOWN_END) :] if 0 <= begin < end else block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_matrix(directory: Path, data: Mapping[str, Any]) -> dict[str, Path]:
    """Write ``nestq-matrix.md``, ``.json`` and ``.html`` into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / name for kind, name in MATRIX_FILES.items()}
    paths["json"].write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(data), encoding="utf-8")
    paths["html"].write_text(render_html(data), encoding="utf-8")
    return paths
