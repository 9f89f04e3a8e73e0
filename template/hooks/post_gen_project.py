"""Tell the driver author what to do next (printed once the project is generated)."""

from __future__ import annotations

import json
from pathlib import Path

ANSWERS = json.loads(
    r'''{{ {
        "slug": cookiecutter.project_slug,
        "package": cookiecutter.package_name,
        "driver": cookiecutter.__driver_name,
        "repo_dir": cookiecutter.get("_repo_dir", ""),
    } | jsonify | replace("'", "\\u0027") }}'''
)


def nestq_requirement() -> str:
    """What to pip-install for nestq: the checkout this template was rendered from, else the index's release.

    Until nestq is on the author's package index, the plain name would fetch nothing (or someone else's package).
    """
    if ANSWERS["repo_dir"]:
        checkout = Path(ANSWERS["repo_dir"]).resolve().parent
        pyproject = checkout / "pyproject.toml"
        if pyproject.is_file() and 'name = "nestq"' in pyproject.read_text(encoding="utf-8"):
            return str(checkout)
    return "nestq"

print(
    f"""
Generated {ANSWERS["slug"]}/, a nestq driver for {ANSWERS["driver"]}. Next:

  cd {ANSWERS["slug"]}
  python -m venv .venv && . .venv/bin/activate
  python -m pip install "{nestq_requirement()}" -e ".[dev]"
  python -m pytest                           # the storage rules fail with the markers' messages
  grep -rn "marker (" src/{ANSWERS["package"]}/    # fill (2), (3) and (5), then run pytest again

See README.md ("From scaffold to a green conformance suite" and "Semantics").
"""
)
