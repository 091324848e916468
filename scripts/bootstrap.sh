#!/usr/bin/env bash
# Creates .venv with Python 3.11+ and installs requirements/$1.txt (dev by default) when
# they changed since the last install. Sourced by scripts/demo.sh, scripts/test.sh, .ci/run;
# run it on its own with `bash scripts/bootstrap.sh [dev|production|bench]`. When sourced, the
# caller's shell options are given back at the end.
_kiln_sourced=""
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  _kiln_sourced="$-"                                # the caller's flags (e, u, ...)
  _kiln_pipefail="$(shopt -po pipefail)"             # "set -o pipefail" or "set +o pipefail"
fi
set -euo pipefail
KILN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KILN_REQS="${1:-dev}"
PY="${KILN_PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY="$candidate"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "Kiln needs Python 3.11 or newer on PATH." >&2; exit 1; }
if [ ! -x "$KILN_ROOT/.venv/bin/python" ]; then
  echo "creating $KILN_ROOT/.venv with $PY" >&2
  "$PY" -m venv "$KILN_ROOT/.venv"
fi
stamp="$KILN_ROOT/.venv/.kiln-$KILN_REQS-installed"
want="$(cat "$KILN_ROOT"/requirements/*.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing requirements/$KILN_REQS.txt" >&2
  "$KILN_ROOT/.venv/bin/python" -m pip install --disable-pip-version-check -q -r "$KILN_ROOT/requirements/$KILN_REQS.txt"
  echo "$want" > "$stamp"
fi
if [ -n "$_kiln_sourced" ]; then
  case "$_kiln_sourced" in *e*) ;; *) set +e ;; esac
  case "$_kiln_sourced" in *u*) ;; *) set +u ;; esac
  eval "$_kiln_pipefail"
  unset _kiln_sourced _kiln_pipefail
fi
