"""One real ``nestq matrix`` run of the in-memory reference driver (with ``--bench``), shared by this folder's tests.

The real-run tests stay cheap: the memory driver only (about 20 s here), run once per session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class MatrixRun:
    """Where the run wrote its files, and what it printed."""

    report: Path
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def memory_matrix(tmp_path_factory: pytest.TempPathFactory) -> MatrixRun:
    report = tmp_path_factory.mktemp("matrix") / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("NESTQ_DRIVER", "NESTQ_SUITE_PATH", "PYTEST_ADDOPTS")}
    done = subprocess.run(
        [sys.executable, "-m", "nestq_spec.cli", "matrix", "memory", "--bench", "--bench-n", "200",
         "--bench-latency-samples", "20", "--report", str(report)],
        capture_output=True,
        text=True,
        env=env,
        cwd=report.parent,
        timeout=600,
        check=False,
    )
    return MatrixRun(report, done.returncode, done.stdout, done.stderr)
