#!/usr/bin/env bash
# Start the development server with auto-reload: scripts/run.sh [extra uvicorn options]
# HOST and PORT override the defaults; PYTHON picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m uvicorn app.main:app --reload \
    --host "${HOST:-127.0.0.1}" --port "${PORT:-{{ port }}}" "$@"
