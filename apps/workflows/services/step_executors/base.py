"""The step executor registry and the runner every step goes through.

A step type is one module that declares its id, input/output JSON Schemas, examples,
whether it supports dry runs, and a handler. The runner (`run_step`) validates the
input before the handler runs, validates its output, and records status, output, error,
timing and logs itself; handlers only do their work. Direct API requests and workflow
runs execute the same executors (DESIGN.md § The one execution path).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core import checks
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from core.exceptions import ApplicationError, ValidationFailed
from core.redaction import redact

Handler = Callable[["StepContext", dict[str, Any]], dict[str, Any]]


class UnknownStepType(ValidationFailed):
    default_code = "unknown_step_type"


class StepFailed(ApplicationError):
    """A handler's clean failure (carries the code and message of the cause)."""

    status_code = 422
    default_code = "step_failed"


def one_line(text: str) -> str:
    """A log line stays one line: control characters are shown escaped (no forged lines)."""
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


class _StepLogHandler(logging.Handler):
    """Records what the step's logger says (its handler's lines and the services' it calls)."""

    def __init__(self, sink: list[str], secrets: tuple[str, ...]) -> None:
        super().__init__(level=logging.INFO)
        self.sink = sink
        self.secrets = secrets

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(f"{record.levelname} {one_line(redact(record.getMessage(), self.secrets))}")


@dataclass
class StepContext:
    """What a handler may use: never `request`, settings or globals."""

    step_id: str
    lease_owner: str
    run_id: int | None = None
    workspace: Path | None = None
    actor: Any = None
    dry_run: bool = False
    agent: Any = None
    secrets: tuple[str, ...] = ()
    logs: list[str] = field(default_factory=list)
    checkpoints: dict[str, Any] = field(default_factory=dict)
    save_checkpoint: Callable[[str, Any], None] | None = None
    # the step passed an approval gate: its input is the approved plan's (apps.approvals)
    approved: bool = False
    logger: logging.Logger = field(init=False)

    def __post_init__(self) -> None:
        self.logger = logging.getLogger(f"kiln.steps.{self.step_id}")

    def checkpoint(self, key: str, make: Callable[[], Any]) -> Any:
        """Run `make` once per step: a redelivered step gets the recorded value back.

        Steps record the ids of what they create (a generation, an export) this way,
        so running them again continues that work instead of starting a second one.
        """
        if key in self.checkpoints:
            return self.checkpoints[key]
        value = make()
        self.checkpoints[key] = value
        if self.save_checkpoint is not None:
            self.save_checkpoint(key, value)
        return value

    def log(self, message: str) -> None:
        """One line in the step's logs (recorded by run_step's handler) and the process log."""
        self.logger.info("%s", redact(message, self.secrets))


@dataclass(frozen=True)
class StepExecutor:
    type_id: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    handler: Handler
    examples: tuple[dict[str, Any], ...] = ()
    supports_dry_run: bool = False
    # What an approver is shown besides the rendered input (the target, the files' manifest hash);
    # computed from the current rows, so a change since the request changes the plan's hash.
    plan: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # Why this input must wait for a person before running as `actor` (None: it need not).
    approval_reason: Callable[[Any, dict[str, Any]], str | None] | None = None


STEP_EXECUTORS: dict[str, StepExecutor] = {}


def register_step(
    *,
    type_id: str,
    description: str,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any],
    examples: tuple[dict[str, Any], ...] = (),
    supports_dry_run: bool = False,
    plan: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    approval_reason: Callable[[Any, dict[str, Any]], str | None] | None = None,
) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        if type_id in STEP_EXECUTORS:
            raise RuntimeError(f"step type '{type_id}' is registered twice")
        # The schemas are checked by `check_step_schemas` (Django's system checks: `manage.py
        # check`, `migrate`, `runserver`, the test suite), not here on every process start.
        STEP_EXECUTORS[type_id] = StepExecutor(
            type_id=type_id,
            description=description,
            input_schema=input_schema,
            output_schema=output_schema,
            handler=handler,
            examples=examples,
            supports_dry_run=supports_dry_run,
            plan=plan,
            approval_reason=approval_reason,
        )
        return handler

    return decorator


def check_step_schemas(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """System check: every registered step type's input and output schema is valid JSON Schema."""
    errors: list[checks.CheckMessage] = []
    for executor in STEP_EXECUTORS.values():
        for which, schema in (("input", executor.input_schema), ("output", executor.output_schema)):
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                errors.append(
                    checks.Error(
                        f"Step type '{executor.type_id}' has an invalid {which} schema: {exc.message}",
                        obj=executor.handler,
                        id="workflows.E001",
                    )
                )
    return errors


def get_step_executor(type_id: str) -> StepExecutor:
    executor = STEP_EXECUTORS.get(type_id)
    if executor is None:
        raise UnknownStepType(
            f"Unknown step type '{type_id}'. Known types: {', '.join(sorted(STEP_EXECUTORS))}.",
            extra={"type": type_id, "known": sorted(STEP_EXECUTORS)},
        )
    return executor


def validate_step_input(type_id: str, data: Any, *, where: str = "input") -> None:
    executor = get_step_executor(type_id)
    errors = sorted(Draft202012Validator(executor.input_schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        fields: dict[str, list[str]] = {}
        for error in errors:
            key = ".".join([where, *(str(p) for p in error.absolute_path)])
            fields.setdefault(key, []).append(error.message)
        first = next(iter(fields))
        raise ValidationFailed(
            f"Invalid input for step type '{type_id}': {first}: {fields[first][0]}", extra={"fields": fields}
        )


@dataclass
class StepResult:
    status: str
    output: dict[str, Any] | None
    error: dict[str, Any] | None
    logs: list[str]
    started_at: datetime
    finished_at: datetime
    duration: float


def run_step(type_id: str, data: dict[str, Any], context: StepContext) -> StepResult:
    """Validate, run and record one step. Application errors become a `failed` result;
    anything else (a database outage, a busy lease) propagates to the task's retry policy."""
    executor = get_step_executor(type_id)
    started_at = timezone.now()
    start = time.monotonic()
    capture = _StepLogHandler(context.logs, context.secrets)
    context.logger.addHandler(capture)
    try:
        validate_step_input(type_id, data)
        if context.dry_run and not executor.supports_dry_run:
            raise StepFailed(f"Step type '{type_id}' does not support dry runs.", code="dry_run_unsupported")
        output = executor.handler(context, data)
        errors = list(Draft202012Validator(executor.output_schema).iter_errors(output))
        if errors:
            raise StepFailed(
                f"Step '{type_id}' produced invalid output: {errors[0].message}", code="invalid_step_output"
            )
        status, error = "completed", None
    except ApplicationError as exc:
        output = None
        status = "failed"
        error = {"code": exc.code, "message": one_line(redact(exc.message, context.secrets))}
        context.logs.append(f"ERROR {error['message']}")
    finally:
        context.logger.removeHandler(capture)
    finished_at = timezone.now()
    return StepResult(
        status=status,
        output=output,
        error=error,
        logs=list(context.logs),
        started_at=started_at,
        finished_at=finished_at,
        duration=time.monotonic() - start,
    )
