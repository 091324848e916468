"""workflow_executor: validates workflows and runs them one step (one Celery task) at a time.

Step inputs may hold `${{ inputs.NAME }}` and `${{ steps.STEP_ID.output.FIELD }}`; a
string that is exactly one expression takes the expression's value (numbers stay
numbers), otherwise the expression is interpolated as text. Expressions and `if`
conditions are evaluated by the Kiln sandbox over plain data only. Each step runs as its
own task: a redelivered task finds a completed step completed and moves on; a step that
was interrupted continues from its checkpoints. Cancellation takes effect at the next
step boundary; retry resumes at the failed step with the completed steps' outputs.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from jinja2 import TemplateSyntaxError, Undefined, nodes
from jinja2.parser import Parser
from jsonschema import Draft202012Validator

from apps.approvals.services import approvals_withdraw
from apps.projects.models import Project, Role
from apps.projects.selectors import projects_visible_to
from apps.projects.services.projects import require_role
from apps.workflows.models import StepRun, StepStatus, Workflow, WorkflowRun
from apps.workflows.services.step_executors import STEP_EXECUTORS, StepContext, get_step_executor, run_step
from core.bounded import Channel, Failure, run_bounded
from core.exceptions import ApplicationError, Conflict, NotFound, PermissionDenied, ValidationFailed
from core.jobs import (
    ACTIVE_STATUSES,
    ClaimOutcome,
    JobStatus,
    announce,
    announce_status,
    check_capacity,
    claim,
    enqueue_on_commit,
    error_payload,
    job_log,
    job_status_changed,
    retry_fields,
)
from core.json_schema import UserSchemaError, check_user_schema, iter_user_schema_errors
from core.sandbox import KilnRange, make_environment, measure, plain_context, render_limits
from core.values import refuse_unstorable_value, unstorable_reason

logger = logging.getLogger("kiln.workflows")

EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}", re.DOTALL)
WHOLE_EXPRESSION = re.compile(r"^\s*\$\{\{\s*(.+?)\s*\}\}\s*$", re.DOTALL)
STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
MAX_STEPS = 50
# `requires_approval: true` stops the run before the step until a person approves its plan
STEP_KEYS = frozenset({"id", "type", "input", "if", "requires_approval"})

_env = make_environment()
UNSTORABLE = {
    "nul": "a NUL character, which is not allowed.",
    "surrogate": "a lone surrogate (such as \\ud800), which is not valid Unicode text.",
    "non_finite": "a number that is NaN or infinite.",
    "depth": "a value nested too deeply.",
}


class ExpressionError(ApplicationError):
    status_code = 400
    default_code = "expression_error"


# --- validation ---------------------------------------------------------------------------


def _expressions_in(value: Any) -> list[str]:
    found: list[str] = []
    if isinstance(value, str):
        found.extend(EXPRESSION.findall(value))
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(_expressions_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_expressions_in(item))
    return found


def _has_expression(value: Any) -> bool:
    return isinstance(value, str) and "${{" in value


def validate_inputs_schema(schema: Any) -> dict[str, Any]:
    if schema in (None, {}):
        return {}
    if not isinstance(schema, dict):
        raise ValidationFailed(
            "inputs_schema must be a JSON Schema object.", extra={"fields": {"inputs_schema": ["Invalid."]}}
        )
    refuse_unstorable_value(schema, field="inputs_schema")
    try:
        check_user_schema(schema)
    except UserSchemaError as exc:
        raise ValidationFailed(
            f"inputs_schema: {exc}",
            extra={
                "fields": {"inputs_schema": [str(exc)]},
                "pointer": f"/inputs_schema{exc.pointer}",
                "reason": exc.reason,
            },
        ) from None
    return schema


def validate_steps(steps: Any, inputs_schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Check ids, types, inputs against each type's schema, `if` syntax and references."""
    if not isinstance(steps, list) or not steps:
        raise ValidationFailed("steps must be a non-empty list.", extra={"fields": {"steps": ["Required."]}})
    if len(steps) > MAX_STEPS:
        raise ValidationFailed(f"A workflow has at most {MAX_STEPS} steps.", extra={"fields": {"steps": ["Too many."]}})
    refuse_unstorable_value(steps, field="steps")
    declared_inputs = set((inputs_schema or {}).get("properties", {}))
    seen: list[str] = []
    cleaned = []
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if not isinstance(step, dict):
            raise ValidationFailed(f"{where} must be an object.", extra={"fields": {where: ["Expected an object."]}})
        unknown = sorted(set(step) - STEP_KEYS)
        if unknown:
            raise ValidationFailed(
                f"{where} has unknown keys: {', '.join(unknown)}.",
                extra={"fields": {f"{where}.{k}": ["Unknown key."] for k in unknown}},
            )
        step_id = step.get("id")
        if not isinstance(step_id, str) or not STEP_ID.match(step_id):
            raise ValidationFailed(
                f"{where}.id must be an identifier.", extra={"fields": {f"{where}.id": ["Invalid id."]}}
            )
        if step_id in seen:
            raise ValidationFailed(
                f"Step id '{step_id}' is used twice.", extra={"fields": {f"{where}.id": ["Duplicate id."]}}
            )
        where = f"steps.{step_id}"
        step_type = step.get("type")
        if step_type not in STEP_EXECUTORS:
            raise ValidationFailed(
                f"Step '{step_id}' has unknown type '{step_type}'. Known: {', '.join(sorted(STEP_EXECUTORS))}.",
                extra={"fields": {f"{where}.type": ["Unknown step type."]}},
            )
        data = step.get("input", {})
        if not isinstance(data, dict):
            raise ValidationFailed(
                f"Step '{step_id}' input must be an object.",
                extra={"fields": {f"{where}.input": ["Expected an object."]}},
            )
        executor = get_step_executor(step_type)
        errors: dict[str, list[str]] = {}
        for error in Draft202012Validator(executor.input_schema).iter_errors(data):
            if _has_expression(error.instance):
                continue  # checked when the run renders it
            if error.validator in ("oneOf", "anyOf") and _expressions_in(data):
                continue
            key = ".".join([where, "input", *(str(p) for p in error.absolute_path)])
            errors.setdefault(key, []).append(error.message)
        if errors:
            first = next(iter(errors))
            raise ValidationFailed(
                f"Invalid input for step '{step_id}': {first}: {errors[first][0]}", extra={"fields": errors}
            )
        if "requires_approval" in step and not isinstance(step["requires_approval"], bool):
            raise ValidationFailed(
                f"Step '{step_id}': requires_approval must be true or false.",
                extra={"fields": {f"{where}.requires_approval": ["Must be a boolean."]}},
            )
        condition = step.get("if")
        expressions = _expressions_in(data)
        if condition is not None:
            if not isinstance(condition, str):
                raise ValidationFailed(
                    f"Step '{step_id}': 'if' must be an expression string.",
                    extra={"fields": {f"{where}.if": ["Invalid."]}},
                )
            match = WHOLE_EXPRESSION.match(condition)
            expressions.append(match.group(1) if match else condition)
        for expression in expressions:
            steps_read, inputs_read = _references(expression, step_id=step_id, where=where)
            for ref in sorted(steps_read):
                if ref not in seen:
                    raise ValidationFailed(
                        f"Step '{step_id}' refers to step '{ref}', which is not an earlier step.",
                        code="invalid_reference",
                        extra={"fields": {where: [f"Unknown or later step '{ref}'."]}},
                    )
            for name in sorted(inputs_read):
                if declared_inputs and name not in declared_inputs:
                    raise ValidationFailed(
                        f"Step '{step_id}' refers to input '{name}', which inputs_schema does not declare.",
                        code="invalid_reference",
                        extra={"fields": {where: [f"Unknown input '{name}'."]}},
                    )
        seen.append(step_id)
        cleaned.append({key: step[key] for key in ("id", "type", "input", "if", "requires_approval") if key in step})
    return cleaned


