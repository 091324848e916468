"""Schemathesis over Kiln's OpenAPI schema, in-process through the WSGI app, as a real token holder.

One test per operation: examples, coverage and fuzzing phases with positive and negative data
(see schema_loader.py), every built-in check plus Kiln's error-body and no-leak checks (see
checks.py for the narrow exceptions). Requests carry `Authorization: Token <token>` of user 1,
who owns project 1 and one object of every kind (conftest.py `fuzz_world`).

Operations with a genuine failure the default seed reproduces are in `KNOWN_FAILURES` and run
as `xfail(strict=False)`; the minimal request of each finding is in test_findings.py.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz.checks import all_checks
from tests.fuzz.schema_loader import SCHEMA

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

# operation label -> "BUG: ..." for operations with a known server error the fuzzer can draw. Whether a
# run draws it depends on KILN_FUZZ_SEED / KILN_FUZZ_EXAMPLES, so XPASS here does not mean fixed: the
# minimal reproduction in test_findings.py is authoritative.
# (Both findings recorded here before, agents' project-id overflow and rename clash, are fixed.)
KNOWN_FAILURES: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _known_failure(request: pytest.FixtureRequest) -> None:
    reason = KNOWN_FAILURES.get(getattr(request.node, "operation_label", ""))
    if reason:
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=False))


@SCHEMA.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
def test_api(case, fuzz_world):
    case.call_and_validate(headers=fuzz_world.headers, checks=all_checks(fuzz_world.secrets))
