"""``nestq matrix`` with the fake suite: every cell read back from each driver's own report, the files, the errors."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from nestq_conformance.catalogue import load_catalogue
from nestq_conformance.matrix import (
    MARKDOWN_BEGIN,
    MARKDOWN_END,
    MATRIX_FILES,
    MatrixProgress,
    cell_of,
    load_matrix_schema,
    markdown_into,
)
from nestq_conformance.report import REPORT_FILES

from .conftest import Kit, load_json

HANGS_AT_IMPORT = """
import threading

threading.Event().wait()  # a driver whose import never returns: only the matrix's deadline ends its run
"""


class _Table(HTMLParser):
    """Counts what the matrix test looks for: driver header cells, rule rows, and any outside reference."""

    def __init__(self) -> None:
        super().__init__()
        self.drivers: list[str] = []
        self.rules: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "th" and "driver" in classes:
            self.drivers.append(found.get("data-driver") or "")
        if tag == "tr" and "rule" in classes:
            self.rules.append(found.get("data-rule") or "")
        for name in ("src", "href"):
            value = found.get(name) or ""
            if re.match(r"^[a-z]+:", value) or value.startswith("//"):
                self.external.append(value)
        if tag in ("link", "script") and (found.get("src") or found.get("href")):
            self.external.append(str(found))


def assert_cells_match_reports(data: dict[str, Any], base: Path) -> None:
    """Every cell of the matrix says exactly what the driver's own JSON report says."""
    for driver in data["drivers"]:
        key = driver["key"]
        if driver["report"] is None:
            assert all(row["cells"][key]["status"] == "environment-error" for row in data["rules"])
            continue
        report = load_json(base / driver["report"])
        assert driver["name"] == report["driver"]["name"]
        assert driver["manifest"] == report["manifest"]
        assert driver["expected_failures"] == report["expected_failures"]
        assert driver["suite_hash"] == report["suite_hash"]
        assert driver["kit_version"] == report["kit_version"]
        assert driver["timestamp"] == report["timestamp"]
        assert driver["totals"] == report["totals"]
        by_id = {rule["id"]: rule for rule in report["rules"]}
        for row in data["rules"]:
            cell = row["cells"][key]
            rule = by_id.get(row["id"])
            if driver["verdict"] == "ENVIRONMENT ERROR":
                assert cell["status"] == "environment-error"
                continue
            assert cell["status"] == cell_of(rule), (key, row["id"])
            assert cell["outcome"] == (rule["outcome"] if rule else None), (key, row["id"])
            assert cell["reason"] == (rule["reason"] if rule else None), (key, row["id"])


