"""The JSON report (validated by its schema), the Markdown card, the badge, and the everything-failed notice."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from nestq_conformance.catalogue import SUITE_VERSION, suite_hash
from nestq_conformance.report import REPORT_FILES, badge, load_schema

from .conftest import Kit, load_json

BADGE_KEYS = {"schemaVersion", "label", "message", "color"}


def _report(kit: Kit, *args: str) -> tuple[pytest.RunResult, dict[str, Any], Path]:
    out = kit.pytester.path / "out"
    result = kit.run("--nestq-driver=fakedriver", f"--nestq-report={out.name}", *args)
    data = load_json(out / REPORT_FILES["json"])
    jsonschema.Draft202012Validator(load_schema()).validate(data)
    return result, data, out


def _rules(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["id"]: rule for rule in data["rules"]}


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_report_files_are_written_and_valid(kit: Kit) -> None:
    kit.driver(
        caps={"retries": True, "max_attempts": 3},
        fail=["ZZB-001", "ZZA-005"],
        xfail={"ZZA-005": "retries are not counted yet"},
        extra="""
    async def dead_letters(self, container, queue):
        return []
""",
    )
    result, data, out = _report(kit)
    assert {p.name for p in out.iterdir()} == set(REPORT_FILES.values())
    assert f"nestq: report written to {out}" in result.stdout.str()
    assert data["driver"] == {
        "name": "fake",
        "spec": "fakedriver",
        "source": "option",
        "origin": "module fakedriver (attribute harness)",
        "description": "fake storage, no server",
    }
    assert data["manifest"]["retries"] is True
    assert data["manifest"]["max_attempts"] == 3
    assert data["expected_failures"] == {"ZZA-005": "retries are not counted yet"}
    assert data["kit_version"] == __import__("nestq_spec").__version__
    assert data["suite_version"] == "custom", "a custom suite never gets the shipped suite's version"
    assert data["custom_suite"] == str(kit.suite)
    assert data["complete"] is False
    assert data["left_out"] == [f"the shipped suite {SUITE_VERSION}: a custom suite at {kit.suite} ran instead"]
    assert data["environment_error"] is None
    assert data["suite_hash"] == suite_hash(kit.suite)
    assert data["ok"] is False
    rules = _rules(data)
    assert rules["ZZA-001"]["outcome"] == "passed"
    assert rules["ZZA-002"]["outcome"] == "skipped"
    assert rules["ZZA-002"]["reason"].startswith("ZZA-002 skipped: capability 'ordering' (ordering='fifo'")
    assert rules["ZZA-003"]["outcome"] == "passed"
    assert rules["ZZA-004"]["outcome"] == "skipped"
    assert "queue_depth probe is not provided" in rules["ZZA-004"]["reason"]
    assert rules["ZZA-005"]["outcome"] == "xfailed"
    assert rules["ZZA-005"]["reason"] == "ZZA-005 is a known failure of driver fake: retries are not counted yet"
    assert rules["ZZB-001"]["outcome"] == "failed"
    assert rules["ZZB-001"]["reason"].startswith("ZZB-001: AssertionError: expected ZZB-001 to hold")
    assert rules["ZZB-001"]["area_title"] == "the second fake area"
    assert rules["ZZA-006"]["outcome"] == "passed"
    assert [i["nodeid"].rsplit("::", 1)[1] for i in rules["ZZA-006"]["items"]] == ["test_zza_006[1]", "test_zza_006[2]"]
    assert data["totals"] == {
        "passed": 3, "failed": 1, "error": 0, "xpassed": 0, "xfailed": 1, "skipped": 2, "rules": 7,
        "not_declared": 1, "applicable": 6,
    }  # fmt: skip
    assert rules["ZZA-002"]["not_declared"] is True
    assert rules["ZZA-004"]["not_declared"] is False
    assert data["by_level"]["MUST"]["passed"] == 3
    assert data["by_level"]["MUST"]["failed"] == 1
    assert data["notice"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["timestamp"])


def test_xpassed_and_errors_in_the_report(kit: Kit) -> None:
    kit.driver(
        xfail={"ZZA-001": "flaky"},
        extra="""
    async def queue_depth(self, container, queue):
        raise RuntimeError("depth unavailable")
