"""Naming a driver: precedence, the forms a spec takes, and the errors for names that do not resolve."""

from __future__ import annotations

import pytest

from .conftest import Kit


def _header_driver(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("nestq: driver ")]
    assert lines, "no 'nestq: driver' line in the report header:\n" + result.stdout.str()
    return lines[0]


@pytest.mark.parametrize(
    ("option", "env", "ini", "expected"),
    [
        ("drv_a", "drv_b", "drv_c", "driver 'a' from --nestq-driver ('drv_a')"),
        (None, "drv_b", "drv_c", "driver 'b' from env NESTQ_DRIVER ('drv_b')"),
        (None, None, "drv_c", "driver 'c' from ini option nestq_driver ('drv_c')"),
    ],
)
def test_precedence_option_env_ini(
    kit: Kit, monkeypatch: pytest.MonkeyPatch, option: str | None, env: str | None, ini: str, expected: str
) -> None:
    for letter in "abc":
        kit.driver(f"drv_{letter}", name=letter)
    kit.pytester.makeini(f"[pytest]\nnestq_driver = {ini}\n")
    if env:
        monkeypatch.setenv("NESTQ_DRIVER", env)
    args = [f"--nestq-driver={option}"] if option else []
    result = kit.run(*args, "--collect-only")
    assert expected in _header_driver(result)
    assert result.ret == 0


@pytest.mark.parametrize(
    ("spec", "origin"),
    [
        ("fakedriver:harness", "fakedriver:harness (module:attribute)"),
        ("fakedriver:FakeHarness", "fakedriver:FakeHarness (module:attribute)"),
        ("fakedriver:factory", "fakedriver:factory (module:attribute)"),
        ("fakedriver", "module fakedriver (attribute harness)"),
    ],
)
def test_spec_forms_instance_class_factory_module(kit: Kit, spec: str, origin: str) -> None:
    kit.driver()
    result = kit.run(f"--nestq-driver={spec}")
    line = _header_driver(result)
    assert f"driver 'fake' from --nestq-driver ({spec!r}): {origin}" in line
    result.assert_outcomes(passed=4, skipped=4)


def test_entry_point_name(kit: Kit) -> None:
    kit.driver("fakedriver")
    dist = kit.pytester.path / "site" / "fakedist-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakedist\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[nestq.drivers]\nfakey = fakedriver:factory\n", encoding="utf-8")
    kit.pytester.syspathinsert(dist.parent)
    result = kit.run("--nestq-driver=fakey")
    assert "from --nestq-driver ('fakey'): entry point nestq.drivers:fakey -> fakedriver:factory" in _header_driver(
        result
    )
    result.assert_outcomes(passed=4, skipped=4)


def test_colon_spec_wins_over_entry_point_and_module(kit: Kit) -> None:
    kit.driver("fakedriver", name="by-module")
    result = kit.run("--nestq-driver=fakedriver:harness", "--collect-only")
    assert "(module:attribute)" in _header_driver(result)


def test_unknown_driver_lists_installed_names_and_suggests(kit: Kit) -> None:
    result = kit.run("--nestq-driver=memroy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "unknown nestq driver 'memroy'" in err
    assert f"Installed drivers: {_installed()}." in err
    assert "Did you mean 'memory'?" in err


def test_unknown_driver_without_close_match_has_no_suggestion(kit: Kit) -> None:
    result = kit.run("--nestq-driver=zzzzzz")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"Installed drivers: {_installed()}." in err
    assert "Did you mean" not in err


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fakedriver:nothing", "module 'fakedriver' has no attribute 'nothing'"),
        ("nomodule_xyz:harness", "no module named 'nomodule_xyz'"),
        ("fakedriver:EVENTS", "which is not a DriverHarness instance, a subclass of it, or a factory"),
        ("fakedriver:Capabilities", "names the class Capabilities, which is not a DriverHarness"),
        ("fakedriver:DriverHarness", "DriverHarness is abstract; implement producer_module, worker_module"),
        ("fakedriver:boom", "the factory raised RuntimeError: no storage configured"),
        ("notharness", "the module has no attribute 'harness'"),
        ("brokenimport", "importing the module failed: No module named 'missing_dependency_xyz'"),
    ],
)
def test_resolution_errors_are_usage_errors(kit: Kit, spec: str, message: str) -> None:
    kit.driver(extra="\n\ndef boom():\n    raise RuntimeError('no storage configured')\n")
    kit.pytester.makepyfile(notharness="X = 1\n", brokenimport="import missing_dependency_xyz\n")
    result = kit.run(f"--nestq-driver={spec}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_contradictory_manifest_is_an_error_at_session_start(kit: Kit) -> None:
    kit.driver(caps={"dead_letters": True, "durability": "durable"})
    result = kit.run("--nestq-driver=fakedriver")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "driver 'fake' (--nestq-driver) declares a capability manifest that contradicts itself" in err
    assert "dead_letters without retries" in err
    assert "durable without cross_process" in err


def test_expected_failures_keys_must_be_rule_ids(kit: Kit) -> None:
    kit.driver(xfail={"fifo": "not yet"})
    result = kit.run("--nestq-driver=fakedriver")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "expected_failures keys must be rule ids like 'DLV-004', found ['fifo']" in result.stderr.str()


def test_header_names_harness_manifest_and_suite(kit: Kit) -> None:
    kit.driver(caps={"retries": True, "max_attempts": 3}, xfail={"ZZA-001": "known"})
    result = kit.run("--nestq-driver=fakedriver", "--nestq-timeout-scale=2.5", "--collect-only")
    out = result.stdout.str()
    assert "nestq: harness: fake storage, no server" in out
    assert "nestq: manifest: durability='ephemeral', delivery='at-most-once'" in out
    assert "retries=True, max_attempts=3" in out
    assert (
        f"nestq: custom suite (not the shipped one) at {kit.suite}: collected beside the given paths; timeout scale 2.5"
        in out
    )
    assert "nestq: expected failures declared: ZZA-001" in out


def test_bad_timeout_scale_is_a_usage_error(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    kit.driver()
    monkeypatch.setenv("NESTQ_TIMEOUT_SCALE", "-1")
    result = kit.run("--nestq-driver=fakedriver")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "env NESTQ_TIMEOUT_SCALE='-1' is not a positive number" in result.stderr.str()


def _installed() -> str:
    # scripts/test.sh installs every driver project under reference_drivers/ into the same environment, so the
    # list is whatever is installed: memory and redis always, the others when their projects are.
    from importlib.metadata import entry_points

    names = sorted(ep.name for ep in entry_points(group="nestq.drivers"))
    assert {"memory", "redis"} <= set(names)
    return ", ".join(names)