def test_matrix_of_two_drivers_and_a_missing_one(kit: Kit) -> None:
    kit.driver("good", name="good", caps={"ordering": "fifo"})
    kit.driver("mixed", name="mixed", fail=["ZZB-001", "ZZA-001"], xfail={"ZZA-001": "known broken on this storage"})
    result = kit.nestq("matrix", "good", "mixed", "nosuchdriver", "--report", "out")
    out, err = result.stdout.str(), result.stderr.str()
    assert result.ret == 1, out + err

    base = kit.pytester.path / "out"
    data = load_json(base / MATRIX_FILES["json"])
    jsonschema.Draft202012Validator(load_matrix_schema()).validate(data)
    assert [d["key"] for d in data["drivers"]] == ["good", "mixed", "nosuchdriver"]
    # One row per rule of the installed (here: the fake) suite, grouped by area.
    catalogue = [e.rule.id for e in load_catalogue()]
    assert sorted(r["id"] for r in data["rules"]) == sorted(catalogue)
    assert [a["id"] for a in data["areas"]] == ["ZZA", "ZZB"]
    for name in ("good", "mixed"):
        assert (base / name / REPORT_FILES["json"]).is_file(), f"{name}'s own report sits in its folder"
    assert_cells_match_reports(data, base)

    cells = {r["id"]: r["cells"] for r in data["rules"]}
    assert cells["ZZA-001"]["good"]["status"] == "passed"
    assert cells["ZZA-001"]["mixed"]["status"] == "expected-failure"
    assert cells["ZZB-001"]["mixed"]["status"] == "failed"
    assert "seen it broken on purpose" in cells["ZZB-001"]["mixed"]["reason"]
    assert cells["ZZA-002"]["mixed"]["status"] == "not-declared"
    assert cells["ZZA-002"]["good"]["status"] == "passed"
    assert cells["ZZA-003"]["good"]["status"] == "unchecked"  # the fake harness has no dead-letter probe
    assert {c["nosuchdriver"]["status"] for c in cells.values()} == {"environment-error"}
    missing = data["drivers"][2]
    assert missing["verdict"] == "ENVIRONMENT ERROR"
    assert "unknown nestq driver 'nosuchdriver'" in missing["environment_error"]

    # The Markdown: a column per driver, a failure linking to its message, the command that made it.
    md = (base / MATRIX_FILES["markdown"]).read_text(encoding="utf-8")
    assert "| rule | level | good | mixed | nosuchdriver |" in md
    assert "[❌ FAILED](#mixed-zzb-001)" in md, md
    assert "\n### mixed: ZZB-001\n" in md, "the message is a heading, whose anchor every renderer knows"
    assert "[ENVIRONMENT ERROR](#nosuchdriver-environment-error)" in md
    assert "\n### nosuchdriver: environment error\n" in md
    assert "nestq matrix good mixed nosuchdriver --report out" in md
    assert "[PARTIAL (PASS)](good/nestq-report.md)" in md

    # The HTML: one self-contained page, one column per driver, one row per rule.
    page = (base / MATRIX_FILES["html"]).read_text(encoding="utf-8")
    table = _Table()
    table.feed(page)
    assert table.drivers == ["good", "mixed", "nosuchdriver"]
    assert sorted(table.rules) == sorted(catalogue)
    assert table.external == []
    assert 'id="msg-mixed-zzb-001"' in page

    # Progress: one line per driver (no terminal here, so no carriage returns), and the summary on stdout.
    assert "\r" not in err
    # The fake suite is not the shipped one, so each run is partial (its own report says so, and so does the matrix).
    assert re.search(r"^\[1/3\] good: PARTIAL \(PASS\)", err, re.M), err
    assert re.search(r"^\[2/3\] mixed: PARTIAL \(FAIL\)", err, re.M), err
    assert re.search(r"^\[3/3\] nosuchdriver: ENVIRONMENT ERROR", err, re.M), err
    assert re.search(r"^good\s+PARTIAL \(PASS\)\s+", out, re.M), out
    assert "3 driver(s), 7 rules: 1 passing, 1 environment error(s)" in out


def test_matrix_of_passing_drivers_exits_0_prints_json_and_fills_the_docs_page(kit: Kit) -> None:
    kit.driver("good", name="good")
    page = kit.pytester.path / "docs" / "matrix.md"
    page.parent.mkdir()
    page.write_text(f"# The matrix\n\n{MARKDOWN_BEGIN}\n{MARKDOWN_END}\n", encoding="utf-8")
    result = kit.nestq("matrix", "good", "--format", "json", "--markdown-into", str(page), "-q")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    out = result.stdout.str()
    data = json.loads(out[: out.rindex("}") + 1])
    jsonschema.Draft202012Validator(load_matrix_schema()).validate(data)
    assert data["drivers"][0]["verdict"] == "PARTIAL (PASS)"
    assert data["summary"]["passing_drivers"] == 1
    assert result.stderr.str() == "", "-q: no progress lines"
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# The matrix\n\n" + MARKDOWN_BEGIN)
    assert "| rule | level | good |" in text
    assert f"nestq matrix good --markdown-into {page}" in text
    assert "nestq-report.md" not in text, "a page copied elsewhere has no report folders to link to"
    assert "\n# nestq conformance matrix" not in text, "the page has its own title"
    assert "\n### ZZA: The fake area\n" in text, "the block's headings sit one level down"


