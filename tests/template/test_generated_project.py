"""Generated projects in a fresh virtual environment: the default render runs its tests and the suite, failing
only where the markers are; a SQLite driver rendered from the template, with only its storage primitives filled
in (``fill/``), passes every rule it declares, visibility timeout and cross-process rules included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .filling import fill
from .helpers import Render, SuiteRun, Venv, run_suite

# Rules that never touch the storage: they must pass on the unfilled template.
STORAGE_FREE = {"CFG-001", "CFG-002", "CFG-003", "CFG-004", "CFG-005", "CFG-006", "PRD-006"}
MARKER_1 = "src/{package}/connection.py marker (1): connect to your storage"
MARKER_2 = "src/{package}/connection.py marker (2): push `data` (the encoded envelope, bytes) onto your storage"
MARKER_3 = "src/{package}/worker.py marker (3): receive the next envelopes of `queues` from your storage"
# A rule that reads a queue's depth before it pushes (DLV-009: a queue never pushed to has depth 0) meets the
# harness's depth probe first.
MARKER_9 = "src/{package}/harness.py marker (9): count the jobs of `queue` your storage holds"
OWN_TESTS = 9
# Rules that call serve() directly rather than through a watched worker app: a serve() that raises at once shows
# there as a timeout waiting for a delivery, not as serve()'s own error.
UNWATCHED_SERVE = {"LIF-001"}


@pytest.fixture(scope="module")
def sqs_project(render: Render, venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default render (``nestq-sqs``), installed (not editable) into the session's venv."""
    project = render(tmp_path_factory.mktemp("generated"))
    venv.pip_install(project)
    return project


@pytest.fixture(scope="module")
def sqs_run(venv: Venv, sqs_project: Path) -> SuiteRun:
    """``python -m pytest --nestq-report=reports`` in the default project."""
    return run_suite(venv, sqs_project)


def _undeclared_only(run: SuiteRun, driver: str, *, secretless: bool = False) -> None:
    """Every skipped rule was skipped for a capability the driver does not declare, never for anything else.

    ``secretless``: no secret and no URL in the settings (a file path): CFG-006 and CFG-008 have nothing to check.
    """
    nothing_to_check = {"CFG-006": "no secret or URL setting", "CFG-008": "the settings class has no URL setting"}
    for rule_id, reason in run.outcomes("skipped").items():
        if secretless and rule_id in nothing_to_check and nothing_to_check[rule_id] in reason:
            continue
        assert f"not declared by driver {driver}" in reason, f"{rule_id} skipped for another reason: {reason}"


def _explained(failed: dict[str, str], marker: str) -> None:
    """Every failure names ``marker``, except timeouts of the rules that do not watch serve()."""
    unexplained = {
        rule_id: reason
        for rule_id, reason in failed.items()
        if marker not in reason and not (rule_id in UNWATCHED_SERVE and "timed out" in reason)
    }
    assert not unexplained, f"failures that do not name {marker!r}: {unexplained}"


def test_default_project_runs_its_own_tests(sqs_run: SuiteRun) -> None:
    own = sqs_run.own_tests()
    assert len(own) == OWN_TESTS, f"expected the project's {OWN_TESTS} tests, found {own}\n{sqs_run.run.describe()}"
    assert set(own.values()) == {"passed"}, own


def test_default_project_passes_the_rules_that_do_not_touch_storage(sqs_run: SuiteRun) -> None:
    rules = sqs_run.rules
    assert len(rules) >= 60, f"the report lists {len(rules)} rules: was the suite collected?"
    not_passed = {r: rules[r]["outcome"] for r in STORAGE_FREE if rules[r]["outcome"] != "passed"}
    assert not not_passed, f"storage-free rules did not pass: {not_passed}\n{sqs_run.run.describe()}"
    assert sqs_run.report["manifest"]["durability"] == "ephemeral"
    assert sqs_run.report["manifest"]["delivery"] == "at-most-once"
    assert sqs_run.report["manifest"]["ordering"] == "none"
    _undeclared_only(sqs_run, "sqs")


