"""`run_step`: a workflow run that stops before one of its steps until a person approves it.

The plan is the step's input rendered from the run's inputs and the earlier steps' outputs as
they are now, plus what its step type shows an approver (the template as the catalog has it, the
files' manifest hash and the target). Once approved, the step runs with the approved input.
"""

from __future__ import annotations

from typing import Any

from apps.approvals.kinds import register_kind
from apps.approvals.kinds.export import _label


@register_kind
class RunStepApproval:
    id = "run_step"

    def plan(self, approval: Any) -> dict[str, Any]:
        from apps.workflows.models import WorkflowRun
        from apps.workflows.services.step_executors import get_step_executor
        from apps.workflows.services.workflow_executor import render_step_input

        run = WorkflowRun.objects.select_related("workflow", "actor__agent_identity").get(pk=approval.run_id)
        index, step, rendered = render_step_input(run, approval.step_id)
        executor = get_step_executor(step["type"])
        return {
            "kind": "run_step",
            "run": run.pk,
            "attempt": run.attempts,
            "workflow": {"id": run.workflow_id, "name": run.workflow.name},
            "step": {"id": step["id"], "type": step["type"], "index": index},
            "input": rendered,
            "requested_by": _label(run.actor),
            **(executor.plan(rendered) if executor.plan is not None else {}),
        }

    def resume(self, approval: Any) -> None:
        from apps.workflows.services.workflow_executor import workflow_run_approved

        workflow_run_approved(run_id=approval.run_id, step_id=approval.step_id)

    def end(self, approval: Any, *, error: dict[str, Any]) -> None:
        from apps.workflows.services.workflow_executor import workflow_run_rejected

        workflow_run_rejected(run_id=approval.run_id, step_id=approval.step_id, error=error)
