"""``nestq matrix memory --bench`` for real: every cell and bench figure true to the driver's own files."""

from __future__ import annotations

import json

import jsonschema
from nestq_conformance.catalogue import load_catalogue
from nestq_conformance.matrix import MATRIX_FILES, cell_of, load_matrix_schema
from nestq_conformance.report import REPORT_FILES, load_schema

from .conftest import MatrixRun


def test_matrix_of_the_memory_driver_is_true_to_its_report(memory_matrix: MatrixRun) -> None:
    assert memory_matrix.returncode == 0, memory_matrix.stdout + memory_matrix.stderr
    data = json.loads((memory_matrix.report / MATRIX_FILES["json"]).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(load_matrix_schema()).validate(data)
    report_path = memory_matrix.report / "memory" / REPORT_FILES["json"]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(load_schema()).validate(report)
    (driver,) = data["drivers"]
    assert driver["report"] == "memory/" + REPORT_FILES["json"]
    assert driver["verdict"] == "PASS"
    assert driver["complete"] is True
    assert driver["manifest"] == report["manifest"]
    assert driver["suite_hash"] == report["suite_hash"] == data["suite_hash"]
    # One row per rule of the installed suite: whatever rules it has today.
    catalogue = {e.rule.id for e in load_catalogue()}
    assert {r["id"] for r in data["rules"]} == catalogue
    assert len(data["rules"]) == len(catalogue)
    by_id = {r["id"]: r for r in report["rules"]}
    for row in data["rules"]:
        cell = row["cells"]["memory"]
        rule = by_id[row["id"]]
        assert (cell["status"], cell["outcome"], cell["reason"]) == (cell_of(rule), rule["outcome"], rule["reason"])
    assert data["summary"]["cells"]["memory"]["passed"] == report["totals"]["passed"]
    assert data["summary"]["cells"]["memory"]["not-declared"] == report["totals"]["not_declared"]


def test_bench_row_group_is_true_to_the_bench_report(memory_matrix: MatrixRun) -> None:
    data = json.loads((memory_matrix.report / MATRIX_FILES["json"]).read_text(encoding="utf-8"))
    bench = json.loads((memory_matrix.report / "memory" / "nestq-bench.json").read_text(encoding="utf-8"))
    figures = data["drivers"][0]["bench"]["figures"]
    assert bench["options"]["n"] == data["bench"]["n"] == 200
    assert figures["enqueue_jobs_per_s"] == bench["results"]["enqueue_single"]["jobs_per_s"]
    assert figures["e2e_jobs_per_s"] == bench["results"]["end_to_end"]["jobs_per_s"]
    assert figures["latency_p50_ms"] == bench["results"]["latency"]["p50_ms"]
    md = (memory_matrix.report / MATRIX_FILES["markdown"]).read_text(encoding="utf-8")
    assert "## Bench (`nestq bench`, N=200, 20 latency samples)" in md
    assert f"| end-to-end, one worker | {figures['e2e_jobs_per_s']:,.0f}/s |" in md
