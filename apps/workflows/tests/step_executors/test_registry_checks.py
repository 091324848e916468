"""The step registry's system check: invalid step schemas are reported by `manage.py check`."""

from __future__ import annotations

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from apps.workflows.services.step_executors import STEP_EXECUTORS, StepExecutor
from apps.workflows.services.step_executors.base import check_step_schemas


def test_every_registered_step_schema_is_valid():
    assert {"api_call", "file_generation", "repo_creation"} <= set(STEP_EXECUTORS)
    assert check_step_schemas() == []


def test_an_invalid_schema_is_a_system_check_error(monkeypatch):
    broken = StepExecutor(
        type_id="broken",
        description="a step with a schema that is not JSON Schema",
        input_schema={"type": "object", "properties": {"x": {"type": "no-such-type"}}},
        output_schema={"type": "object"},
        handler=lambda context, data: {},
    )
    monkeypatch.setitem(STEP_EXECUTORS, "broken", broken)
    errors = check_step_schemas()
    assert [e.id for e in errors] == ["workflows.E001"]
    assert "Step type 'broken' has an invalid input schema" in errors[0].msg
    assert errors[0].level == checks.ERROR


def test_the_check_runs_with_manage_py_check(monkeypatch):
    broken = StepExecutor(
        type_id="broken",
        description="output schema with a non-schema value",
        input_schema={"type": "object"},
        output_schema={"type": 5},
        handler=lambda context, data: {},
    )
    monkeypatch.setitem(STEP_EXECUTORS, "broken", broken)
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "workflows.E001" in str(raised.value)
    assert "invalid output schema" in str(raised.value)
