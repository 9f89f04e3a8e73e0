"""Rules become outcomes: capability and probe skips, strict expected failures, framed failures, properties."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from .conftest import WITH_DEAD_LETTERS, Kit


def test_inert_without_a_driver_collects_nothing_and_imports_nothing_heavy(kit: Kit) -> None:
    kit.pytester.makepyfile(
        test_own="""
        import sys

        def test_nothing_heavy_imported():
            heavy = [m for m in ("nestq_spec", "nestq_conformance.harness", "nestq_conformance.capabilities",
                                 "nestq_conformance.resolve", "nestq_conformance.report", "jsonschema")
                     if m in sys.modules]
            assert heavy == []
            assert "nestq_conformance.plugin" in sys.modules
        """
    )
    result = kit.run_subprocess("-v")
    result.assert_outcomes(passed=1)
    assert "nestq:" not in result.stdout.str()
    assert "test_fake_a" not in result.stdout.str()


def test_nestq_fixtures_without_a_driver_fail_with_a_clear_message(kit: Kit) -> None:
    kit.pytester.makepyfile(test_own="def test_uses(nestq_harness):\n    pass\n")
    result = kit.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no nestq driver is named: pass --nestq-driver=NAME, set NESTQ_DRIVER*"])


def test_empty_folder_runs_the_whole_suite(kit: Kit) -> None:
    kit.driver()
    result = kit.run("--nestq-driver=fakedriver", "-v")
    result.assert_outcomes(passed=4, skipped=4)
    assert kit.events() == ["start", "end"], "session_start and session_end run once each"


def test_suite_runs_beside_the_projects_own_tests(kit: Kit) -> None:
    kit.driver()
    kit.pytester.mkdir("tests")
    (kit.pytester.path / "tests" / "test_own.py").write_text("def test_own():\n    pass\n", encoding="utf-8")
    result = kit.run("--nestq-driver=fakedriver", "-v")
    result.assert_outcomes(passed=5, skipped=4)
    result.stdout.fnmatch_lines(["*tests/test_own.py::test_own PASSED*"])
    # With an explicit path, too.
    result = kit.run("--nestq-driver=fakedriver", "tests/test_own.py")
    result.assert_outcomes(passed=5, skipped=4)


def test_no_suite_flag_and_paths_into_the_suite(kit: Kit) -> None:
    kit.driver()
    kit.pytester.makepyfile(test_own="def test_own(nestq_capabilities):\n    assert nestq_capabilities\n")
    result = kit.run("--nestq-driver=fakedriver", "--nestq-no-suite")
    result.assert_outcomes(passed=1)
    assert "not added (--nestq-no-suite)" in result.stdout.str()
    # A path pointing into the suite selects from it; the suite is not added a second time.
    result = kit.run("--nestq-driver=fakedriver", f"{kit.suite / 'test_fake_b.py'}")
    result.assert_outcomes(passed=1)
    assert "not added (a path given points into it)" in result.stdout.str()


def test_suite_items_get_the_nestq_marker(kit: Kit) -> None:
    kit.driver()
    kit.pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = kit.run("--nestq-driver=fakedriver", "-m", "not nestq")
    result.assert_outcomes(passed=1, deselected=8)


def test_undeclared_capability_skips_naming_it(kit: Kit) -> None:
    kit.driver()
    result = kit.run("--nestq-driver=fakedriver", "-rs")
    result.stdout.fnmatch_lines(
        [
            "SKIPPED *ZZA-002 skipped: capability 'ordering' (ordering='fifo'; the driver declares ordering='none') "
            "not declared by driver fake",
            "SKIPPED *ZZA-005 skipped: capability 'retries' (retries=True; the driver declares retries=False) "
            "not declared by driver fake",
        ]
    )


def test_declared_capability_runs_the_rule(kit: Kit) -> None:
    kit.driver(caps={"ordering": "fifo", "retries": True, "max_attempts": 3})
    result = kit.run("--nestq-driver=fakedriver")
    result.assert_outcomes(passed=6, skipped=2)


def test_probe_not_overridden_skips_before_running(kit: Kit) -> None:
    kit.driver()
    result = kit.run("--nestq-driver=fakedriver", "-rs")
    result.stdout.fnmatch_lines(
        [
            "SKIPPED *ZZA-003 skipped: the dead_letters probe is not provided by the harness of driver fake "
            "(DriverHarness.dead_letters not overridden)"
        ]
    )


def test_probe_not_implemented_at_run_time_skips_naming_it(kit: Kit) -> None:
    kit.driver(extra=WITH_DEAD_LETTERS)
    result = kit.run("--nestq-driver=fakedriver", "-rs")
    result.stdout.fnmatch_lines(
        [
            "SKIPPED *ZZA-004 skipped: the queue_depth probe is not provided by the harness of driver fake "
            "(it raised NotImplementedError('queue_depth probe'))"
        ]
    )
    result.assert_outcomes(passed=5, skipped=3)


def test_other_not_implemented_errors_still_fail(kit: Kit) -> None:
    extra = """
    async def queue_depth(self, container, queue):
        raise NotImplementedError("the driver has no such thing")
