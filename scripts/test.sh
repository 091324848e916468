#!/usr/bin/env bash
# Runs Kiln's whole test suite (unit, API, integration, browser). Sets itself up first.
# Integration tests run when DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis)
# are set and answer; with KILN_REQUIRE_SERVICES=1 a missing service is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh dev
exec .venv/bin/python -m pytest "$@"
