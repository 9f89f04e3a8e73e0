"""Helpers of the template tests: a fresh virtual environment, commands run in it, a generated project's suite run."""

from __future__ import annotations

import json
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template"

# Variables of the outer test run that must not leak into a generated project's own pytest run.
_LEAKY_PREFIXES = ("NESTQ_", "PYTEST_", "COV_CORE_", "COVERAGE_")
_LEAKY = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTEST_ADDOPTS"}

Render = Callable[..., Path]
"""``render(output_dir, **answers) -> project folder`` (the ``render`` fixture)."""


@dataclass
class Run:
    """A finished command in the session's virtual environment."""

    args: Sequence[str]
    returncode: int
    output: str
    seconds: float

    def describe(self) -> str:
        """The command, its exit code and the end of its output, for assertion messages."""
        return f"$ {' '.join(self.args)}\n(exit {self.returncode}, {self.seconds:.1f}s)\n{self.output[-6000:]}"


@dataclass
class Venv:
    """A fresh virtual environment (``python -m venv``) with this repository installed into it."""

    root: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def env(self) -> dict[str, str]:
        """The environment commands run in: this venv first on PATH, nothing of the outer pytest run."""
        env = {
            k: v for k, v in os.environ.items() if k not in _LEAKY and not k.startswith(_LEAKY_PREFIXES)
        }
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def run(self, *args: str | Path, cwd: Path | None = None, timeout: float = 600) -> Run:
        """Run ``args`` (``python`` means this venv's interpreter) and return what happened; never raises on exit."""
        argv = [str(self.python) if a == "python" else str(a) for a in args]
        started = time.monotonic()
        done = subprocess.run(
            argv, cwd=cwd, env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
        )
        return Run(argv, done.returncode, done.stdout, time.monotonic() - started)

    def pip_install(self, *args: str | Path) -> Run:
        """``pip install`` into the venv; fail the test with pip's output when it does not succeed."""
        done = self.run("python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args)
        assert done.returncode == 0, f"pip install failed:\n{done.describe()}"
        return done


@dataclass
class SuiteRun:
    """A generated project's ``pytest --nestq-report=reports --junitxml=...`` run, with its outputs read back."""

    run: Run
    report: dict[str, Any]
    junit: ET.Element

    @property
    def rules(self) -> dict[str, dict[str, Any]]:
        """The report's rules by id."""
        return {r["id"]: r for r in self.report["rules"]}

    def outcomes(self, outcome: str) -> dict[str, str]:
        """Rule id -> reason of the rules with ``outcome``."""
        return {r["id"]: r["reason"] or "" for r in self.report["rules"] if r["outcome"] == outcome}

    def own_tests(self) -> dict[str, str]:
        """The project's own tests (tests/...) by name -> ``passed``, ``failed``, ``error`` or ``skipped``."""
        found = {}
        for case in self.junit.iter("testcase"):
            if not case.get("classname", "").startswith("tests."):
                continue
            kinds = {child.tag for child in case}
            outcome = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
            found[f"{case.get('classname')}::{case.get('name')}"] = {"failure": "failed"}.get(outcome, outcome)
        return found


def run_suite(venv: Venv, project: Path, *extra: str) -> SuiteRun:
    """Run the project's pytest (its tests plus the conformance suite) and read its report and JUnit XML back."""
    reports = project / "reports"
    junit = project / "junit.xml"
    done = venv.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "--nestq-report=reports",
        f"--junitxml={junit}", *extra, cwd=project,
    )
    report_file = reports / "nestq-report.json"
    assert report_file.is_file(), f"no report written:\n{done.describe()}"
    return SuiteRun(done, json.loads(report_file.read_text("utf-8")), ET.parse(junit).getroot())
