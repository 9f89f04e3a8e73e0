"""The docs site: ``mkdocs build --strict`` over docs/ passes; a broken link or a page left out of the nav fails CI."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _need_mkdocs() -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        message = "mkdocs and mkdocs-material are not installed (the dev extra has them)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        cwd=config.parent,
        env=env,
        timeout=300,
        check=False,
    )


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nestq_mkdocs_hooks", REPO / "scripts" / "mkdocs_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_site_builds_strictly(tmp_path: Path) -> None:
    _need_mkdocs()
    done = _build(REPO / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("index.html", "rules/index.html", "matrix/index.html", "drivers/redis/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    matrix = (tmp_path / "site" / "matrix" / "index.html").read_text(encoding="utf-8")
    assert "Generated " in matrix, "docs/matrix.md holds a generated matrix (see its first lines)"
    assert "by <code>nestq matrix" in matrix
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in index, "the site makes no third-party request (theme.font: false)"


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    _need_mkdocs()
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "docs", copy / "docs")
    shutil.copy2(REPO / "mkdocs.yml", copy / "mkdocs.yml")
    (copy / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "mkdocs_hooks.py", copy / "scripts" / "mkdocs_hooks.py")
    index = copy / "docs" / "index.md"
    index.write_text(index.read_text(encoding="utf-8") + "\nSee [the missing page](no-such-page.md).\n", "utf-8")
    done = _build(copy / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stdout + done.stderr


def test_links_out_of_docs_name_the_repository_file() -> None:
    rewrite = _hooks().rewrite
    assert rewrite("the [README](../README.md)'s quickstart", "index.md") == "the README (`README.md`)'s quickstart"
    assert rewrite("[`tests/example_app/`](../tests/example_app/)", "example-app.md") == "`tests/example_app/`"
    assert (
        rewrite("[`reference_drivers/nestq-sqs/`](../../reference_drivers/nestq-sqs/)", "drivers/sqs.md")
        == "`reference_drivers/nestq-sqs/`"
    )
    kept = "[rules](rules.md), [memory](../drivers/memory.md#x), [site](https://example.invalid/), ![i](../x.png)"
    assert rewrite(kept, "drivers/redis.md") == kept
    fenced = "```md\n[README](../README.md)\n```"
    assert rewrite(fenced, "index.md") == fenced