def test_default_project_fails_the_storage_rules_with_the_marker_messages(sqs_run: SuiteRun) -> None:
    run = sqs_run
    assert run.run.returncode == 1, run.run.describe()
    assert not run.outcomes("error"), f"rules errored instead of failing: {run.outcomes('error')}"
    failed = run.outcomes("failed")
    assert len(failed) >= 20, f"only {len(failed)} rules failed: {sorted(failed)}"
    markers = tuple(m.format(package="nestq_sqs") for m in (MARKER_1, MARKER_2, MARKER_3, MARKER_9))
    unexplained = {
        r: reason for r, reason in failed.items()
        if not any(m in reason for m in markers) and not (r in UNWATCHED_SERVE and "timed out" in reason)
    }
    assert not unexplained, f"failures that do not name a marker: {unexplained}"
    assert MARKER_2.format(package="nestq_sqs") in run.run.output
    # Everything that ran and did not fail is a storage-free rule: nothing storage-bound passes by accident.
    assert set(run.outcomes("passed")) <= STORAGE_FREE | {r for r in run.rules if r.startswith("CFG-")}
    assert run.report["ok"] is False


def test_nestq_check_writes_the_report_card(venv: Venv, sqs_project: Path, tmp_path: Path) -> None:
    done = venv.run("nestq", "check", "sqs", "--report", tmp_path / "card", cwd=tmp_path)
    assert done.returncode == 1, done.describe()
    report = json.loads((tmp_path / "card" / "nestq-report.json").read_text("utf-8"))
    assert report["driver"]["name"] == "sqs"
    assert {r["id"]: r["outcome"] for r in report["rules"]}["CFG-001"] == "passed"
    assert (tmp_path / "card" / "nestq-report.md").is_file()
    assert (tmp_path / "card" / "nestq-badge.json").is_file()


def test_a_sqlite_driver_with_only_its_primitives_filled_passes_every_rule_it_declares(
    render: Render, venv: Venv, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project = render(tmp_path_factory.mktemp("filled"), technology="sqlite", storage_model="leases",
                     wakeups="polling", connection_style="path")
    assert fill(project, "nestq_sqlite") == [
        "SqliteConnection.schema", "SqliteConnection.connect", "SqliteConnection.disconnect",
        "SqliteConnection.push_raw", "SqliteWorker.claim", "SqliteWorker._update", "SqliteWorker.ack",
        "SqliteWorker.retry", "SqliteWorker.dead_letter", "SqliteWorker.give_back", "SqliteWorker.extend_leases",
        "SqliteHarness.capabilities", "SqliteHarness.dead_letters", "SqliteHarness.queue_depth",
    ]
    worker = (project / "src/nestq_sqlite/worker.py").read_text("utf-8")
    for loop_code in ("asyncio", "create_task", "LeaseKeeper", "sleep(", "while "):
        assert loop_code not in worker, f"the filled driver has loop or heartbeat code of its own: {loop_code}"
    venv.pip_install("-e", project)
    run = run_suite(venv, project)
    assert run.run.returncode == 0, run.run.describe()
    assert run.report["ok"] is True
    assert set(run.own_tests().values()) == {"passed"}
    for outcome in ("failed", "error", "xpassed"):
        assert not run.outcomes(outcome), f"{outcome}: {run.outcomes(outcome)}"
    _undeclared_only(run, "sqlite", secretless=True)
    manifest = run.report["manifest"]
    assert (manifest["visibility_timeout"], manifest["cross_process"]) == (True, True)
    assert manifest["durability"] == "durable"
    passed = run.outcomes("passed")
    # The rules the declared capabilities switch on ran, and passed: leases, crashes, other processes, retries.
    for rule_id in ("DUR-001", "DUR-002", "DUR-003", "DUR-004", "DLV-008", "FLR-001", "FLR-004", "DLV-003", "DLV-005",
                    "ENV-007", "LIF-006", "LIF-009"):
        assert rule_id in passed, f"{rule_id}: {run.rules[rule_id]['outcome']} {run.rules[rule_id]['reason']}"
    assert "sqlite: " in run.report["driver"]["description"]
    assert "suite.db" in run.report["driver"]["description"]
