"""The template renders through the cookiecutter API: bad names are refused, good ones give a clean project."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException

from .helpers import REPO, Render

EXPECTED_FILES = {
    ".github/workflows/conformance.yml",
    ".gitignore",
    "README.md",
    "pyproject.toml",
    "tox.ini",
    "src/nestq_sqs/__init__.py",
    "src/nestq_sqs/config.py",
    "src/nestq_sqs/connection.py",
    "src/nestq_sqs/harness.py",
    "src/nestq_sqs/module.py",
    "src/nestq_sqs/py.typed",
    "src/nestq_sqs/worker.py",
    "tests/test_config.py",
    "tests/test_harness.py",
}


@pytest.fixture(scope="module")
def sqs(render: Render, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default render (technology ``sqs``)."""
    return render(tmp_path_factory.mktemp("render-default"))


def _files(project: Path) -> dict[str, str]:
    return {
        p.relative_to(project).as_posix(): p.read_text("utf-8")
        for p in sorted(project.rglob("*"))
        if p.is_file() and not any(part.endswith("_cache") for part in p.parts)
    }


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        pytest.param({"technology": ""}, "technology is empty", id="empty"),
        pytest.param({"technology": "   "}, "technology is empty", id="blank"),
        pytest.param({"technology": "my queue"}, "technology 'my queue' is not a valid driver name", id="spaces"),
        pytest.param({"technology": "a" * 25}, "is 25 characters long; keep it to 24", id="too-long"),
        pytest.param(
            {"package_name": "nestq-sqs"},
            "package_name 'nestq-sqs' is not a Python identifier, so it cannot be imported",
            id="not-an-identifier",
        ),
        pytest.param(
            {"package_name": "9lives"}, "package_name '9lives' is not a Python identifier", id="leading-digit"
        ),
        pytest.param(
            {"technology": "spec"},
            "package_name 'nestq_spec' clashes with the package 'nestq_spec' that nestq itself installs",
            id="clash-nestq_spec",
        ),
        pytest.param(
            {"package_name": "nestq_conformance"},
            "package_name 'nestq_conformance' clashes with the package 'nestq_conformance'",
            id="clash-nestq_conformance",
        ),
        pytest.param({"technology": "memory"}, "clashes with the package 'nestq_memory'", id="clash-nestq_memory"),
        pytest.param({"technology": "redis"}, "clashes with the package 'nestq_redis'", id="clash-nestq_redis"),
        pytest.param({"package_name": "class"}, "package_name 'class' is a Python keyword", id="keyword"),
        pytest.param(
            {"package_name": "asyncio"},
            "package_name 'asyncio' clashes with the standard library module",
            id="stdlib",
        ),
        pytest.param(
            {"distribution_name": "nestq sqs"}, "distribution_name 'nestq sqs' is not a valid", id="distribution"
        ),
    ],
)
def test_bad_names_are_refused_with_a_message(
    render: Render, tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, str], message: str
) -> None:
    with pytest.raises(FailedHookException):
        render(tmp_path, **answers)
    err = capfd.readouterr().err
    assert "nestq driver template: cannot generate the project:" in err
    assert message in err, err
    assert list(tmp_path.iterdir()) == [], "a refused project must leave no folder behind"


def test_default_render_has_the_seed_shape(sqs: Path) -> None:
    files = _files(sqs)
    assert sqs.name == "nestq-sqs"
    assert set(files) == EXPECTED_FILES
    for name, text in files.items():
        leftovers = re.findall(r"(?<!\$)\{\{|\{%|cookiecutter\.", text)
        assert not leftovers, f"{name} has unrendered template syntax: {leftovers}"
    # The storage primitives are numbered markers raising with file, number and what to write; the loop is the
    # library's (nestq_spec.driverkit.QueueWorker), so none of it is rendered.
    connection = files["src/nestq_sqs/connection.py"]
    worker = files["src/nestq_sqs/worker.py"]
    assert '_MARK = "src/nestq_sqs/connection.py marker"' in connection
    assert "{_MARK} (1): connect to your storage" in connection
    assert "{_MARK} (2): push `data` (the encoded envelope, bytes) onto your storage" in connection
    assert "data = encode_job(queue, payload)" not in connection
    assert "class SqsWorker(QueueWorker[Any]):" in worker
    assert '_MARK = "src/nestq_sqs/worker.py marker"' in worker
    for number in ("(3)", "(4)", "(5)", "(6)", "(7)", "(8)"):
        assert f"{{_MARK}} {number}:" in worker, number
    for loop_part in ("asyncio", "dispatch(", "CancellationToken", "routes("):
        assert loop_part not in worker, f"the rendered worker still carries loop code: {loop_part}"
    assert files["src/nestq_sqs/py.typed"] == ""


