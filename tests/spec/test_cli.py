"""The ``nestq run module:Root`` command: bad specs, a producer-only root, and a real process stopped by a signal."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from nestq_spec import NestqError
from nestq_spec.cli import load_object, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nocolon", "nestq: error: expected 'module:attribute', found 'nocolon'"),
        (":Root", "nestq: error: expected 'module:attribute', found ':Root'"),
        ("tests.example_app.app:", "nestq: error: expected 'module:attribute', found 'tests.example_app.app:'"),
        ("no_such_package_zz.app:Root", "nestq: error: cannot import 'no_such_package_zz.app': No module named"),
        ("tests.example_app.app:Missing", "nestq: error: 'tests.example_app.app' has no attribute 'Missing'"),
        ("tests.example_app.app:WorkerModule.nope", "has no attribute 'WorkerModule.nope'"),
        ("os:path", "is not a module; use @module, subclass Module, or a for_root(...) result"),
    ],
)
def test_bad_root_specs_exit_2_with_a_clear_error(spec: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", spec]) == 2
    assert expected in capsys.readouterr().err


def test_a_producer_only_root_returns_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tests.example_app.app:ApiModule"]) == 0


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage: nestq" in capsys.readouterr().err


def test_load_object_follows_dotted_attributes() -> None:
    from tests.example_app.app import WorkerModule

    assert load_object("tests.example_app.app:WorkerModule") is WorkerModule
    assert load_object("tests.example_app.app:WorkerModule.imports") is WorkerModule.imports  # type: ignore[attr-defined]
    with pytest.raises(NestqError, match="expected 'module:attribute'"):
        load_object("tests.example_app.app")


class Running:
    """A ``nestq run`` child process whose stderr lines are collected by a thread (so waits can have deadlines)."""

    def __init__(self, *args: str) -> None:
        script = Path(sys.executable).with_name("nestq")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "nestq_spec.cli"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [*command, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for_line(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                line = ""
            if line is None or remaining <= 0:
                self.process.kill()
                raise AssertionError(f"no stderr line containing {text!r} within {timeout}s; got {self.lines}")
            self.lines.append(line)

    def wait_exit(self, timeout: float = 20.0) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(
                f"nestq run did not exit within {timeout}s of the signal; stderr: {self.lines}"
            ) from None
        while (line := self._queue.get(timeout=5)) is not None:  # the reader ends with None at end of stream
            self.lines.append(line)
        return code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_nestq_run_serves_until_a_signal_and_exits_cleanly(sig: signal.Signals) -> None:
    child = Running("run", "tests.example_app.app:WorkerModule", "--shutdown-timeout", "10")
    try:
        child.wait_for_line("WorkerModule serving FakeWorker")
        child.process.send_signal(sig)
        code = child.wait_exit()
    finally:
        if child.process.poll() is None:
            child.process.kill()
    assert code == 0, child.lines
    assert any(f"received {sig.name}; shutting down" in line for line in child.lines), child.lines
    assert not any("Traceback" in line for line in child.lines), child.lines


def _with_commands(monkeypatch: pytest.MonkeyPatch, *eps: EntryPoint) -> None:
    monkeypatch.setattr("nestq_spec.cli.entry_points", lambda group: list(eps) if group == "nestq.commands" else [])


def test_a_subcommand_whose_dependency_is_missing_stays_quiet_until_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_commands(monkeypatch, EntryPoint("ghost", "nestq_ghost_zz.cli:command", "nestq.commands"))
    assert main(["run", "tests.example_app.app:ApiModule"]) == 0
    assert "ghost" not in capsys.readouterr().err
    assert main(["ghost", "dead", "list", "q"]) == 2
    err = capsys.readouterr().err
    assert "subcommand 'ghost' (nestq_ghost_zz.cli:command) cannot load:" in err
    assert "module 'nestq_ghost_zz' is not installed" in err
    assert "pip install 'nestq[ghost]'" in err


def _fine_command(sub: Any) -> None:
    parser = sub.add_parser("fine", help="a plugin that loads")
    parser.set_defaults(func=lambda args: 0)


def test_a_broken_subcommand_is_reported_and_the_others_still_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _with_commands(monkeypatch, EntryPoint("broken", "nestq_spec.cli:no_such_function", "nestq.commands"),
                   EntryPoint("fine", "tests.spec.test_cli:_fine_command", "nestq.commands"))
    assert main(["fine"]) == 0
    assert main(["run", "tests.example_app.app:ApiModule"]) == 0
    assert "broken" not in capsys.readouterr().err  # only the named subcommand is imported
    with pytest.raises(SystemExit):
        main(["broken"])
    assert "subcommand 'broken' (nestq_spec.cli:no_such_function) failed to load" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])  # the help loads every subcommand, to list each with its own description
    captured = capsys.readouterr()
    assert "failed to load" in captured.err
    assert "a plugin that loads" in captured.out


def test_nestq_run_imports_no_subcommand_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []

    class Recording(EntryPoint):
        def load(self) -> Any:
            loaded.append(self.name)
            return super().load()

    _with_commands(monkeypatch, Recording("fine", "tests.spec.test_cli:_fine_command", "nestq.commands"))
    assert main(["-v", "run", "tests.example_app.app:ApiModule"]) == 0
    assert loaded == []
    assert main(["fine"]) == 0
    assert loaded == ["fine"]
