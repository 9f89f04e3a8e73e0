#!/usr/bin/env bash
# The main job on a fresh machine: install nestq into .venv, then run the conformance suite against a driver
# (the embedded in-memory driver unless one is named) and print its report card.
# Usage: bash scripts/check.sh [DRIVER] [nestq check options]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/nestq ]; then
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[redis]'
fi
exec .venv/bin/nestq check "$@"
