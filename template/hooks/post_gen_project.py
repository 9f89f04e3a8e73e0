"""Record where nestq comes from in the generated project, then tell the driver author what to do next.

nestq is not on a package index yet: a bare ``nestq`` requirement would find nothing, or someone else's package.
So the project depends on the nestq this template was rendered from: ``NESTQ_REQUIREMENT`` if set at render time
(e.g. ``nestq @ git+https://github.com/<owner>/nestq@<commit>``), else the checkout holding this template, as a
``file://`` requirement. Generation fails when neither is known rather than fall back to the bare name.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ANSWERS = json.loads(
    r'''{{ {
        "slug": cookiecutter.project_slug,
        "package": cookiecutter.package_name,
        "driver": cookiecutter.__driver_name,
        "repo_dir": cookiecutter.get("_repo_dir", ""),
    } | jsonify | replace("'", "\\u0027") }}'''
)
PLACEHOLDER = "@@NESTQ_REQUIREMENT@@"
FILES = ("pyproject.toml", "tox.ini", "README.md", ".github/workflows/conformance.yml")


def nestq_requirement() -> str | None:
    """The requirement recorded in the project, or None when nothing says where nestq is."""
    pinned = os.environ.get("NESTQ_REQUIREMENT", "").strip()
    if pinned:
        return pinned
    if ANSWERS["repo_dir"]:
        given = Path(ANSWERS["repo_dir"])
        # A relative template path is relative to where cookiecutter was started; this hook runs in the project.
        checkout = (given if given.is_absolute() else Path(os.environ.get("PWD", ".")) / given).resolve().parent
        pyproject = checkout / "pyproject.toml"
        if pyproject.is_file() and 'name = "nestq"' in pyproject.read_text(encoding="utf-8"):
            return f"nestq @ {checkout.as_uri()}"
    return None


def main() -> int:
    """Write the requirement into the project's files and print the next steps."""
    requirement = nestq_requirement()
    if requirement is None:
        print("nestq driver template: cannot tell where nestq comes from (it is not on a package index yet); "
              "render from a nestq checkout, or set NESTQ_REQUIREMENT (e.g. 'nestq @ git+https://...').",
              file=sys.stderr)
        return 1
    for name in FILES:
        path = Path(name)
        if path.is_file():
            path.write_text(path.read_text(encoding="utf-8").replace(PLACEHOLDER, requirement), encoding="utf-8")
    print(
        f"""
Generated {ANSWERS["slug"]}/, a nestq driver for {ANSWERS["driver"]} (nestq from: {requirement}). Next:

  cd {ANSWERS["slug"]}
  python -m venv .venv && . .venv/bin/activate
  python -m pip install -e ".[dev]"
  python -m pytest                           # the storage rules fail with the markers' messages
  grep -rn "marker (" src/{ANSWERS["package"]}/    # fill the storage primitives, then run pytest again

See README.md ("From scaffold to a green conformance suite" and "Semantics").
"""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
