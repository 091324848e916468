#!/usr/bin/env bash
# Serve Kiln on the embedded default (SQLite, tasks in-process, no broker): the REST API, the
# admin and the MCP endpoint (/mcp) from one ASGI process at http://127.0.0.1:8000.
# Usage: scripts/serve.sh [uvicorn options...]   (e.g. --port 9000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh base
.venv/bin/python manage.py migrate --noinput -v 0
exec .venv/bin/uvicorn core.asgi:application --host 127.0.0.1 --port 8000 "$@"
