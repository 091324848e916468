"""Step types: importing this package registers every executor module."""

from __future__ import annotations

from apps.workflows.services.step_executors import (  # noqa: F401 - registers the executors
    api_call_step,
    file_generation_step,
    repo_creation_step,
)
from apps.workflows.services.step_executors.base import (
    STEP_EXECUTORS,
    StepContext,
    StepExecutor,
    StepFailed,
    StepResult,
    UnknownStepType,
    get_step_executor,
    register_step,
    run_step,
    validate_step_input,
)

__all__ = [
    "STEP_EXECUTORS",
    "StepContext",
    "StepExecutor",
    "StepFailed",
    "StepResult",
    "UnknownStepType",
    "get_step_executor",
    "register_step",
    "run_step",
    "validate_step_input",
]
