"""Render the rule catalogue (read from the suite) as the Markdown page ``docs/rules.md``.

``python -m nestq_conformance.rulesdoc`` prints it; ``tests/conformance_suite/test_catalogue.py`` fails when the
page in the repository differs from the rendering (and rewrites it with ``NESTQ_UPDATE_DOCS=1``).
"""

from __future__ import annotations

from nestq_conformance.catalogue import SUITE_VERSION, CatalogueEntry, load_catalogue

__all__ = ["AREA_ORDER", "ordered", "render_markdown"]

AREA_ORDER: tuple[str, ...] = ("ENV", "PRD", "DSP", "LIF", "DLV", "FLR", "DUR", "SCH", "CTX", "CFG")
"""Areas in the order a driver author meets them: wire format first, storage-specific guarantees last."""


def ordered(entries: list[CatalogueEntry]) -> list[CatalogueEntry]:
    """``entries`` by area (in :data:`AREA_ORDER`, unknown areas last) then id."""

    def key(e: CatalogueEntry) -> tuple[int, str]:
        return (AREA_ORDER.index(e.area) if e.area in AREA_ORDER else len(AREA_ORDER), e.rule.id)

    return sorted(entries, key=key)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def render_markdown(entries: list[CatalogueEntry] | None = None) -> str:
    """The catalogue as Markdown: a summary, then one table per area (id, level, requires, probes, rule, hint)."""
    rows = ordered(load_catalogue() if entries is None else entries)
    levels = {lv: sum(1 for e in rows if e.rule.level == lv) for lv in ("MUST", "SHOULD", "MAY")}
    lines = [
        "# Conformance rules",
        "",
        "<!-- Generated from the suite by nestq_conformance.rulesdoc.render_markdown(); do not edit by hand. -->",
        "",
        f"Suite version {SUITE_VERSION}: {len(rows)} rules, {levels['MUST']} MUST, {levels['SHOULD']} SHOULD, "
        f"{levels['MAY']} MAY. Each rule is a test of `nestq_conformance.suite` named after its id. A rule whose "
        "*requires* names a capability runs only for drivers that declare it, and is otherwise skipped naming "
        "it; *probes* are the harness probes and hooks it calls, and a harness without one sees the rule skipped "
        "naming the probe. Ids are stable: a rule is never renumbered and a retired id is never reused.",
        "",
        "After changing a rule, regenerate this page with "
        "`NESTQ_UPDATE_DOCS=1 pytest tests/conformance_suite/test_catalogue.py`.",
        "",
    ]
    area = None
    for e in rows:
        if e.area != area:
            area = e.area
            title = (e.area_title or "").strip()
            lines += ["", f"## {area}: {title[:1].upper() + title[1:]}" if title else f"## {area}", ""]
            lines += ["| id | level | requires | probes | rule | if it fails, check |", "|---|---|---|---|---|---|"]
        r = e.rule
        lines.append(
            f"| {r.id} | {r.level} | {', '.join(r.requires) or '-'} | {', '.join(r.probes) or '-'} | "
            f"{_cell(r.title)} | {_cell(r.hint)} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown(), end="")
