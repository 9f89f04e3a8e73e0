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
