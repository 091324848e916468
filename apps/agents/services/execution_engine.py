"""execution_engine: run a workflow as an agent, so its api_call steps carry the agent's identity."""

from __future__ import annotations

from typing import Any

from apps.agents.models import Agent
from apps.workflows.models import WorkflowRun
from apps.workflows.services.workflow_executor import workflow_run_start, workflows_visible_to
from core.exceptions import ValidationFailed


def agent_run_start(*, agent: Agent, workflow_id: Any, inputs: Any, actor: Any) -> WorkflowRun:
    """`actor` (the agent's owner) starts `workflow_id` with the agent as the run's identity."""
    workflow = workflows_visible_to(actor).filter(pk=workflow_id).first() if str(workflow_id).isdigit() else None
    if workflow is None:
        raise ValidationFailed(
            "Unknown workflow.", code="workflow_not_found", extra={"fields": {"workflow": ["Unknown."]}}
        )
    return workflow_run_start(workflow=workflow, inputs=inputs, actor=actor, agent=agent)
