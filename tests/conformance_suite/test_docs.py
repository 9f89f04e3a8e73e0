"""The docs must not drift from the code: the changelog's rule lists, the driver guide's markers and code, links.

``NESTQ_UPDATE_DOCS=1 pytest tests/conformance_suite/test_docs.py`` rewrites the generated rule lists of
``docs/changelog.md`` (like ``docs/rules.md`` in ``test_catalogue.py``); everything else here is checked only.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
from nestq_conformance.catalogue import SUITE_VERSION, CatalogueEntry, load_catalogue
from nestq_conformance.rulesdoc import ordered

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
CHANGELOG = DOCS / "changelog.md"
GUIDE = DOCS / "writing-a-driver.md"
TEMPLATE_SRC = REPO / "template" / "{{cookiecutter.project_slug}}" / "src" / "{{cookiecutter.package_name}}"
FILL = REPO / "tests" / "template" / "fill"

_BLOCK = re.compile(
    r"(<!-- suite-rules:(?P<version>[^ ]+) begin[^>]*-->\n)(?P<body>.*?)(<!-- suite-rules:(?P=version) end -->)", re.S
)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def render_added_rules(entries: list[CatalogueEntry], version: str) -> str:
    """The generated list of the rules suite ``version`` added, by area, naming the capabilities they need."""
    added = ordered([e for e in entries if e.rule.since == version])
    levels = {lv: sum(1 for e in added if e.rule.level == lv) for lv in ("MUST", "SHOULD", "MAY")}
    lines = [
        f"{len(added)} rules ({levels['MUST']} MUST, {levels['SHOULD']} SHOULD, {levels['MAY']} MAY):",
        "",
    ]
    areas: dict[str, list[CatalogueEntry]] = {}
    for e in added:
        areas.setdefault(e.area, []).append(e)
    for area, group in areas.items():
        title = (group[0].area_title or "").strip()
        ids = ", ".join(e.rule.id + (f" ({e.rule.level})" if e.rule.level != "MUST" else "") for e in group)
        needs = [f"{e.rule.id} ({', '.join(e.rule.requires)})" for e in group if e.rule.requires]
        line = f"- **{area}** {title[:1].upper() + title[1:]}: {ids}."
        if needs:
            line += f" Run only for drivers that declare the capability: {', '.join(needs)}."
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_changelog_lists_the_rules_each_suite_version_added() -> None:
    entries = load_catalogue()
    versions = sorted({e.rule.since for e in entries}, key=_version_key)
    text = CHANGELOG.read_text(encoding="utf-8")
    found = {m.group("version"): m.group("body") for m in _BLOCK.finditer(text)}
    missing = [v for v in versions if v not in found]
    assert not missing, (
        f"{CHANGELOG} has no generated rule list for suite version(s) {missing}: add a section with "
        f"'<!-- suite-rules:{missing[0]} begin -->' and '<!-- suite-rules:{missing[0]} end -->', then run "
        "NESTQ_UPDATE_DOCS=1 pytest tests/conformance_suite/test_docs.py"
    )
    if os.environ.get("NESTQ_UPDATE_DOCS") == "1":
        text = _BLOCK.sub(lambda m: m.group(1) + render_added_rules(entries, m.group("version")) + m.group(4), text)
        CHANGELOG.write_text(text, encoding="utf-8")
        found = {m.group("version"): m.group("body") for m in _BLOCK.finditer(text)}
    stale = {v for v in versions if found[v] != render_added_rules(entries, v)}
    assert not stale, (
        f"the rule lists of suite version(s) {sorted(stale)} in {CHANGELOG} are out of date with the suite; "
        "regenerate them with NESTQ_UPDATE_DOCS=1 pytest tests/conformance_suite/test_docs.py"
    )
    unknown = set(found) - set(versions)
    assert not unknown, f"{CHANGELOG} lists suite versions no rule has as its `since`: {sorted(unknown)}"


def test_changelog_names_every_rule_and_the_current_suite_version() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    assert re.search(rf"^## .*\bsuite {re.escape(SUITE_VERSION)}\b", text, re.M), (
        f"{CHANGELOG} needs a '## ... suite {SUITE_VERSION}' section for the current SUITE_VERSION"
    )
    absent = [e.rule.id for e in load_catalogue() if e.rule.id not in text]
    assert not absent, f"rules missing from {CHANGELOG}: {absent}"


def _template_markers() -> set[str]:
    """The marker numbers of the template's ``NotImplementedError`` places (``{_MARK} (N): ...``)."""
    found: set[str] = set()
    for path in TEMPLATE_SRC.glob("*.py"):
        found.update(re.findall(r"\{_MARK\} \((\d)\):", path.read_text(encoding="utf-8")))
    return found


PRIMITIVES = ("connect", "disconnect", "push_raw", "claim", "ack", "retry", "dead_letter", "give_back", "extend_leases")


def test_the_driver_guide_names_the_templates_markers() -> None:
    assert _template_markers() == set("123456789"), _template_markers()
    guide = " ".join(GUIDE.read_text(encoding="utf-8").split())
    assert "### 2. Markers (1) and (2)" in guide
    assert "### 3. Markers (3) to (8)" in guide
    for name in PRIMITIVES:
        assert f"async def {name}(" in guide, f"{GUIDE.name}'s walk-through does not fill {name}"


def _members(source: str) -> dict[str, str]:
    """``Class.member`` -> the member's AST dump, for every class of ``source``."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                name = getattr(member, "name", None)
                if name is None and isinstance(member, ast.Assign):
                    name = member.targets[0].id  # type: ignore[attr-defined]
                if name:
                    found[f"{node.name}.{name}"] = ast.dump(member)
    return found


def test_the_driver_guides_walk_through_is_the_filled_template_the_template_tests_run() -> None:
    """The code the guide tells an author to paste is what tests/template fills in and runs to a green suite."""
    guide = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n# src/nestq_sqlite/(\w+\.py)\n(.*?)```", guide, re.S)
    assert [name for name, _ in blocks] == ["connection.py", "worker.py", "harness.py"], blocks
    shown: dict[str, str] = {}
    for _, code in blocks:
        shown.update(_members(code))
    filled: dict[str, str] = {}
    for name in ("connection.py", "worker.py", "harness.py"):
        filled.update(_members((FILL / name).read_text(encoding="utf-8")))
    assert shown.keys() == filled.keys()
    differ = [key for key in shown if shown[key] != filled[key]]
    assert not differ, f"{GUIDE.name} shows code that differs from tests/template/fill/ for {differ}"


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of the headings of ``page``: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#{1,6} (.+)$", text, re.M)
    }


@pytest.mark.parametrize(
    "page", sorted([REPO / "README.md", *DOCS.rglob("*.md")]), ids=lambda p: str(p.relative_to(REPO))
)
def test_relative_links_resolve(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path) if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)} links to missing files or headings: {broken}"