"""
    kit.driver(extra=extra)
    result = kit.run("--nestq-driver=fakedriver")
    result.assert_outcomes(passed=4, skipped=3, failed=1)
    result.stdout.fnmatch_lines(["*NotImplementedError: the driver has no such thing*"])


def test_failure_starts_with_the_rule_and_ends_with_the_hint(kit: Kit) -> None:
    kit.driver(fail=["ZZA-001"])
    result = kit.run("--nestq-driver=fakedriver")
    result.assert_outcomes(passed=3, skipped=4, failed=1)
    out = result.stdout.str()
    start = out.index("ZZA-001 [MUST] The first fake rule holds. (driver fake)")
    middle = out.index("AssertionError: expected ZZA-001 to hold; seen the fake driver break it on purpose", start)
    out.index("if this fails, check the first thing", middle)
    result.stdout.fnmatch_lines(["FAILED *test_zza_001 - ZZA-001: AssertionError: expected ZZA-0*"])


def test_hint_without_the_word_check_gets_one(kit: Kit) -> None:
    kit.driver(fail=["ZZB-001"])
    result = kit.run("--nestq-driver=fakedriver")
    result.stdout.fnmatch_lines(["if this fails, check: the second area's hint"])


def test_expected_failure_is_an_xfail_with_the_drivers_reason(kit: Kit) -> None:
    kit.driver(fail=["ZZA-001"], xfail={"ZZA-001": "issue 12: the fake store drops the first job"})
    result = kit.run("--nestq-driver=fakedriver", "-rx")
    result.assert_outcomes(passed=3, skipped=4, xfailed=1)
    result.stdout.fnmatch_lines(
        ["XFAIL *test_zza_001 - ZZA-001 is a known failure of driver fake: issue 12: the fake store drops*"]
    )


def test_expected_failure_that_passes_fails_strictly_naming_the_rule(kit: Kit) -> None:
    kit.driver(xfail={"ZZA-001": "issue 12"})
    result = kit.run("--nestq-driver=fakedriver")
    result.assert_outcomes(passed=3, skipped=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "ZZA-001 [MUST] The first fake rule holds. (driver fake)",
            "*XPASS(strict)* ZZA-001 passed, but driver fake lists it in expected_failures ('issue 12').",
            "*the driver now honours ZZA-001: remove it from the harness's expected_failures",
        ]
    )


def test_expected_failure_strict_even_when_the_project_says_otherwise(kit: Kit) -> None:
    kit.driver(xfail={"ZZA-001": "issue 12"})
    kit.pytester.makeini("[pytest]\nxfail_strict = false\n")
    result = kit.run("--nestq-driver=fakedriver")
    result.assert_outcomes(passed=3, skipped=4, failed=1)


def test_rule_properties_reach_junit_xml(kit: Kit) -> None:
    kit.driver(caps={"ordering": "fifo"})
    kit.run("--nestq-driver=fakedriver", "--junitxml=out.xml", "-o", "junit_family=xunit1")
    root = ET.parse(kit.pytester.path / "out.xml").getroot()
    props: dict[str, dict[str, str]] = {}
    for case in root.iter("testcase"):
        props[case.get("name", "")] = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
    assert props["test_zza_002"]["nestq_rule"] == "ZZA-002"
    assert props["test_zza_002"]["nestq_level"] == "SHOULD"
    assert props["test_zza_002"]["nestq_requires"] == "ordering"
    assert props["test_zza_003"]["nestq_probes"] == "dead_letters"
    assert props["test_zza_006[1]"]["nestq_title"] == "The suite's settings are scaled by the timeout scale."


@pytest.mark.parametrize(("how", "scale"), [("option", "3"), ("env", "0.5"), ("ini", "2")])
def test_timeout_scale_multiplies_the_settings(kit: Kit, monkeypatch: pytest.MonkeyPatch, how: str, scale: str) -> None:
    kit.driver()
    args = ["--nestq-driver=fakedriver"]
    if how == "option":
        args.append(f"--nestq-timeout-scale={scale}")
    elif how == "env":
        monkeypatch.setenv("NESTQ_TIMEOUT_SCALE", scale)
    else:
        kit.pytester.makeini(f"[pytest]\nnestq_timeout_scale = {scale}\n")
    result = kit.run(*args)
    result.assert_outcomes(passed=4, skipped=4)
    assert re.search(rf"timeout scale {float(scale):g} \(", result.stdout.str())


def test_unknown_capability_in_a_rule_is_reported_as_a_suite_bug(kit: Kit) -> None:
    kit.driver()
    (kit.suite / "test_fake_c.py").write_text(
        'from nestq_conformance.rules import rule\n\n\n@rule("ZZC-001", "MUST", hint="x", requires=("telepathy",))\n'
        'def test_zzc_001(nestq_harness):\n    """Reads minds."""\n',
        encoding="utf-8",
    )
    result = kit.run("--nestq-driver=fakedriver")
    result.assert_outcomes(passed=4, skipped=4, errors=1)
    result.stdout.fnmatch_lines(
        ["*the rule requires unknown capabilities ?'telepathy'?*(a bug in the suite, not in the driver)"]
    )


def test_session_start_failure_errors_every_rule_once_started(kit: Kit) -> None:
    extra = """
    def session_start(self):
        raise ConnectionRefusedError("storage at localhost:1 refused the connection")
"""
    kit.driver(extra=extra)
    result = kit.run("--nestq-driver=fakedriver")
    result.assert_outcomes(skipped=3, errors=5)
    result.stdout.fnmatch_lines(["*ConnectionRefusedError: storage at localhost:1 refused the connection*"])


def test_rule_ids_are_keywords(kit: Kit) -> None:
    kit.driver()
    result = kit.run("--nestq-driver=fakedriver", "-k", "ZZA-006 or ZZB")
    result.assert_outcomes(passed=3, deselected=5)


def test_help_works_with_a_broken_driver_named(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTQ_DRIVER", "no_such_driver_xyz")
    result = kit.run("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["nestq conformance suite:", "  --nestq-driver=NAME*"])


def test_expected_failures_naming_unknown_rules_are_reported(kit: Kit) -> None:
    kit.driver(xfail={"ZZZ-999": "gone"})
    result = kit.run("--nestq-driver=fakedriver")
    result.assert_outcomes(passed=4, skipped=4)
    result.stdout.fnmatch_lines(
        ["nestq: expected_failures of driver fake names rules the suite does not have: ZZZ-999 (renamed or removed*"]
    )
