"""The plugin and the commands with the real suite and the in-memory reference driver."""

from __future__ import annotations

import json
import sys

import jsonschema
import pytest
from nestq_conformance.report import REPORT_FILES, load_schema

from .conftest import COMMON, load_json

AREAS = {"CFG", "CTX", "DLV", "DSP", "DUR", "ENV", "FLR", "LIF", "PRD", "SCH"}


@pytest.fixture
def real(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for name in ("NESTQ_DRIVER", "NESTQ_TIMEOUT_SCALE", "NESTQ_SUITE_PATH", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)
    return pytester


def test_rules_catalogue_comes_from_the_suite(real: pytest.Pytester) -> None:
    result = real.run(sys.executable, "-m", "nestq_spec.cli", "rules", "--json")
    assert result.ret == 0
    entries = json.loads(result.stdout.str())
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)) >= 50
    assert {e["area"] for e in entries} >= AREAS
    assert all(e["title"] and e["hint"] and e["level"] in ("MUST", "SHOULD", "MAY") for e in entries)


def test_empty_folder_collects_every_rule_of_the_real_suite(real: pytest.Pytester) -> None:
    catalogue = json.loads(real.run(sys.executable, "-m", "nestq_spec.cli", "rules", "--json").stdout.str())
    result = real.runpytest_subprocess(*COMMON, "--nestq-driver=memory", "--collect-only", "-q")
    assert result.ret == 0
    collected = "\n".join(result.outlines)
    missing = [e["function"] for e in catalogue if f"::{e['function']}" not in collected]
    assert missing == []


def test_check_memory_is_green(real: pytest.Pytester) -> None:
    result = real.run(sys.executable, "-m", "nestq_spec.cli", "check", "--report", "card", timeout=300)
    out = result.stdout.str()
    assert result.ret == 0, out + result.stderr.str()
    assert "nestq check: driver memory (entry point nestq.drivers:memory -> nestq_memory.harness:harness)" in out
    data = load_json(real.path / "card" / REPORT_FILES["json"])
    jsonschema.Draft202012Validator(load_schema()).validate(data)
    assert data["ok"] is True
    assert data["notice"] is None
    broken = {r["id"]: r["reason"] for r in data["rules"] if r["outcome"] in ("failed", "error", "xpassed")}
    assert broken == {}
    assert data["totals"]["passed"] >= 40
    badge = load_json(real.path / "card" / REPORT_FILES["badge"])
    assert badge["color"] == "brightgreen"


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["-o", "asyncio_mode=auto"], id="asyncio-auto"),
        pytest.param(["-o", "asyncio_mode=strict"], id="asyncio-strict"),
        pytest.param(["-p", "no:asyncio"], id="anyio-only"),
    ],
)
def test_real_suite_beside_project_tests_under_async_modes(real: pytest.Pytester, args: list[str]) -> None:
    real.makepyfile(
        test_own="""
        import anyio
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        async def test_own_async():
            await anyio.sleep(0)
        """
    )
    result = real.runpytest_subprocess(*COMMON, "--nestq-driver=memory", "-k", "PRD or DSP or own", *args)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes["passed"] >= 6
    result.stdout.fnmatch_lines(["*nestq: driver 'memory' from --nestq-driver ('memory'): entry point*"])


def test_check_with_k_is_partial_and_its_badge_is_not_green(real: pytest.Pytester) -> None:
    result = real.run(
        sys.executable, "-m", "nestq_spec.cli", "check", "memory", "-k", "CFG-001", "--report", "card", timeout=300
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["PARTIAL (PASS; left out: * rules did not run (-k 'CFG-001'): CFG-002, *): 1/1 MUST*"])
    data = load_json(real.path / "card" / REPORT_FILES["json"])
    jsonschema.Draft202012Validator(load_schema()).validate(data)
    assert data["complete"] is False
    assert data["suite_version"] != "custom"
    badge = load_json(real.path / "card" / REPORT_FILES["badge"])
    assert badge["color"] != "brightgreen"
    assert badge["message"].startswith("partial: ")
    assert "**PARTIAL (PASS; left out:" in (real.path / "card" / REPORT_FILES["markdown"]).read_text("utf-8")