def test_pyproject_registers_the_driver_and_runs_the_suite(sqs: Path) -> None:
    data = tomllib.loads((sqs / "pyproject.toml").read_text("utf-8"))
    project = data["project"]
    assert project["name"] == "nestq-sqs"
    assert any(dep.startswith("nestq") for dep in project["dependencies"])
    assert project["entry-points"]["nestq.drivers"] == {"sqs": "nestq_sqs.harness:harness"}
    assert data["build-system"]["build-backend"] == "hatchling.build"
    assert data["tool"]["pytest"]["ini_options"]["nestq_driver"] == "sqs"
    assert data["tool"]["mypy"]["strict"] is True
    harness = (sqs / "src/nestq_sqs/harness.py").read_text("utf-8")
    assert 'durability="ephemeral"' in harness
    assert 'delivery="at-most-once"' in harness
    assert 'ordering="none"' in harness
    config = (sqs / "src/nestq_sqs/config.py").read_text("utf-8")
    assert '@settings("sqs")' in config


def test_tox_has_lint_type_and_test_envs(sqs: Path) -> None:
    tox = (sqs / "tox.ini").read_text("utf-8")
    assert "envlist = lint, type, test" in tox
    for section, command in (("lint", "ruff check ."), ("type", "mypy"), ("test", "pytest --nestq-report=reports")):
        assert f"[testenv:{section}]" in tox
        assert command in tox


def test_workflow_gates_pull_requests_and_uploads_the_report_card(sqs: Path) -> None:
    text = (sqs / ".github/workflows/conformance.yml").read_text("utf-8")
    workflow = yaml.safe_load(text)
    assert "pull_request" in workflow[True]  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["conformance"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any("pytest --nestq-report=reports" in r for r in runs)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"] == "reports/"
    assert "${{ matrix.python-version }}" in text
    assert f"${{{{ vars.NESTQ_INSTALL || 'nestq @ {REPO.as_uri()}' }}}}" in text


def test_readme_has_the_semantics_to_fill_and_the_commands(sqs: Path) -> None:
    readme = (sqs / "README.md").read_text("utf-8")
    semantics = readme.split("## Semantics", 1)[1].split("\n## ", 1)[0]
    assert "pypi.org" not in readme, "nestq is not on PyPI: the README must not link to a package page"
    for topic in ("Retries", "Ordering", "Visibility timeout", "Dead letters"):
        row = next(line for line in semantics.splitlines() if line.startswith(f"| {topic} |"))
        assert "TODO" in row, row
    for command in (
        'python -m pip install -e ".[dev]"',
        "python -m pytest",
        'grep -rn "marker (" src/nestq_sqs/',
        "python -m pytest --nestq-report=reports",
        "nestq check sqs --report reports",
    ):
        assert command in readme, command


def test_awkward_answers_still_give_valid_files(render: Render, tmp_path: Path) -> None:
    project = render(
        tmp_path,
        technology="Rabbit-MQ",
        author='Jane "JJ" O\'Neil \\ Ünïcode',
        email="",
        description='Quotes " and \' and a backslash \\ survive',
    )
    assert project.name == "nestq-rabbit-mq"
    data = tomllib.loads((project / "pyproject.toml").read_text("utf-8"))
    assert data["project"]["authors"] == [{"name": 'Jane "JJ" O\'Neil \\ Ünïcode'}]
    assert data["project"]["description"] == 'Quotes " and \' and a backslash \\ survive'
    assert data["project"]["entry-points"]["nestq.drivers"] == {"rabbit-mq": "nestq_rabbit_mq.harness:harness"}
    worker = (project / "src/nestq_rabbit_mq/worker.py").read_text("utf-8")
    assert "class RabbitMqWorker(QueueWorker[Any]):" in worker
    config = (project / "src/nestq_rabbit_mq/config.py").read_text("utf-8")
    assert '@settings("rabbit_mq")' in config


def _lint(project: Path) -> None:
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project, capture_output=True, text=True,
        check=False,
    )
    assert ruff.returncode == 0, f"ruff on the generated project:\n{ruff.stdout}{ruff.stderr}"
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(project / ".mypy_cache")], cwd=project,
        capture_output=True, text=True, check=False,
    )
    assert mypy.returncode == 0, f"mypy --strict on the generated project:\n{mypy.stdout}{mypy.stderr}"
    assert "Success: no issues found in 8 source files" in mypy.stdout


