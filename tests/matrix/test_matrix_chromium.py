"""The matrix page opened from disk in headless Chromium: no console error, no request, one column per driver and
one row per rule; the screenshot is kept as a test artifact (reports/artifacts/nestq-matrix.png)."""

from __future__ import annotations

import json
import os

import pytest
from nestq_conformance.matrix import MATRIX_FILES

from .cdp import find_chromium, headless_page
from .conftest import REPO, MatrixRun

ARTIFACT = REPO / "reports" / "artifacts" / "nestq-matrix.png"


def test_matrix_page_in_headless_chromium(memory_matrix: MatrixRun) -> None:
    chromium = find_chromium()
    if chromium is None:
        message = "chromium is not installed (scripts/test.sh installs Debian's chromium package)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert memory_matrix.returncode == 0, memory_matrix.stdout + memory_matrix.stderr
    page_path = memory_matrix.report / MATRIX_FILES["html"]
    data = json.loads((memory_matrix.report / MATRIX_FILES["json"]).read_text(encoding="utf-8"))
    url = page_path.as_uri()
    with headless_page(chromium) as page:
        page.send("Page.navigate", {"url": url})
        page.wait_for("Page.loadEventFired")
        drivers = page.evaluate("Array.from(document.querySelectorAll('#matrix thead th.driver'))"
                                ".map(th => th.dataset.driver)")
        rules = page.evaluate("Array.from(document.querySelectorAll('#matrix tbody tr.rule'))"
                              ".map(tr => tr.dataset.rule)")
        shown = page.evaluate("document.getElementById('shown').textContent")
        # The filter works: with "only rules with a failure" on, a green matrix shows no rule.
        page.evaluate("(() => { const box = document.getElementById('only-failures'); box.checked = true;"
                      " box.dispatchEvent(new Event('change')); })()")
        visible_failing = page.evaluate("document.querySelectorAll('#matrix tr.rule:not(.hidden)').length")
        page.evaluate("(() => { const box = document.getElementById('only-failures'); box.checked = false;"
                      " box.dispatchEvent(new Event('change')); })()")
        page.screenshot(ARTIFACT)
        errors = page.console_errors()
        requests = [u for u in page.requests() if u != url]
    assert errors == []
    assert requests == [], "the page is self-contained: it fetches nothing"
    assert drivers == [d["key"] for d in data["drivers"]]
    assert rules == [r["id"] for r in data["rules"]]
    assert len(rules) == data["summary"]["rules"]
    assert shown == str(len(rules))
    assert visible_failing == 0
    assert ARTIFACT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
