#!/usr/bin/env bash
# Run the tests and doctests: scripts/test.sh [extra pytest arguments]
# Uses $PYTHON when set (e.g. PYTHON=.venv/bin/python), else python3 on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m pytest "$@"