def _parse_expression(expression: str) -> nodes.Expr:
    """The expression's syntax tree, as `compile_expression` parses it (400 when it does not parse)."""
    parser = Parser(_env, expression, state="variable")
    node = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("unexpected end of expression", parser.stream.current.lineno, None, None)
    return node


def _literal_key(node: nodes.Node) -> str | None:
    """`x` for `<name>.x` and `<name>['x']`; None for anything computed."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def _references(expression: str, *, step_id: str, where: str) -> tuple[set[str], set[str]]:
    """The step ids and input names an expression reads, from its syntax tree.

    A step is referred to only as `steps.<id>` or `steps['<id>']`: any other use of `steps`
    (`steps['b' ~ '']`, `steps[x]`, `steps|attr(...)`, `steps` passed whole) would read a
    step that save-time validation cannot see, maybe one that has not run yet, so it is
    refused. Inputs may be read whole or computed; literal input names must be declared.
    """
    try:
        tree = _parse_expression(expression)
        _env.compile_expression(expression)  # what a run will do with it
        steps: set[str] = set()
        inputs: set[str] = set()
        pending: list[tuple[nodes.Node, nodes.Node | None]] = [(tree, None)]
        while pending:
            node, parent = pending.pop()
            if isinstance(node, nodes.Name) and node.name == "steps":
                key = _literal_key(parent) if parent is not None and getattr(parent, "node", None) is node else None
                if key is None:
                    raise ValidationFailed(
                        f"Step '{step_id}' reads 'steps' in '{expression}' other than as steps.<id> or "
                        "steps['<id>']; refer to earlier steps by their literal ids.",
                        code="invalid_reference",
                        extra={"fields": {where: ["Refer to steps by literal ids: steps.<id>."]}},
                    )
                steps.add(key)
            elif isinstance(node, nodes.Name) and node.name == "inputs" and parent is not None:
                key = _literal_key(parent) if getattr(parent, "node", None) is node else None
                if key is not None:
                    inputs.add(key)
            pending.extend((child, node) for child in node.iter_child_nodes())
    except TemplateSyntaxError as exc:
        raise ValidationFailed(
            f"Step '{step_id}' has an invalid expression '{expression}': {exc.message}",
            code="expression_error",
            extra={"fields": {where: [f"Invalid expression: {exc.message}"]}},
        ) from None
    except RecursionError:
        raise ValidationFailed(
            f"Step '{step_id}' has an expression nested too deeply.",
            code="expression_error",
            extra={"fields": {where: ["Expression nested too deeply."]}},
        ) from None
    return steps, inputs


# --- expressions ----------------------------------------------------------------------------


EXPRESSION_MAX_BYTES = 1024 * 1024  # one expression's value
STEP_INPUT_MAX_BYTES = 4 * 1024 * 1024  # a step's whole rendered input
EXPRESSION_SECONDS = 5.0  # one expression
STEP_INPUT_SECONDS = 30.0  # all of a step's expressions
SKIP = object()


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """An expression's value: plain JSON data of at most EXPRESSION_MAX_BYTES, or ExpressionError."""
    try:
        with render_limits(seconds=EXPRESSION_SECONDS, max_bytes=EXPRESSION_MAX_BYTES):
            value = _env.compile_expression(expression, undefined_to_none=False)(**context)
            if isinstance(value, Undefined):
                # StrictUndefined raises only when used, which would be outside this `try`
                raise ExpressionError(f"Expression '{expression}' failed: {value._undefined_message}")
            if isinstance(value, KilnRange):
                value = list(value)
            measure(value)  # within the cap, and data: a function or a generator has no JSON value
            return plain_context(value)
    except ApplicationError as exc:
        raise ExpressionError(f"Expression '{expression}' failed: {exc.message}", code=exc.code) from None
    except MemoryError:
        raise  # the render process reports it (limit_exceeded)
    except Exception as exc:
        raise ExpressionError(f"Expression '{expression}' failed: {exc}") from None


