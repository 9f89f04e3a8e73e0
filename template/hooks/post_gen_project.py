"""Tell the driver author what to do next (printed once the project is generated)."""

from __future__ import annotations

import json

ANSWERS = json.loads(
    r'''{{ {
        "slug": cookiecutter.project_slug,
        "package": cookiecutter.package_name,
        "driver": cookiecutter.__driver_name,
    } | jsonify | replace("'", "\\u0027") }}'''
)

print(
    f"""
Generated {ANSWERS["slug"]}/, a nestq driver for {ANSWERS["driver"]}. Next:

  cd {ANSWERS["slug"]}
  python -m venv .venv && . .venv/bin/activate
  python -m pip install nestq -e ".[dev]"    # nestq from a checkout: python -m pip install path/to/nestq first
  python -m pytest                           # the storage rules fail with the markers' messages
  grep -rn "marker (" src/{ANSWERS["package"]}/    # fill (2), (3) and (5), then run pytest again

See README.md ("From scaffold to a green conformance suite" and "Semantics").
"""
)
