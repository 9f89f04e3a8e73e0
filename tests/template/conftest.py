"""Rendering the cookiecutter template, and one fresh virtual environment shared by the session's generated projects.

Rendering goes through the cookiecutter API with ``no_input`` and ``default_config=True`` (never the user's
``~/.cookiecutterrc``); the replay and cache folders cookiecutter writes to are redirected into the session's
temporary folder, so a test run leaves nothing in the home directory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cookiecutter import config as cookiecutter_config
from cookiecutter.main import cookiecutter

from .helpers import REPO, TEMPLATE, Render, Venv


@pytest.fixture(scope="session")
def render(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Render]:
    """``render(output_dir, **answers)``: generate a project from the template; return its folder."""
    home = tmp_path_factory.mktemp("cookiecutter-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(cookiecutter_config.DEFAULT_CONFIG, "replay_dir", str(home / "replay"))
        mp.setitem(cookiecutter_config.DEFAULT_CONFIG, "cookiecutters_dir", str(home / "cookiecutters"))

        def do(output_dir: Path, **answers: str) -> Path:
            made = cookiecutter(
                str(TEMPLATE),
                no_input=True,
                extra_context=answers,
                output_dir=str(output_dir),
                default_config=True,
            )
            return Path(made)

        yield do


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """One fresh venv per session with this repository installed (not editable, as a user would install it)."""
    root = tmp_path_factory.mktemp("driver-venv") / "venv"
    started = time.monotonic()
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(root)], capture_output=True, text=True, timeout=300, check=False
    )
    assert made.returncode == 0, f"python -m venv failed: {made.stdout}{made.stderr}"
    env = Venv(root)
    env.pip_install(REPO)
    env.timings["venv + pip install nestq"] = time.monotonic() - started
    return env
