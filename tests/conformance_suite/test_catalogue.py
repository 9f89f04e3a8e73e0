"""docs/rules.md is generated from the suite's @rule declarations and must not drift from them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from nestq_conformance.catalogue import load_catalogue
from nestq_conformance.rulesdoc import AREA_ORDER, render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def test_rules_md_matches_the_suite() -> None:
    rendered = render_markdown()
    if os.environ.get("NESTQ_UPDATE_DOCS") == "1":
        DOC.write_text(rendered, encoding="utf-8")
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert current == rendered, (
        f"{DOC} is out of date with the suite; regenerate it with "
        "NESTQ_UPDATE_DOCS=1 pytest tests/conformance_suite/test_catalogue.py"
    )


def test_every_rule_is_well_formed() -> None:
    entries = load_catalogue()
    assert len(entries) >= 40
    for e in entries:
        assert e.area in AREA_ORDER, f"{e.rule.id}: unknown area"
        assert e.function == f"test_{e.rule.id.lower().replace('-', '_')}_" + e.function.split("_", 3)[3], (
            f"{e.function} should be named test_<area>_<number>_... after its rule {e.rule.id}"
        )
        assert e.rule.title.endswith("."), f"{e.rule.id}: its one sentence should end with a period"
        assert e.rule.hint, f"{e.rule.id} has no hint"
        assert e.area_title, f"{e.module} should start its docstring with '{e.area}: <area title>: ...'"


def test_every_area_has_rules_and_ids_are_dense() -> None:
    entries = load_catalogue()
    assert {e.area for e in entries} == set(AREA_ORDER)
    for area in AREA_ORDER:
        numbers = sorted(int(e.rule.id.split("-")[1]) for e in entries if e.area == area)
        assert len(numbers) == len(set(numbers)), f"{area} ids have duplicates: {numbers}"
        assert numbers == list(range(1, len(numbers) + 1)), f"{area} ids have gaps: {numbers}"


def test_rule_docs_name_capabilities_that_exist() -> None:
    from nestq_conformance.capabilities import Capabilities

    known = set(Capabilities.__dataclass_fields__)
    for e in load_catalogue():
        unknown = set(e.rule.requires) - known
        assert not unknown, f"{e.rule.id} requires unknown capabilities {unknown}"
        for probe in e.rule.probes:
            assert re.fullmatch(r"[a-z_]+", probe)