def step_input(step: dict[str, Any], context: dict[str, Any]) -> Any:
    """The step's input with its expressions evaluated, or SKIP when its `if` is false.

    Evaluated in a bounded child process (`core.bounded`): under the render memory limit, at
    most STEP_INPUT_SECONDS, whatever the sandbox's own checks miss; the result is checked
    to be storable (no NUL, lone surrogate or NaN: jsonb refuses them).
    """

    def work(channel: Channel) -> Any:
        condition = step.get("if")
        if condition is not None and not condition_holds(condition, context):
            return {"skip": True}
        rendered = render_value(step.get("input", {}), context)
        with render_limits(seconds=EXPRESSION_SECONDS, max_bytes=STEP_INPUT_MAX_BYTES):
            measure(rendered)
        return {"input": rendered}

    def on_failure(failure: Failure) -> BaseException:
        if failure.kind == "memory":
            limit = settings.KILN_RENDER_MEMORY_LIMIT
            return ExpressionError(
                f"Evaluating the step's expressions needed more memory than the limit of {limit // (1024 * 1024)} MiB.",
                code="limit_exceeded",
                extra={"limit": limit},
            )
        if failure.kind == "time":
            return ExpressionError(
                f"Evaluating the step's expressions took longer than {STEP_INPUT_SECONDS:.0f} s.",
                code="render_time_limit",
            )
        logger.error("expression process failed: %s", failure.detail)
        return ApplicationError(
            "Evaluating the step's expressions failed; the error was logged.", code="render_failed", status_code=500
        )

    outcome = run_bounded(
        work,
        memory=settings.KILN_RENDER_MEMORY_LIMIT,
        seconds=STEP_INPUT_SECONDS,
        on_failure=on_failure,
        error_class=ExpressionError,
    )
    if outcome.get("skip"):
        return SKIP
    rendered = outcome["input"]
    unstorable = unstorable_reason(rendered)
    if unstorable is not None:  # '\x00', '\ud800' or a NaN from an expression: jsonb refuses them
        raise ExpressionError(f"The step's input renders to a value with {UNSTORABLE[unstorable]}")
    return rendered


