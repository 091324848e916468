#!/usr/bin/env bash
# Kiln's main job on the embedded default (SQLite, no broker): set up, migrate, generate
# a project from a built-in template and write it to ./demo-output.
# Usage: scripts/demo.sh [TEMPLATE] [generate_project options...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh base
template="${1:-python-package}"
shift || true
out="${KILN_DEMO_OUTPUT:-demo-output/$template}"
rm -rf "$out"
.venv/bin/python manage.py migrate --noinput -v 0
.venv/bin/python manage.py generate_project --template "$template" --output "$out" "$@"
echo "done: see $out"