def test_a_driver_past_its_deadline_is_killed_and_shown_as_an_environment_error(kit: Kit) -> None:
    (kit.pytester.path / "hangs.py").write_text(HANGS_AT_IMPORT, encoding="utf-8")
    result = kit.nestq("matrix", "hangs", "--deadline", "3", "--report", "out")
    assert result.ret == 1
    data = load_json(kit.pytester.path / "out" / MATRIX_FILES["json"])
    (hangs,) = data["drivers"]
    assert hangs["verdict"] == "ENVIRONMENT ERROR"
    assert "did not finish within its deadline" in hangs["environment_error"]
    assert hangs["exit_code"] is None
    assert_cells_match_reports(data, kit.pytester.path / "out")


def test_markdown_into_replaces_only_between_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "matrix.md"
    page.write_text(f"# Title\n\nintro\n\n{MARKDOWN_BEGIN}\nold\n{MARKDOWN_END}\n\nafter\n", encoding="utf-8")
    markdown_into(page, "new table\n")
    assert page.read_text(encoding="utf-8") == (
        f"# Title\n\nintro\n\n{MARKDOWN_BEGIN}\nnew table\n{MARKDOWN_END}\n\nafter\n"
    )
    fresh = tmp_path / "sub" / "fresh.md"
    markdown_into(fresh, "table")
    assert fresh.read_text(encoding="utf-8") == f"{MARKDOWN_BEGIN}\ntable\n{MARKDOWN_END}\n"


def test_progress_rewrites_the_line_in_place_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = MatrixProgress(stream, tty=True)
    progress.update("[1/2] memory: suite running, 10% of the rules, 1 s")
    progress.update("[1/2] memory: suite running, 50% of the rules, 2 s")
    progress.finish("[1/2] memory: PASS")
    assert stream.getvalue() == (
        "\r\x1b[K[1/2] memory: suite running, 10% of the rules, 1 s"
        "\r\x1b[K[1/2] memory: suite running, 50% of the rules, 2 s"
        "\r\x1b[K[1/2] memory: PASS\n"
    )
    plain = io.StringIO()
    progress = MatrixProgress(plain, tty=False)
    progress.update("running")
    progress.finish("[1/2] memory: PASS")
    assert plain.getvalue() == "[1/2] memory: PASS\n"


def test_no_driver_named_means_every_installed_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    import nestq_conformance.matrix as matrix
    from nestq_conformance.resolve import installed_drivers

    from nestq_spec.cli import build_parser

    seen: list[list[str]] = []

    def fake_run_matrix(specs: list[str], report_dir: Path, **kwargs: Any) -> dict[str, Any]:
        seen.append(list(specs))
        raise SystemExit(0)

    monkeypatch.setattr(matrix, "run_matrix", fake_run_matrix)
    argv = ["matrix", "-q"]
    args = build_parser(argv).parse_args(argv)
    with pytest.raises(SystemExit):
        args.func(args)
    assert seen == [installed_drivers()]
    assert seen[0], "the root project registers its reference drivers"


def test_usage_errors_exit_2(kit: Kit) -> None:
    result = kit.nestq("matrix", "good", "--deadline", "0")
    assert result.ret == 2
    assert "--deadline must be > 0" in result.stderr.str()


def test_progress_counts_the_tests_done_from_the_quiet_pytest_lines(tmp_path: Path) -> None:
    from nestq_conformance.matrix import _suite_progress

    log = tmp_path / "nestq-check.log"
    assert _suite_progress(log) == "starting"
    log.write_text("WARNING a driver's log line\n....s..F\n", encoding="utf-8")
    assert _suite_progress(log) == "8 tests done"
    log.write_text("....s..F  [ 40%]\n...x\n", encoding="utf-8")
    assert _suite_progress(log) == "12 tests done (40%)"
