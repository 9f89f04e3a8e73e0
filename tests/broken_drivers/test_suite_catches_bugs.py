"""The conformance suite catches every deliberately broken driver, by the rule that names its bug.

Each driver of this folder is the memory driver with one bug. For each one, the suite runs (as ``nestq check``
would, in its own process) on the areas of its bug and a sample of unrelated rules, and this test checks rule by
rule: the rules naming the bug fail, the other rules it breaks (listed, each explained by the bug) fail, and every
other rule has the outcome it has for the healthy memory driver (passed, or skipped for the same reason). The
``control`` driver, built like the broken ones but without a bug, runs the whole suite and must match the memory
driver exactly: a failure of a broken driver is its bug, not the way broken drivers are made.

The runs go in parallel; the whole module takes about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
TESTS = HERE.parent

SAMPLE = ("CFG-001", "PRD-003", "PRD-006", "DSP-003", "CTX-002", "ENV-002", "LIF-002", "LIF-008", "FLR-005",
          "DLV-004", "SCH-003", "DLV-008", "DUR-001")
"""Unrelated rules every broken driver also runs: cheap ones, from every area, two skipped for the memory driver."""

# The module's first test pays for its fixture: about 30 suite runs, four at a time. That is the budget of the whole
# module, not of one test, so it gets more than the default 300 s (each run is still bounded at 240 s in _run).
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Bug:
    """A broken driver: the rules that name its bug, every rule it breaks, and what to run."""

    driver: str
    names: tuple[str, ...]
    """The rules whose subject is this bug: each must fail."""
    breaks: frozenset[str]
    """Every rule the bug makes fail (names included), each for a reason the bug explains."""
    select: tuple[str, ...]
    """Areas (``ENV``) or rule ids to run, besides the sample."""
    sample: tuple[str, ...] = SAMPLE


BUGS = [
    Bug("ignore_cancel", ("LIF-002",), frozenset({"LIF-002", "LIF-003"}), ("LIF",),
        sample=("CFG-001", "PRD-006", "DLV-008", "DUR-001")),
    # Handlers see {"v": 1, "payload": ...}: every rule that looks at what a handler received breaks with it.
    Bug("double_wrap", ("ENV-001",), frozenset({
        "ENV-001", "ENV-003", "ENV-004", "ENV-005", "ENV-006", "CTX-004", "CTX-006", "DLV-001", "DLV-002", "DLV-005",
        "DLV-006", "DLV-007", "DSP-001", "DSP-002", "FLR-001", "FLR-002", "FLR-006", "FLR-008", "FLR-009", "LIF-007",
        "PRD-001", "PRD-002", "PRD-004", "PRD-005", "SCH-001", "SCH-002", "ENV-009",
    }), ("ENV",)),
    # No retry and no dead letter: whatever waits for an attempt 2 or a dead letter times out.
    Bug("drop_failed", ("FLR-001", "FLR-004"), frozenset({
        "FLR-001", "FLR-002", "FLR-003", "FLR-004", "FLR-006", "CTX-003", "DSP-004", "ENV-003", "ENV-007",
    }), ("FLR-001", "FLR-004", "FLR-007", "FLR-008", "FLR-009")),
    Bug("lose_in_flight", ("LIF-006",), frozenset({"LIF-006", "LIF-010"}), ("LIF",)),
    # A follow-up job on a second queue goes to the first queue's handler (CTX-004).
    Bug("wrong_queue", ("PRD-001",), frozenset({"PRD-001", "CTX-004", "PRD-007"}), ("PRD", "CTX-001")),
    # One receive loop per queue, each draining its own queue without a turn for the others (handlers that never
    # await): a backlog on the first queue runs before the second queue's jobs (DLV-012).
    Bug("per_queue_bound", ("DLV-003",), frozenset({"DLV-003", "DLV-012"}), ("DLV",)),
    # Declares retries but never retries: every rule that expects an attempt 2 fails.
    Bug("never_retry", ("FLR-001", "FLR-002"), frozenset({
        "FLR-001", "FLR-002", "FLR-003", "FLR-004", "CTX-003", "DSP-004",
    }), ("FLR-001", "FLR-002", "FLR-004", "FLR-006", "FLR-007", "FLR-008", "DSP-004")),
    Bug("poison_forever", ("ENV-008", "ENV-007"), frozenset({"ENV-007", "ENV-008"}), ("ENV",)),
    Bug("lifo", ("DLV-005",), frozenset({"DLV-005"}), ("DLV", "SCH")),
    Bug("skip_version_check", ("ENV-006", "ENV-007"), frozenset({"ENV-006", "ENV-007"}), ("ENV",)),
    Bug("ignore_delay", ("SCH-001",), frozenset({"SCH-001", "SCH-004"}), ("SCH",)),
    # Attempt 1 every time: a handler that fails on attempt 1 fails forever (CTX-003 waits for its success).
    Bug("attempt_not_passed", ("FLR-001",), frozenset({"FLR-001", "FLR-002", "DSP-004", "CTX-003"}),
        ("FLR", "DSP")),
    Bug("silent_dead_letters", ("FLR-004",), frozenset({"FLR-004", "FLR-006", "ENV-007"}), ("FLR", "ENV-007")),
    Bug("no_backoff", ("FLR-003",), frozenset({"FLR-003"}), ("FLR",)),
    Bug("consumes_unlisted", ("DSP-001",), frozenset({"DSP-001"}), ("DSP",)),
    # Suite 2.
    Bug("floaty_integers", ("ENV-009",), frozenset({"ENV-009"}), ("ENV",)),
    Bug("folded_queue_names", ("PRD-007",), frozenset({"PRD-007", "FLR-010"}), ("PRD", "FLR-010")),
    Bug("folded_dead_letters", ("FLR-010",), frozenset({"FLR-010"}), ("FLR",)),
    # Attempt 0 is refused by JobMeta: every first attempt fails before the handler, so every rule counting
    # attempts breaks, each saying "attempt 0" first.
    Bug("attempt_zero", ("FLR-001", "FLR-002"), frozenset({
        "FLR-001", "FLR-002", "FLR-003", "FLR-004", "FLR-006", "ENV-007",
    }), ("FLR", "CTX", "DSP-004", "ENV-003", "ENV-007")),
    Bug("config_ignores_env", ("CFG-007",), frozenset({"CFG-007"}), ("CFG",)),
    # Its settings class has a URL setting the memory driver's lacks: only the rule about URLs is compared.
    Bug("leaky_url", ("CFG-008",), frozenset({"CFG-008"}), ("CFG-008",), sample=()),
    # The Redis driver (its private redis-server), with a restart hook that restarts nothing.
    Bug("restart_noop", ("DUR-005",), frozenset({"DUR-005"}), ("DUR-005",), sample=()),
    # The Redis driver whose heartbeat stops while every slot is busy.
    Bug("heartbeat_on_claim", ("DUR-006",), frozenset({"DUR-006"}), ("DUR-006",), sample=()),
    Bug("leaky_connection", ("LIF-009",), frozenset({"LIF-009"}), ("LIF",)),
    Bug("stray_task", ("LIF-008",), frozenset({"LIF-008"}), ("LIF",)),
    # The mutation survivors of issue 12, each now failing the rule written (or sharpened) for it.
    Bug("cut_off_is_failure", ("LIF-010",), frozenset({"LIF-010"}), ("LIF",)),
    Bug("no_grace", ("LIF-011",), frozenset({"LIF-011"}), ("LIF",)),
    Bug("finished_stay_running", ("DLV-009",), frozenset({"DLV-009"}), ("DLV",)),
    Bug("latest_due", ("SCH-004",), frozenset({"SCH-004"}), ("SCH",)),
    Bug("swallow_wake_up", ("LIF-012",), frozenset({"LIF-012"}), ("LIF",)),
    Bug("skip_priority_one", ("SCH-003",), frozenset({"SCH-003"}), ("SCH",)),
    Bug("give_back_drops_behind", ("LIF-010",), frozenset({"LIF-010"}), ("LIF",)),
    # Issue 14: a give-back that keeps the interrupted attempt counted (the Redis driver before its port).
    Bug("give_back_counts_attempt", ("LIF-010",), frozenset({"LIF-010"}), ("LIF",)),
    Bug("deaf_idle_wait", ("DLV-011",), frozenset({"DLV-011"}), ("DLV",)),
    Bug("phantom_depth", ("DLV-009",), frozenset({"DLV-009"}), ("DLV",)),
    Bug("no_due_timer", ("SCH-004",), frozenset({"SCH-004"}), ("SCH",)),
    Bug("noisy_idle", ("LIF-013",), frozenset({"LIF-013"}), ("LIF",)),
    Bug("fixed_queue_order", ("DLV-012",), frozenset({"DLV-012"}), ("DLV", "DSP")),
    # URL settings found by name (an empty endpoint_url) and by the url=True marker, as leaky_url by its default.
    Bug("leaky_endpoint", ("CFG-008",), frozenset({"CFG-008"}), ("CFG-008",), sample=()),
    Bug("leaky_marked_url", ("CFG-008",), frozenset({"CFG-008"}), ("CFG-008",), sample=()),
    Bug("never_yields", ("DLV-010",), frozenset({"DLV-010"}), ("DLV",)),
]

FULL = ("memory", "control")
"""Drivers that run the whole suite."""


def _catalogue() -> list[str]:
    from nestq_conformance.catalogue import load_catalogue

    return [entry.rule.id for entry in load_catalogue()]


def _selection(bug: Bug, ids: list[str]) -> list[str]:
    wanted = (*bug.select, *bug.sample, *bug.names)
    return [i for i in ids if any(i == w or i.split("-")[0] == w for w in wanted)]


def _spec(driver: str) -> str:
    return driver if driver in ("memory",) else f"broken_drivers.{driver}:harness"


def _run(driver: str, rules: list[str] | None, out: Path) -> dict[str, Any]:
    """Run the suite against ``driver`` (only ``rules`` when given) in a process of its own; return the report."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NESTQ_DRIVER", "NESTQ_TIMEOUT_SCALE", "PYTEST_ADDOPTS") and not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, "-m", "nestq_spec.cli", "check", _spec(driver), "--report", str(out / driver)]
    if rules is not None:
        cmd += ["-k", " or ".join(rules)]
    done = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True, timeout=240, check=False)
    report = out / driver / "nestq-report.json"
    if done.returncode not in (0, 1) or not report.is_file():
        pytest.fail(f"nestq check {_spec(driver)} exited {done.returncode} without a report:\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(report.read_text("utf-8"))
    return data


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    """Every driver's report, the runs done in parallel (their waits are mostly timers, not CPU)."""
    out = tmp_path_factory.mktemp("broken-drivers")
    ids = _catalogue()
    # The longest runs first (BUGS is in that order too), so that the pool does not end waiting for one of them.
    jobs: list[tuple[str, list[str] | None]] = [(d, None) for d in FULL]
    jobs += [(bug.driver, _selection(bug, ids)) for bug in BUGS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {driver: pool.submit(_run, driver, rules, out) for driver, rules in jobs}
        yield {driver: future.result() for driver, future in futures.items()}


def _outcomes(report: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Rule id -> (outcome, reason) of the rules that ran, the driver's name in reasons made neutral."""
    name = f"driver {report['driver']['name']}"
    return {
        r["id"]: (r["outcome"], r["reason"].replace(name, "driver X") if r["reason"] else None)
        for r in report["rules"]
    }


def test_every_driver_module_is_listed() -> None:
    modules = {p.stem for p in HERE.glob("*.py") if not p.stem.startswith(("_", "test_"))}
    assert modules == {b.driver for b in BUGS} | {"control"}


def test_the_bug_table_names_real_rules() -> None:
    ids = set(_catalogue())
    for bug in BUGS:
        assert set(bug.names) <= bug.breaks, bug.driver
        assert bug.breaks <= ids, f"{bug.driver}: unknown rules {sorted(bug.breaks - ids)}"


def test_the_healthy_memory_driver_passes_every_rule_it_runs(reports: dict[str, dict[str, Any]]) -> None:
    memory = _outcomes(reports["memory"])
    assert {rid for rid, (outcome, _) in memory.items() if outcome not in ("passed", "skipped")} == set()
    assert len(memory) == len(_catalogue())


def test_the_control_driver_behaves_exactly_like_the_memory_driver(reports: dict[str, dict[str, Any]]) -> None:
    memory, control = _outcomes(reports["memory"]), _outcomes(reports["control"])
    assert {k: v[0] for k, v in control.items()} == {k: v[0] for k, v in memory.items()}


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.driver)
def test_the_suite_catches_the_bug(bug: Bug, reports: dict[str, dict[str, Any]]) -> None:
    healthy = _outcomes(reports["memory"])
    seen = _outcomes(reports[bug.driver])
    ran = set(seen)
    assert set(bug.names) <= ran, f"{bug.driver}: the rules naming the bug did not run: {set(bug.names) - ran}"
    failed = {rid for rid, (outcome, _) in seen.items() if outcome in ("failed", "error")}
    missed = set(bug.names) - failed
    assert not missed, f"{bug.driver}: the suite did not catch the bug by {sorted(missed)}: {[seen[m] for m in missed]}"
    unexplained = failed - bug.breaks
    assert not unexplained, f"{bug.driver}: rules failed that its bug does not explain: " + "; ".join(
        f"{rid}: {seen[rid][1]}" for rid in sorted(unexplained)
    )
    spared = (bug.breaks & ran) - failed
    assert not spared, f"{bug.driver}: rules the bug breaks did not fail: {sorted(spared)}"
    differs = {
        rid: (seen[rid], healthy[rid]) for rid in ran - bug.breaks if seen[rid][0] != healthy[rid][0]
    }
    assert not differs, f"{bug.driver}: unbroken rules whose outcome differs from the memory driver's: {differs}"
    skipped_for_other_reasons = {
        rid for rid in ran if seen[rid][0] == "skipped" and seen[rid][1] != healthy[rid][1]
    }
    assert not skipped_for_other_reasons, f"{bug.driver}: skipped for another reason: {skipped_for_other_reasons}"
