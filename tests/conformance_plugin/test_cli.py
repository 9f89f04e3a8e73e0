"""``nestq check`` and ``nestq rules``, run as the installed command would be (a subprocess)."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from nestq_conformance.report import REPORT_FILES, load_schema

from .conftest import Kit, load_json


def test_check_all_passing_exits_0_and_prints_the_card(kit: Kit) -> None:
    kit.driver()
    kit.pytester.makepyfile(test_own="def test_own():\n    raise AssertionError('the project tests must not run')\n")
    result = kit.nestq("check", "fakedriver")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    out = result.stdout.str()
    assert "nestq-check-" not in out + result.stderr.str(), "the temporary report folder is deleted: never name it"
    assert "the project tests must not run" not in out
    assert "warning" not in out
    assert "nestq check: driver fake (module fakedriver (attribute harness))" in out
    assert "  harness: fake storage, no server" in out
    result.stdout.re_match_lines(
        [
            r"RULE\s+LEVEL\s+OUTCOME\s+TITLE",
            r"ZZA-001\s+MUST\s+passed\s+The first fake rule holds\.",
            r"ZZA-002\s+SHOULD\s+skipped\s+Fake jobs arrive in push order\.",
            r"\s+-> ZZA-002 skipped: capability 'ordering' \(ordering='fifo'.*",
            r"ZZB-001\s+MUST\s+passed\s+The second area's rule holds\.",
            r"PARTIAL \(PASS; left out: the shipped suite \d+: a custom suite at .* ran instead\): 3/5 MUST, "
            r"2 not declared, 2 unchecked \(a probe missing\)  \(3 passed, 4 skipped; .* s\)",
        ]
    )


def test_check_with_a_failure_exits_1_and_writes_the_report(kit: Kit) -> None:
    kit.driver(fail=["ZZB-001"])
    result = kit.nestq("check", "fakedriver", "--report", "card")
    assert result.ret == 1
    result.stdout.re_match_lines(
        [r"ZZB-001\s+MUST\s+failed\s+The second area's rule holds\.", r"\s+-> ZZB-001: AssertionError: expected.*"]
    )
    result.stdout.fnmatch_lines(
        [
            "PARTIAL (FAIL; left out: *): 2/5 MUST, 2 not declared, 2 unchecked*",
            f"report: {kit.pytester.path / 'card'}/nestq-report.md*",
        ]
    )
    # pytest's own failure report is shown too, framed by the rule.
    result.stdout.fnmatch_lines(["ZZB-001 [MUST] The second area's rule holds. (driver fake)"])
    data = load_json(kit.pytester.path / "card" / REPORT_FILES["json"])
    jsonschema.Draft202012Validator(load_schema()).validate(data)
    assert data["totals"]["failed"] == 1


def test_check_declared_expected_failure_exits_0(kit: Kit) -> None:
    kit.driver(fail=["ZZB-001"], xfail={"ZZB-001": "known"})
    result = kit.nestq("check", "fakedriver")
    assert result.ret == 0
    result.stdout.re_match_lines(
        [
            r"ZZB-001\s+MUST\s+xfailed\s+.*",
            r"PARTIAL \(PASS; .*\): 2/5 MUST, 2 not declared, 2 unchecked \(a probe missing\), 1 expected failure.*",
        ]
    )


def test_check_everything_failed_prints_the_notice(kit: Kit) -> None:
    kit.driver(fail=["ZZA-001", "ZZA-006", "ZZB-001"])
    result = kit.nestq("check", "fakedriver")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["NOTICE: every rule that ran failed (3 of 3): the environment is probably broken*"])


def test_check_unknown_driver_exits_2_with_suggestion(kit: Kit) -> None:
    result = kit.nestq("check", "memroy")
    assert result.ret == 2
    assert "Did you mean 'memory'?" in result.stderr.str()


def test_check_options_reach_pytest(kit: Kit) -> None:
    kit.driver()
    result = kit.nestq(
        "check", "fakedriver", "--timeout-scale", "2", "-k", "zza_001 or zza_006", "-x", "--", "--junitxml=j.xml"
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    out = result.stdout.str()
    assert "timeout scale 2" in out
    assert re.search(r"ZZA-006\s+MUST\s+passed", out)
    assert "ZZB-001" not in out
    assert (kit.pytester.path / "j.xml").is_file()


def test_check_when_no_rule_is_selected_exits_1(kit: Kit) -> None:
    kit.driver()
    result = kit.nestq("check", "fakedriver", "-k", "no_such_rule")
    assert result.ret == 1
    assert "no rule ran" in result.stderr.str()


def test_rules_lists_the_catalogue_from_the_suite(kit: Kit) -> None:
    result = kit.nestq("rules")
    assert result.ret == 0
    result.stdout.re_match_lines(
        [
            r"RULE\s+LEVEL\s+REQUIRES\s+TITLE",
            r"ZZA-001\s+MUST\s+-\s+The first fake rule holds\.",
            r"\s+hint: check the first thing",
            r"ZZA-002\s+SHOULD\s+ordering\s+Fake jobs arrive in push order\.",
            r"7 rules",
        ]
    )


def test_rules_json(kit: Kit) -> None:
    result = kit.nestq("rules", "--json")
    assert result.ret == 0
    entries = json.loads(result.stdout.str())
    assert [e["id"] for e in entries] == ["ZZA-001", "ZZA-002", "ZZA-003", "ZZA-004", "ZZA-005", "ZZA-006", "ZZB-001"]
    second = entries[1]
    assert second["level"] == "SHOULD"
    assert second["requires"] == ["ordering"]
    assert second["hint"] == "check the order of the fake queue"
    assert second["title"] == "Fake jobs arrive in push order."
    assert second["area"] == "ZZA"
    assert second["area_title"] == "the fake area"
    assert entries[2]["probes"] == ["dead_letters"]


def test_rules_markdown(kit: Kit) -> None:
    result = kit.nestq("rules", "--markdown")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["# Conformance rules", "## ZZA: The fake area", "| ZZA-002 | SHOULD | ordering | *"])


def test_check_without_a_driver_argument_takes_nestq_driver(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    kit.driver()
    monkeypatch.setenv("NESTQ_DRIVER", "fakedriver")
    result = kit.nestq("check")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert "nestq check: driver fake (module fakedriver (attribute harness))" in result.stdout.str()