def test_full_run_is_complete(real: pytest.Pytester) -> None:
    result = real.runpytest_subprocess(*COMMON, "--nestq-driver=memory", "--nestq-report=card", "-q", timeout=300)
    assert result.ret == 0, result.stdout.str()
    data = load_json(real.path / "card" / REPORT_FILES["json"])
    assert data["complete"] is True, data["left_out"]
    assert data["left_out"] == []


DECLARES_WITHOUT_PROBE = """
from nestq_conformance import DriverHarness
from nestq_memory.harness import harness as memory


class NoProbes(DriverHarness):
    name = "noprobes"
    capabilities = memory.capabilities  # dead_letters, delayed_jobs and priority declared, no probe implemented
    settings_class = memory.settings_class

    def producer_module(self, settings):
        return memory.producer_module(settings)

    def worker_module(self, settings):
        return memory.worker_module(settings)


harness = NoProbes()
"""


def test_declared_capability_without_its_probe_is_a_manifest_error(real: pytest.Pytester) -> None:
    real.makepyfile(noprobes=DECLARES_WITHOUT_PROBE)
    result = real.run(sys.executable, "-m", "nestq_spec.cli", "check", "noprobes", "--report", "card", timeout=300)
    assert result.ret == 2, result.stdout.str() + result.stderr.str()
    text = result.stdout.str() + result.stderr.str()
    assert "capability 'dead_letters'" in text
    assert "needs the dead_letters probe, which the harness does not implement" in text
    assert "needs the push_delayed probe" in text
    assert "needs the push_with_priority probe" in text
    assert "passed" not in result.stdout.str()
    assert not (real.path / "card" / REPORT_FILES["json"]).exists()


def test_unreachable_storage_is_one_environment_error(real: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("redis")
    monkeypatch.setenv("NESTQ_REDIS__URL", "redis://user:s3cr%2Ft@127.0.0.1:1/0")
    result = real.run(sys.executable, "-m", "nestq_spec.cli", "check", "redis", "--report", "card", timeout=60)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == 2, text
    assert text.count("environment error") == 1, text
    assert "driver 'redis'" in text
    assert "127.0.0.1:1" in text
    assert "s3cr" not in text
    assert "PASS" not in text
    assert "FAIL" not in text
    data = load_json(real.path / "card" / REPORT_FILES["json"])
    assert data["environment_error"] is not None
    assert "s3cr" not in json.dumps(data)
    assert data["rules"] == []
    assert load_json(real.path / "card" / REPORT_FILES["badge"])["message"] == "environment error"


def test_driver_raising_on_import_shows_file_and_line(real: pytest.Pytester) -> None:
    real.makepyfile(brokenimport="settings = {}\nURL = settings['missing']\n")
    result = real.run(sys.executable, "-m", "nestq_spec.cli", "check", "brokenimport", timeout=60)
    assert result.ret == 2
    err = result.stderr.str()
    assert "KeyError: 'missing'" in err
    assert 'brokenimport.py", line 2' in err


SEEING_HARNESS = '''
from pathlib import Path

from nestq_memory.harness import MemoryHarness


class SeeingHarness(MemoryHarness):
    def session_start(self):
        seen = sorted(self.selected_requires) if self.selected_requires is not None else None
        Path(__file__).with_name("selected.txt").write_text(repr(seen))
        super().session_start()


harness = SeeingHarness()
'''


@pytest.mark.parametrize(("select", "expected"), [("DUR-005 or ENV-004", ["storage_restart"]), ("ENV-004", [])])
def test_the_harness_knows_what_the_selected_rules_require_before_its_session_starts(
    real: pytest.Pytester, select: str, expected: list[str]
) -> None:
    """``selected_requires``: what lets a harness prepare storage only some selected rules need (RabbitMQ's node)."""
    real.makepyfile(seeing=SEEING_HARNESS)
    real.syspathinsert()
    result = real.runpytest_subprocess(*COMMON, "--nestq-driver=seeing:harness", "-k", select, "-q")
    assert result.ret == 0, result.stdout.str()
    assert (real.path / "selected.txt").read_text() == repr(expected)