def test_generated_project_passes_ruff_and_mypy_strict(sqs: Path) -> None:
    _lint(sqs)


def test_longest_technology_name_still_passes_ruff_and_mypy(render: Render, tmp_path: Path) -> None:
    # Names prefix every class and variable: the longest accepted one must not push lines past the limit.
    _lint(render(tmp_path, technology="postgres-skip-locked-xyz"))


def test_the_next_steps_install_nestq_from_the_checkout_the_template_came_from(
    render: Render, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    render(tmp_path, technology="hint")
    printed = capfd.readouterr().out
    assert f"(nestq from: nestq @ {REPO.as_uri()})" in printed
    assert 'grep -rn "marker (" src/nestq_hint/' in printed


def test_the_project_depends_on_the_nestq_it_was_rendered_from(sqs: Path) -> None:
    data = tomllib.loads((sqs / "pyproject.toml").read_text("utf-8"))
    assert data["project"]["dependencies"] == [f"nestq @ {REPO.as_uri()}"]
    assert data["tool"]["hatch"]["metadata"]["allow-direct-references"] is True
    assert f"nestq @ {REPO.as_uri()}" in (sqs / "tox.ini").read_text("utf-8")
    for name, text in _files(sqs).items():
        assert "nestq>=" not in text, f"{name} names nestq by a bare version range, which no index serves"
        assert "@@NESTQ_REQUIREMENT@@" not in text, name
    assert ".hypothesis/" in (sqs / ".gitignore").read_text("utf-8").splitlines()


def test_a_render_from_a_vcs_requirement_records_it(
    render: Render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NESTQ_REQUIREMENT", "nestq @ git+https://example.org/nestq@abc123")
    project = render(tmp_path, technology="vcs")
    data = tomllib.loads((project / "pyproject.toml").read_text("utf-8"))
    assert data["project"]["dependencies"] == ["nestq @ git+https://example.org/nestq@abc123"]


@pytest.mark.parametrize(
    ("answers", "present", "absent"),
    [
        pytest.param({"connection_style": "path", "wakeups": "polling"}, ["path: str = setting(", "poll_receive"],
                     ["url", "URL", "host: str", "_is_local"], id="path-polling"),
        pytest.param({"connection_style": "host", "wakeups": "notifications"},
                     ["host: str = setting(", "password: str = setting(", "Wakeup()", "marker (3b)"],
                     ["url: str", "path: str"], id="host-notifications"),
        pytest.param({"storage_model": "connection", "wakeups": "blocking"}, ["url: str = setting("],
                     ["extend_leases", "visibility_timeout", "heartbeat", "poll_receive", "poll_interval"],
                     id="connection-blocking"),
    ],
)
def test_the_answers_about_the_storage_render_only_what_applies(
    render: Render, tmp_path: Path, answers: dict[str, str], present: list[str], absent: list[str]
) -> None:
    project = render(tmp_path, technology="shape", **answers)
    source = "\n".join(text for name, text in _files(project).items() if name.startswith(("src/", "tests/")))
    for text in present:
        assert text in source, text
    for text in absent:
        assert text not in source, text
    _lint(project)
