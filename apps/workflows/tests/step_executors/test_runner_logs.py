"""run_step records a step's log lines once each, redacted and on one line."""

from __future__ import annotations

import logging

from apps.workflows.services.step_executors import STEP_EXECUTORS, StepExecutor
from apps.workflows.services.step_executors.base import StepContext, run_step

CANARY = "canary-secret-0000"


def _handler(context: StepContext, data: dict) -> dict:
    context.log("first line")
    context.log(f"uses {CANARY}\nforged line")
    logging.getLogger(f"kiln.steps.{context.step_id}").warning("from a service")
    return {}


def test_each_log_line_is_recorded_once_redacted(monkeypatch):
    monkeypatch.setitem(
        STEP_EXECUTORS,
        "logging_probe",
        StepExecutor(
            type_id="logging_probe",
            description="logs three lines",
            input_schema={"type": "object"},
            output_schema={"type": "object"},
            handler=_handler,
        ),
    )
    result = run_step("logging_probe", {}, StepContext(step_id="probe", lease_owner="test", secrets=(CANARY,)))

    assert result.status == "completed"
    assert len(result.logs) == 3
    assert result.logs[0] == "INFO first line"
    assert CANARY not in result.logs[1] and result.logs[1].startswith("INFO uses ")
    assert "\n" not in result.logs[1] and "\\nforged line" in result.logs[1]
    assert result.logs[2] == "WARNING from a service"
