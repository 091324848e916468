"""`api_call`: call one operation of Kiln's own API as the run's identity (agent or user).

The call goes through the agents' API caller: the operation must exist in Kiln's OpenAPI
schema, parameters are validated, and the request carries a short-lived token of the
run's own identity, so the API's permission rules decide exactly as for that identity.
A 4xx/5xx answer fails the step with the API's code and status.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings

from apps.workflows.services.step_executors.base import StepContext, StepFailed, register_step

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["operation"],
    "properties": {
        "operation": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "operation id from /api/v1/agents/discovery/ (checked by the caller when the step runs)",
        },
        "path_params": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
        "query": {"type": "object"},
        "body": {},
    },
    "additionalProperties": False,
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status_code", "body"],
    "properties": {"status_code": {"type": "integer"}, "body": {}},
}


def _run_token(context: StepContext) -> tuple[str, Any]:
    ttl = timedelta(seconds=settings.KILN_RUN_TOKEN_TTL_SECONDS)
    if context.agent is not None:
        from apps.agents.services.agents import agent_token_issue

        row, token = agent_token_issue(
            agent=context.agent, name=f"run {context.run_id} step {context.step_id}", ttl=ttl
        )
        return token, row
    if context.actor is None:
        raise StepFailed("api_call steps need a run identity (a user or an agent).", code="no_identity")
    from apps.accounts.services import user_token_issue

    user_row, token = user_token_issue(user=context.actor, name=f"run {context.run_id} step {context.step_id}", ttl=ttl)
    return token, user_row


@register_step(
    type_id="api_call",
    description="Call one operation of Kiln's API (by operation id) as the run's agent or user.",
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    examples=(
        {"operation": "projects_create", "body": {"name": "From an agent"}},
        {"operation": "generated_retrieve", "path_params": {"project_id": 1, "id": 3}},
    ),
)
def api_call(context: StepContext, data: dict[str, Any]) -> dict[str, Any]:
    from django.utils import timezone

    from apps.agents.services.api_caller import AgentAPICaller

    token, row = _run_token(context)
    context.secrets = (*context.secrets, token)
    try:
        response = AgentAPICaller(token).call(
            data["operation"], data.get("path_params"), data.get("query"), data.get("body")
        )
    finally:
        type(row).objects.filter(pk=row.pk).update(revoked_at=timezone.now())
    context.log(f"{data['operation']} answered {response.status_code}")
    if response.status_code >= 400:
        body = response.body if isinstance(response.body, dict) else {}
        raise StepFailed(
            f"{data['operation']} answered {response.status_code}: {body.get('message') or 'error'}",
            code=str(body.get("code") or f"http_{response.status_code}"),
            extra={"status_code": response.status_code},
        )
    return {"status_code": response.status_code, "body": response.body}
