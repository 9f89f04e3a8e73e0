"""The whole conformance suite against the Redis driver: a real redis-server, and the embedded fakeredis.

With no ``NESTQ_REDIS__URL`` the harness starts its own redis-server, which is what lets it test storage restarts.

Both run ``nestq check redis`` in a subprocess, as a driver author would, and read the JSON report rather than the
terminal output, so a failure lists the rules that broke.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from nestq_conformance.report import REPORT_FILES
from nestq_redis_testkit import require_redis_server

CAPABILITY_AREAS = ("DUR", "FLR", "SCH", "DLV")


def _check(url: str | None, report: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NESTQ_", "PYTEST_"))}
    if url is not None:
        env["NESTQ_REDIS__URL"] = url
    result = subprocess.run(
        [sys.executable, "-m", "nestq_spec.cli", "check", "redis", "--report", str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    report_file = report / REPORT_FILES["json"]
    assert report_file.exists(), f"nestq check wrote no report (exit {result.returncode}):\n{output}"
    data: dict[str, object] = json.loads(report_file.read_text())
    rules = data["rules"]
    assert isinstance(rules, list)
    broken = {r["id"]: r["reason"] for r in rules if r["outcome"] not in ("passed", "skipped")}
    assert broken == {}, output
    assert result.returncode == 0, output
    return data


def _outcomes(data: dict[str, object]) -> dict[str, str]:
    rules = data["rules"]
    assert isinstance(rules, list)
    return {r["id"]: r["outcome"] for r in rules}


def test_the_whole_suite_passes_against_a_real_redis_server(tmp_path: Path) -> None:
    require_redis_server()
    data = _check(None, tmp_path)
    assert "private redis-server" in json.dumps(data)
    outcomes = _outcomes(data)
    skipped = sorted(rule for rule, outcome in outcomes.items() if outcome == "skipped")
    # The driver declares every capability the suite knows, so against a real server nothing may be skipped.
    assert skipped == []
    assert len(outcomes) >= 60


def test_the_whole_suite_passes_against_embedded_fakeredis(tmp_path: Path) -> None:
    pytest.importorskip("fakeredis")
    outcomes = _outcomes(_check("fakeredis://suite", tmp_path))
    ran = [rule for rule, outcome in outcomes.items() if outcome == "passed"]
    assert any(rule.startswith(CAPABILITY_AREAS) for rule in ran)
    assert len(ran) >= 60
