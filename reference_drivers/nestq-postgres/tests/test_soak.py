"""The fault test of the issue: 2,000 jobs, workers SIGKILLed mid-job 5 times, PostgreSQL restarted once: 0 lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nestq_postgres.server import find_bindir

SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"


def test_sigkilled_workers_and_a_postgres_restart_lose_no_job() -> None:
    if find_bindir() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no PostgreSQL server binaries (initdb, pg_ctl) for the soak's private cluster")
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl)")
    done = subprocess.run([sys.executable, str(SOAK), "--jobs", "2000", "--kills", "5", "--restarts", "1"],
                          capture_output=True, text=True, timeout=600, check=False)
    summary = done.stdout.strip().splitlines()
    assert done.returncode == 0, f"soak failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    assert any(line.startswith("pushed 2000, run 2000, lost 0,") for line in summary), done.stdout