""",
    )
    _, data, _ = _report(kit)
    rules = _rules(data)
    assert rules["ZZA-001"]["outcome"] == "xpassed"
    assert "ZZA-001 passed, but driver fake lists it in expected_failures" in rules["ZZA-001"]["reason"]
    assert rules["ZZA-004"]["outcome"] == "failed"
    assert data["ok"] is False


def test_markdown_card(kit: Kit) -> None:
    kit.driver(fail=["ZZB-001"])
    _, data, out = _report(kit)
    card = (out / REPORT_FILES["markdown"]).read_text(encoding="utf-8")
    assert card.startswith("# nestq conformance report card: `fake`\n")
    assert (
        f"| Result | **PARTIAL (FAIL; left out: the shipped suite {SUITE_VERSION}: a custom suite at {kit.suite} ran "
        "instead)**: "
        "2/5 MUST, 2 not declared, 2 unchecked (a probe missing) |" in card
    )  # levels where no rule ran are left out
    assert (
        f"| Kit | nestq {data['kit_version']}, custom suite at {kit.suite} (not the shipped suite) "
        f"(`{data['suite_hash'][:19]}`) |" in card
    )
    assert "## Capability manifest" in card
    assert '| ordering | `"none"` |' in card
    # level | rules | apply | passed | failed | error | xpassed | expected failure | not declared | unchecked
    assert "| MUST | 5 | 5 | 2 | 1 | 0 | 0 | 0 | 0 | 2 |" in card
    assert "| SHOULD | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 1 | 0 |" in card
    assert "### ZZA: the fake area" in card
    assert "### ZZB: the second fake area" in card
    assert "| ZZB-001 | MUST | ❌ failed | The second area's rule holds. |" in card
    assert "if this fails, check: the second area's hint" in card
    assert re.search(
        r"\| ZZA-002 \| SHOULD \| ⏭️ skipped \| Fake jobs arrive in push order\. \| ZZA-002 skipped: capability", card
    )
    assert data["suite_hash"] in card


@pytest.mark.parametrize(
    ("caps", "fail", "xfail", "message", "color"),
    [
        ({}, [], {}, "3/5 MUST, 2 unchecked", "yellow"),
        ({}, ["ZZB-001"], {}, "2/5 MUST", "red"),
        ({"ordering": "fifo"}, ["ZZA-002"], {}, "3/5 MUST, 1 other failing", "orange"),
        ({}, ["ZZA-001"], {"ZZA-001": "known"}, "2/5 MUST, 1 known failing, 2 unchecked", "yellow"),
    ],
)
def test_badge(
    kit: Kit, caps: dict[str, Any], fail: list[str], xfail: dict[str, str], message: str, color: str
) -> None:
    kit.driver(caps=caps, fail=fail, xfail=xfail)
    _, data, out = _report(kit)
    written = load_json(out / REPORT_FILES["badge"])
    assert set(written) == BADGE_KEYS
    # A custom suite's badge is grey whatever happened; the colours are those of the same run of the shipped suite.
    assert written == {
        "schemaVersion": 1,
        "label": "nestq fake",
        "message": f"custom suite: {message}",
        "color": "lightgrey",
    }
    shipped = {**data, "custom_suite": None, "complete": True, "left_out": []}
    assert badge(shipped) == {"schemaVersion": 1, "label": "nestq fake", "message": message, "color": color}
    partial = {**shipped, "complete": False}
    assert badge(partial)["message"] == f"partial: {message}"
    assert badge(partial)["color"] == ("red" if color == "red" else "blue")


def test_badge_is_green_only_when_every_must_rule_that_applies_passed() -> None:
    counts = {
        "passed": 4,
        "failed": 0,
        "error": 0,
        "xpassed": 0,
        "xfailed": 0,
        "skipped": 2,
        "rules": 6,
        "not_declared": 2,
        "applicable": 4,
    }
    report = {
        "driver": {"name": "d"},
        "by_level": {"MUST": counts},
        "totals": counts,
        "complete": True,
        "custom_suite": None,
        "environment_error": None,
    }
    assert badge(report) == {"schemaVersion": 1, "label": "nestq d", "message": "4/4 MUST ok", "color": "brightgreen"}
    assert badge({**report, "environment_error": "down"})["color"] == "red"


def test_badge_when_nothing_ran(kit: Kit) -> None:
    kit.driver()
    _, data, out = _report(kit, "-k", "zza_002 or zza_005")
    assert load_json(out / REPORT_FILES["badge"])["message"] == "no rules ran"
    assert data["totals"]["rules"] == 2
    assert data["totals"]["skipped"] == 2


def test_everything_failed_notice(kit: Kit) -> None:
    kit.driver(fail=["ZZA-001", "ZZA-006", "ZZB-001"])
    result, data, out = _report(kit)
    notice = data["notice"]
    assert notice is not None
    assert notice.startswith("every rule that ran failed (3 of 3): the environment is probably broken, not the driver.")
    assert "fake storage, no server" in notice
    result.stdout.fnmatch_lines(["nestq: every rule that ran failed (3 of 3): the environment is probably broken*"])
    assert f"> **Notice:** {notice}" in (out / REPORT_FILES["markdown"]).read_text(encoding="utf-8")


def test_no_notice_when_something_passed_or_too_few_ran(kit: Kit) -> None:
    kit.driver(fail=["ZZA-001", "ZZA-006"])
    result, data, _ = _report(kit)
    assert data["notice"] is None
    assert "environment is probably broken" not in result.stdout.str()
    result, data, _ = _report(kit, "-k", "zza_001 or zza_006")
    assert data["notice"] is None, "two failing rules are too few to blame the environment"


def test_report_under_xdist_is_written_once_with_every_rule(kit: Kit) -> None:
    kit.driver(fail=["ZZB-001"])
    out = kit.pytester.path / "out"
    result = kit.run_subprocess("--nestq-driver=fakedriver", f"--nestq-report={out}", "-n", "2")
    result.assert_outcomes(passed=3, skipped=4, failed=1)
    data = load_json(out / REPORT_FILES["json"])
    jsonschema.Draft202012Validator(load_schema()).validate(data)
    rules = _rules(data)
    assert set(rules) == {"ZZA-001", "ZZA-002", "ZZA-003", "ZZA-004", "ZZA-005", "ZZA-006", "ZZB-001"}
    assert rules["ZZB-001"]["outcome"] == "failed"
    assert rules["ZZB-001"]["level"] == "MUST"
    assert rules["ZZB-001"]["hint"] == "the second area's hint"
    assert "ZZB-001 [MUST] The second area's rule holds. (driver fake)" in result.stdout.str()
