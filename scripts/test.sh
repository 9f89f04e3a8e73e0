#!/usr/bin/env bash
# Run everything CI runs: install into .venv, make sure the services are up, then lint, types and all tests.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

# The drivers built from the template live under reference_drivers/ as their own projects (a pyproject.toml each,
# nestq taken from this checkout): install each with its dev extra, which holds what its tests need.
drivers=()
for pyproject in reference_drivers/*/pyproject.toml; do
  [ -f "$pyproject" ] && drivers+=("$(dirname "$pyproject")")
done
for driver in "${drivers[@]}"; do
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$driver[dev]"
done
# A driver's `nestq @ file://...` requirement reinstalls nestq as a plain copy: make this checkout editable again,
# so the tests below run the code in the tree.
if [ "${#drivers[@]}" -gt 0 ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
fi

# The matrix page's test opens it in headless Chromium (tests/matrix): Debian's package, installed when missing.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "scripts/test.sh: chromium is missing and cannot be installed here (not root, or no apt-get):" \
      "tests/matrix skips its browser test (fails under CI=true)" >&2
  fi
fi

# Each service a test needs has a script in scripts/services/ that starts it when it is not already running.
for service in scripts/services/*.sh; do
  [ -f "$service" ] && bash "$service"
done


echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"

# Each driver project: its own lint and types, then its tests and the conformance suite against it.
for driver in "${drivers[@]}"; do
  echo "== $driver"
  (cd "$driver" && ../../.venv/bin/ruff check . && ../../.venv/bin/mypy && ../../.venv/bin/python -m pytest "$@")
done