def render_value(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = WHOLE_EXPRESSION.match(value)
        if whole:
            return evaluate(whole.group(1), context)
        return _interpolate(value, context)
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value


def _interpolate(value: str, context: dict[str, Any]) -> str:
    """A string with expressions in it, each replaced by its text; the text is sized as it grows."""
    parts: list[str] = []
    size = 0
    position = 0
    for match in EXPRESSION.finditer(value):
        parts.append(value[position : match.start()])
        parts.append(_text(evaluate(match.group(1), context)))
        size += len(parts[-1]) + len(parts[-2])
        if size > STEP_INPUT_MAX_BYTES:
            raise ExpressionError(
                f"The step's input renders to a text of more than {STEP_INPUT_MAX_BYTES} characters.",
                code="output_limit_exceeded",
            )
        position = match.end()
    parts.append(value[position:])
    return "".join(parts)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def condition_holds(condition: str, context: dict[str, Any]) -> bool:
    match = WHOLE_EXPRESSION.match(condition)
    return bool(evaluate(match.group(1) if match else condition, context))


# --- workflow CRUD --------------------------------------------------------------------------


def _require_manage(workflow_project: Project | None, owner: Any, actor: Any, action: str) -> None:
    if workflow_project is not None:
        require_role(actor=actor, project=workflow_project, minimum=Role.MAINTAINER, action=action)
    elif owner is not None and getattr(owner, "pk", None) != getattr(actor, "pk", None):
        raise PermissionDenied(f"Only the workflow's creator can {action}.")


def workflow_create(
    *, actor: Any, name: str, steps: Any, project: int | None = None, description: str = "", inputs_schema: Any = None
) -> Workflow:
    project_obj = None
    if project is not None:
        project_obj = projects_visible_to(actor).filter(pk=project).first()
        if project_obj is None:
            raise ValidationFailed(f"Project {project} not found.", extra={"fields": {"project": ["Unknown project."]}})
        require_role(actor=actor, project=project_obj, minimum=Role.MAINTAINER, action="manage workflows")
    schema = validate_inputs_schema(inputs_schema)
    cleaned = validate_steps(steps, schema)
    return Workflow.objects.create(
        name=name, project=project_obj, description=description, inputs_schema=schema, steps=cleaned, created_by=actor
    )


def workflow_update(*, workflow: Workflow, actor: Any, **changes: Any) -> Workflow:
    _require_manage(workflow.project, workflow.created_by, actor, "change workflows")
    schema = validate_inputs_schema(changes.get("inputs_schema", workflow.inputs_schema))
    if "steps" in changes or "inputs_schema" in changes:
        workflow.steps = validate_steps(changes.get("steps", workflow.steps), schema)
        workflow.inputs_schema = schema
    for field in ("name", "description"):
        if field in changes:
            setattr(workflow, field, changes[field])
    workflow.save()
    return workflow


def workflow_delete(*, workflow: Workflow, actor: Any) -> None:
    _require_manage(workflow.project, workflow.created_by, actor, "delete workflows")
    if workflow.runs.filter(status__in=ACTIVE_STATUSES).exists():
        raise Conflict("The workflow has runs in progress; cancel them first.", code="workflow_busy")
    workflow.delete()


def workflows_visible_to(actor: Any) -> Any:
    from django.db.models import Q

    return Workflow.objects.filter(
        Q(project__in=projects_visible_to(actor)) | Q(project__isnull=True, created_by_id=getattr(actor, "pk", None))
    ).select_related("project", "created_by")


def runs_visible_to(actor: Any) -> Any:
    return WorkflowRun.objects.filter(workflow__in=workflows_visible_to(actor)).select_related(
        "workflow", "actor", "agent"
    )


# --- runs -----------------------------------------------------------------------------------


def _validate_run_inputs(workflow: Workflow, inputs: Any) -> dict[str, Any]:
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise ValidationFailed("inputs must be an object.", extra={"fields": {"inputs": ["Expected an object."]}})
    refuse_unstorable_value(inputs, field="inputs")
    schema = workflow.inputs_schema or {}
    values = dict(inputs)
    for name, prop in schema.get("properties", {}).items():
        if name not in values and isinstance(prop, dict) and "default" in prop:
            values[name] = prop["default"]
    if schema:
        errors: dict[str, list[str]] = {}
        try:
            found = list(iter_user_schema_errors(schema, values))
        except UserSchemaError as exc:  # saved before the checks, or a value too costly to validate
            raise ValidationFailed(
                f"The run inputs cannot be validated against the workflow's inputs_schema: {exc}",
                extra={"fields": {"inputs_schema": [str(exc)]}, "reason": exc.reason},
            ) from None
        for error in found:
            key = ".".join(["inputs", *(str(p) for p in error.absolute_path)])
            errors.setdefault(key, []).append(error.message)
        if errors:
            first = next(iter(errors))
            raise ValidationFailed(f"Invalid run inputs: {first}: {errors[first][0]}", extra={"fields": errors})
    # an optional input the run leaves out (no default) reads as null in expressions
    for name in schema.get("properties", {}):
        values.setdefault(name, None)
    return plain_context(values)


def workflow_run_start(*, workflow: Workflow, inputs: Any, actor: Any, agent: Any = None) -> WorkflowRun:
    """Record a run (as `actor`, or as `agent` when given) and enqueue its first step."""
    runner = agent.user if agent is not None else actor
    if agent is not None and agent.owner_id != getattr(actor, "pk", None):
        raise NotFound("Agent not found.")
    if agent is not None and not agent.is_active:
        raise Conflict("The agent is deactivated.", code="agent_inactive")
    if workflow.project is not None:
        if not projects_visible_to(runner).filter(pk=workflow.project.pk).exists():
            raise PermissionDenied("The agent is not a member of the workflow's project.", code="permission_denied")
        require_role(actor=runner, project=workflow.project, minimum=Role.MAINTAINER, action="run workflows")
    elif workflow.created_by_id != getattr(actor, "pk", None):
        raise PermissionDenied("Only the workflow's creator can run it.")
    values = _validate_run_inputs(workflow, inputs)
    with transaction.atomic():
        _check_active_runs(workflow, runner)
        run = WorkflowRun.objects.create(
            workflow=workflow,
            steps_snapshot=workflow.steps,
            inputs=values,
            actor=runner,
            agent=agent,
            progress_total=len(workflow.steps),
            enqueued_at=timezone.now(),
        )
        StepRun.objects.bulk_create(
            [StepRun(run=run, index=i, step_id=s["id"], type=s["type"]) for i, s in enumerate(workflow.steps)]
        )
        _enqueue(run)
    return run


def _check_active_runs(workflow: Workflow, runner: Any) -> None:
    """The per-project cap on active jobs holds for runs too, so a run cannot multiply itself."""
    if workflow.project is not None:
        Project.objects.select_for_update().filter(pk=workflow.project.pk).first()
        runs = WorkflowRun.objects.filter(workflow__project=workflow.project)
    else:
        runs = WorkflowRun.objects.filter(workflow__project__isnull=True, actor_id=getattr(runner, "pk", None))
    check_capacity(runs, what="workflow runs")


def _enqueue(run: WorkflowRun) -> None:
    from apps.workflows.tasks import run_workflow_step

    enqueue_on_commit(run_workflow_step, run.pk, model=None)


def _require_run_manager(run: WorkflowRun, actor: Any) -> None:
    """Who may cancel or retry a run: a run acts as whoever started it, so that person (or the
    owner of the agent that ran it), as a maintainer; anyone else must be the project owner."""
    workflow = run.workflow
    if workflow.project is None:
        if workflow.created_by_id != getattr(actor, "pk", None):
            raise PermissionDenied("Only the workflow's creator can manage its runs.")
        return
    require_role(actor=actor, project=workflow.project, minimum=Role.MAINTAINER, action="manage runs")
    pk = getattr(actor, "pk", None)
    started_it = run.actor_id == pk or (run.agent is not None and run.agent.owner_id == pk)
    if not started_it:
        require_role(actor=actor, project=workflow.project, minimum=Role.OWNER, action="manage someone else's runs")


def workflow_run_cancel(*, run: WorkflowRun, actor: Any) -> WorkflowRun:
    _require_run_manager(run, actor)
    now = timezone.now()
    with transaction.atomic():
        row = WorkflowRun.objects.select_for_update().get(pk=run.pk)
        if row.status == JobStatus.PENDING:
            WorkflowRun.objects.filter(pk=row.pk).update(
                status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now
            )
            StepRun.objects.filter(run=row, status=StepStatus.PENDING).update(status=StepStatus.CANCELLED)
            announce_status(WorkflowRun, row.pk, JobStatus.CANCELLED)
        elif row.status == JobStatus.RUNNING:
            WorkflowRun.objects.filter(pk=row.pk).update(cancel_requested=True, updated_at=now)
        elif row.status == JobStatus.AWAITING_APPROVAL:
            WorkflowRun.objects.filter(pk=row.pk).update(
                status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now, updated_at=now
            )
            StepRun.objects.filter(run=row, status__in=[StepStatus.PENDING, StepStatus.AWAITING_APPROVAL]).update(
                status=StepStatus.CANCELLED
            )
            approvals_withdraw(run=row)
            announce_status(WorkflowRun, row.pk, JobStatus.CANCELLED)
        else:
            raise Conflict(f"The run is already {row.status}.", code="not_cancellable")
    run.refresh_from_db()
    return run


def workflow_run_retry(*, run: WorkflowRun, actor: Any) -> WorkflowRun:
    _require_run_manager(run, actor)
    with transaction.atomic():
        row = WorkflowRun.objects.select_for_update().get(pk=run.pk)
        if row.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise Conflict(
                f"The run is {row.status}; only failed or cancelled runs can be retried.", code="not_retryable"
            )
        # A new attempt of the failed step starts its work afresh (a new generation or export);
        # redeliveries within one attempt keep using the checkpoints.
        StepRun.objects.filter(
            run=row, status__in=[StepStatus.FAILED, StepStatus.CANCELLED, StepStatus.RUNNING]
        ).update(status=StepStatus.PENDING, error=None, checkpoints={})
        # a step whose repository was deleted runs again (a new export creates it again)
        StepRun.objects.filter(run=row, status=StepStatus.COMPENSATED).update(
            status=StepStatus.PENDING, error=None, checkpoints={}, output=None, compensation=None
        )
        WorkflowRun.objects.filter(pk=row.pk).update(**{**retry_fields(row), "started_at": row.started_at})
        job_log(WorkflowRun, row.pk, f"INFO retried: attempt {row.attempts + 1}")
        announce_status(WorkflowRun, row.pk, JobStatus.PENDING)
        _enqueue(row)
    run.refresh_from_db()
    return run


def _context(run: WorkflowRun) -> dict[str, Any]:
    steps = {
        s.step_id: {"output": s.output, "status": s.status}
        for s in StepRun.objects.filter(run=run).only("step_id", "output", "status")
    }
    return {"inputs": run.inputs, "steps": steps}


def render_step_input(run: WorkflowRun, step_id: str) -> tuple[int, dict[str, Any], Any]:
    """(index, step, input rendered from the run's inputs and earlier outputs as they are now)."""
    index, step = next((i, s) for i, s in enumerate(run.steps_snapshot) if s["id"] == step_id)
    return index, step, render_value(step.get("input", {}), _context(run))


def _approval_reason(run: WorkflowRun, step: dict[str, Any], rendered: Any) -> str | None:
    from apps.approvals.models import ApprovalReason

    if step.get("requires_approval"):
        return ApprovalReason.REQUIRES_APPROVAL
    executor = get_step_executor(step["type"])
    return executor.approval_reason(run.actor, rendered) if executor.approval_reason is not None else None


def _gate(
    run: WorkflowRun, step_run: StepRun, step: dict[str, Any], rendered: Any, lease: Any
) -> tuple[Any, bool] | None:
    """(input to run the step with, whether it was approved); None when the run stops here for now.

    A step that needs approval asks for it once per attempt of the run (the plan is recorded with
    the approval), parks the run `awaiting_approval` and returns None; after approval the step
    runs with the approved plan's input exactly.
    """
    from apps.approvals.models import Approval, ApprovalStatus
    from apps.approvals.services import approval_request

    reason = _approval_reason(run, step, rendered)
    if reason is None:
        return rendered, False
    approval = Approval.objects.filter(run=run, step_id=step_run.step_id, attempt=run.attempts).first()
    if approval is not None and approval.status == ApprovalStatus.APPROVED:
        return approval.plan["input"], True
    if approval is not None and approval.status != ApprovalStatus.PENDING:
        lease.finish(JobStatus.CANCELLED)  # rejected or withdrawn: the run is ending
        return None
    with transaction.atomic():
        if approval is None:
            StepRun.objects.filter(pk=step_run.pk).update(status=StepStatus.AWAITING_APPROVAL, rendered_input=rendered)
            plan_project = _step_project(run, step, rendered)
            approval_request(
                kind="run_step", project=plan_project, actor=run.actor, reason=reason, run=run, step_id=step_run.step_id
            )
            job_log(WorkflowRun, run.pk, f"[{step_run.step_id}] INFO waiting for approval ({reason})")
        lease.await_approval()
    return None


def _step_project(run: WorkflowRun, step: dict[str, Any], rendered: Any) -> Project | None:
    """The project whose maintainers decide: the workflow's, else the one the step works in."""
    if run.workflow.project_id is not None:
        return run.workflow.project
    executor = get_step_executor(step["type"])
    described = executor.plan(rendered) if executor.plan is not None else {}
    project = described.get("project") if isinstance(described, dict) else None
    return Project.objects.filter(pk=project["id"]).first() if isinstance(project, dict) else None


def workflow_run_approved(*, run_id: int, step_id: str) -> None:
    """The step's approval was granted: the run goes back to `pending` and is enqueued (caller's tx)."""
    now = timezone.now()
    if WorkflowRun.objects.filter(pk=run_id, status=JobStatus.AWAITING_APPROVAL).update(
        status=JobStatus.PENDING, enqueued_at=now, delivery_count=0, updated_at=now
    ):
        StepRun.objects.filter(run_id=run_id, step_id=step_id, status=StepStatus.AWAITING_APPROVAL).update(
            status=StepStatus.PENDING
        )
        job_log(WorkflowRun, run_id, f"[{step_id}] INFO approved; the run continues")
        announce_status(WorkflowRun, run_id, JobStatus.PENDING)
        _enqueue(WorkflowRun(pk=run_id))


def workflow_run_rejected(*, run_id: int, step_id: str, error: dict[str, Any]) -> None:
    """The step's approval was refused: the run ends `cancelled` with that error (caller's tx)."""
    now = timezone.now()
    payload = error_payload(error["code"], f"Step '{step_id}': {error['message']}", {"step": step_id})
    if WorkflowRun.objects.filter(pk=run_id, status=JobStatus.AWAITING_APPROVAL).update(
        status=JobStatus.CANCELLED, error=payload, finished_at=now, updated_at=now
    ):
        StepRun.objects.filter(run_id=run_id, step_id=step_id).update(
            status=StepStatus.CANCELLED, error={"code": error["code"], "message": error["message"]}
        )
        StepRun.objects.filter(run_id=run_id, status=StepStatus.PENDING).update(status=StepStatus.CANCELLED)
        announce_status(WorkflowRun, run_id, JobStatus.CANCELLED, payload)
        transaction.on_commit(
            lambda: job_status_changed.send(sender=WorkflowRun, pk=run_id, status=JobStatus.CANCELLED)
        )


def workflow_run_advance(*, run_id: int, owner: str) -> bool:
    """Execute the next step of the run. Returns True when another step should follow."""
    result = claim(WorkflowRun, run_id, owner=owner)
    if result.outcome == ClaimOutcome.BUSY:
        from apps.projects.services.generation import JobBusy

        raise JobBusy(result.retry_in)
    if result.outcome != ClaimOutcome.CLAIMED:
        # a run cancelled while pending, or found cancelled at claim: its open steps are cancelled too
        StepRun.objects.filter(
            run_id=run_id, run__status=JobStatus.CANCELLED, status__in=[StepStatus.PENDING, StepStatus.RUNNING]
        ).update(status=StepStatus.CANCELLED)
        return False
    lease = result.lease
    assert lease is not None
    run = WorkflowRun.objects.select_related("workflow", "agent", "actor").get(pk=run_id)
    step_run = (
        StepRun.objects.filter(run=run)
        .exclude(status__in=[StepStatus.COMPLETED, StepStatus.SKIPPED])
        .order_by("index")
        .first()
    )
    if run.cancel_requested:
        StepRun.objects.filter(run=run, status__in=[StepStatus.PENDING, StepStatus.RUNNING]).update(
            status=StepStatus.CANCELLED
        )
        lease.finish(JobStatus.CANCELLED)
        return False
    if step_run is None:
        outputs = {s.step_id: s.output for s in StepRun.objects.filter(run=run, status=StepStatus.COMPLETED)}
        lease.finish(JobStatus.COMPLETED, outputs=outputs, progress_done=run.progress_total)
        return False
    step = run.steps_snapshot[step_run.index]
    context = _context(run)
    try:
        rendered = step_input(step, context)
        if rendered is SKIP:
            StepRun.objects.filter(pk=step_run.pk).update(
                status=StepStatus.SKIPPED,
                started_at=timezone.now(),
                finished_at=timezone.now(),
                logs=["INFO condition false; skipped"],
            )
            job_log(WorkflowRun, run.pk, f"[{step_run.step_id}] INFO condition false; skipped")
            return _step_done(run, lease)
    except ApplicationError as exc:
        now = timezone.now()
        StepRun.objects.filter(pk=step_run.pk).update(
            status=StepStatus.FAILED,
            error={"code": exc.code, "message": exc.message},
            started_at=now,
            finished_at=now,
            attempt=step_run.attempt + 1,
        )
        job_log(WorkflowRun, run.pk, f"[{step_run.step_id}] ERROR {exc.code}: {exc.message}")
        _finish_failed(run, lease, step_run.step_id, exc.code, f"Step '{step_run.step_id}': {exc.message}")
        return False

    try:
        gated = _gate(run, step_run, step, rendered, lease)
    except ApplicationError as exc:  # the plan cannot be made (e.g. its generation is gone)
        now = timezone.now()
        StepRun.objects.filter(pk=step_run.pk).update(
            status=StepStatus.FAILED, error={"code": exc.code, "message": exc.message}, started_at=now, finished_at=now
        )
        _finish_failed(run, lease, step_run.step_id, exc.code, f"Step '{step_run.step_id}': {exc.message}")
        return False
    if gated is None:
        return False
    rendered, approved = gated

    started = timezone.now()
    StepRun.objects.filter(pk=step_run.pk).update(
        status=StepStatus.RUNNING,
        rendered_input=rendered,
        started_at=started,
        finished_at=None,
        attempt=step_run.attempt + 1,
    )

    def save_checkpoint(key: str, value: Any) -> None:
        StepRun.objects.filter(pk=step_run.pk).update(checkpoints={**step_run.checkpoints, key: value})
        step_run.checkpoints[key] = value

    step_context = StepContext(
        step_id=step_run.step_id,
        lease_owner=owner,
        run_id=run.pk,
        actor=run.actor,
        agent=run.agent,
        checkpoints=dict(step_run.checkpoints),
        save_checkpoint=save_checkpoint,
        approved=approved,
    )
    lease.heartbeat(done=step_run.index, total=len(run.steps_snapshot))
    job_log(WorkflowRun, run.pk, f"[{step_run.step_id}] INFO {step['type']} started (attempt {step_run.attempt + 1})")
    outcome = run_step(step["type"], rendered, step_context)
    StepRun.objects.filter(pk=step_run.pk).update(
        status=StepStatus.COMPLETED if outcome.status == "completed" else StepStatus.FAILED,
        output=outcome.output,
        error=outcome.error,
        logs=outcome.logs[-500:],
        finished_at=outcome.finished_at,
    )
    for line in outcome.logs[-500:]:
        job_log(WorkflowRun, run.pk, f"[{step_run.step_id}] {line}")
    job_log(WorkflowRun, run.pk, f"[{step_run.step_id}] INFO {outcome.status} in {outcome.duration:.2f}s")
    if outcome.status != "completed":
        error = outcome.error or {"code": "step_failed", "message": "failed"}
        _finish_failed(
            run, lease, step_run.step_id, error["code"], f"Step '{step_run.step_id}' failed: {error['message']}"
        )
        return False
    return _step_done(run, lease)


def _finish_failed(run: WorkflowRun, lease: Any, step_id: str, code: str, message: str) -> None:
    """The run fails at `step_id`; first, what earlier steps asked to undo on failure is undone."""
    extra: dict[str, Any] = {"step": step_id}
    compensated = _compensate(run)
    if compensated:
        extra["compensation"] = compensated
    lease.finish(JobStatus.FAILED, error=error_payload(code, message, extra))


def _compensate(run: WorkflowRun) -> list[dict[str, Any]]:
    """Delete the repositories this run created with `on_failure: delete_created_repository`.

    Each completed such step is compensated once, latest first: its export's own repository is
    deleted through the provider (never an adopted one), and the outcome is recorded on the step
    (`compensated` when deleted or already gone). A failed deletion is recorded and not tried again.
    """
    from apps.projects.services.exports import repository_export_compensate
    from apps.workflows.services.step_executors.repo_creation_step import DELETE_CREATED_REPOSITORY

    results = []
    steps = StepRun.objects.filter(
        run=run, type="repo_creation", status=StepStatus.COMPLETED, compensation__isnull=True
    ).order_by("-index")
    for step_run in steps:
        data = step_run.rendered_input if isinstance(step_run.rendered_input, dict) else {}
        if data.get("on_failure") != DELETE_CREATED_REPOSITORY:
            continue
        export_id = (step_run.output or {}).get("export_id")
        result = (
            repository_export_compensate(export_id=int(export_id))
            if export_id
            else {"outcome": "kept", "reason": "the step recorded no export"}
        )
        done = result["outcome"] in ("deleted", "already_gone")
        StepRun.objects.filter(pk=step_run.pk).update(
            status=StepStatus.COMPENSATED if done else StepStatus.COMPLETED, compensation=result
        )
        detail = result.get("repository") or ""
        level = "WARNING" if result["outcome"] != "failed" else "ERROR"
        job_log(
            WorkflowRun, run.pk, f"[{step_run.step_id}] {level} compensation: {result['outcome']} {detail}".rstrip()
        )
        results.append({"step": step_run.step_id, **result})
    return results


def _step_done(run: WorkflowRun, lease: Any) -> bool:
    """Hand the run to the next step's task (a fresh delivery budget), or finish it."""
    remaining = StepRun.objects.filter(run=run).exclude(status__in=[StepStatus.COMPLETED, StepStatus.SKIPPED]).exists()
    done = StepRun.objects.filter(run=run, status__in=[StepStatus.COMPLETED, StepStatus.SKIPPED]).count()
    if not remaining:
        outputs = {s.step_id: s.output for s in StepRun.objects.filter(run=run, status=StepStatus.COMPLETED)}
        lease.finish(JobStatus.COMPLETED, outputs=outputs, progress_done=done)
        return False
    lease.stop_keeping()  # given back by the UPDATE below, for the next step's task
    if WorkflowRun.objects.filter(pk=run.pk, lease_owner=lease.owner).update(
        delivery_count=0, lease_owner="", lease_expires_at=None, progress_done=done, updated_at=timezone.now()
    ):
        announce(WorkflowRun, run.pk, "progress", {"done": done, "total": len(run.steps_snapshot)})
    return True
