"""Approval services: who must wait for approval, requesting it, approving and rejecting.

Each state change is one function here, checked first, then done in one transaction with the
gated job's own change (through its kind in `apps/approvals/kinds/`), so a job is never left
`awaiting_approval` without a pending approval, nor approved without being enqueued.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.approvals.kinds import get_kind
from apps.approvals.models import Approval, ApprovalReason, ApprovalStatus
from apps.projects.models import Project, Role
from apps.projects.selectors import project_role, role_at_least
from core.exceptions import ApplicationError, Conflict, PermissionDenied, ValidationFailed

logger = logging.getLogger("kiln.approvals")

# Exports that publish somewhere people see: an agent's wait for a person (when the project says so).
GATED_PROVIDERS = frozenset({"github", "gitlab"})
APPROVER_IS_AGENT = "Agents cannot approve or reject; a maintainer or owner of the project decides."
SELF_APPROVAL = "An agent cannot approve its own request; a maintainer or owner of the project decides."


def hash_plan(plan: dict[str, Any]) -> str:
    """The plan's hash: sha256 of its canonical JSON (sorted keys, no spaces, UTF-8)."""
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _agent_of(user: Any) -> Any:
    from apps.agents.services.agents import agent_for_user

    return agent_for_user(user)


def export_approval_reason(*, actor: Any, project: Project, provider: str) -> str | None:
    """Why an export by `actor` must wait for approval, or None: an agent's GitHub/GitLab export in
    a project with `agent_exports_require_approval` (REST, workflows and MCP all start exports here)."""
    if provider not in GATED_PROVIDERS or not project.agent_exports_require_approval:
        return None
    return ApprovalReason.AGENT_EXPORT if _agent_of(actor) is not None else None


def approval_request(
    *,
    kind: str,
    project: Project | None,
    actor: Any,
    reason: str,
    export: Any = None,
    run: Any = None,
    step_id: str = "",
) -> Approval:
    """Record a pending approval with the job's current plan (inside the caller's transaction)."""
    approval = Approval(
        project=project,
        kind=kind,
        export=export,
        run=run,
        step_id=step_id,
        attempt=(export or run).attempts,
        reason=reason,
        requested_by=actor if getattr(actor, "is_authenticated", False) else None,
        requested_at=timezone.now(),
    )
    approval.plan = get_kind(kind).plan(approval)
    approval.plan_sha256 = hash_plan(approval.plan)
    approval.save()
    return approval


def can_decide(user: Any, approval: Approval) -> str | None:
    """None when `user` may approve or reject, else why not.

    A person with the maintainer or owner role in the project decides (a superuser too, from the
    admin); for a project an agent owns, the agent's owner does. Never an agent: not the one that
    asked (`self_approval`), nor any other.
    """
    if not getattr(user, "is_authenticated", False):
        return "Not authenticated."
    if _agent_of(user) is not None:
        return SELF_APPROVAL if approval.requested_by_id == user.pk else APPROVER_IS_AGENT
    if user.is_superuser:
        return None
    project = approval.project
    if project is None:  # a step of a personal workflow (no project): its creator decides
        if approval.run is not None and approval.run.workflow.created_by_id == user.pk:
            return None
        return "Only the workflow's creator can decide approvals of its runs."
    if role_at_least(project_role(user, project), Role.MAINTAINER):
        return None
    owner_agent = _agent_of(project.owner)
    if owner_agent is not None and owner_agent.owner_id == user.pk:
        return None
    return "Approving needs the maintainer or owner role in the project."


def approvals_visible_to(user: Any) -> QuerySet[Approval]:
    """Approvals `user` may decide: projects where they are maintainer/owner, or their agents own."""
    if not getattr(user, "is_authenticated", False) or _agent_of(user) is not None:
        return Approval.objects.none()
    base = Approval.objects.select_related(
        "project", "requested_by", "decided_by", "export", "run", "requested_by__agent_identity"
    )
    if user.is_superuser:
        return base
    return base.filter(
        Q(project__memberships__user_id=user.pk, project__memberships__role__in=[Role.MAINTAINER, Role.OWNER])
        | Q(project__owner__agent_identity__owner_id=user.pk)
        | Q(project__isnull=True, run__workflow__created_by_id=user.pk)
    ).distinct()


def _check(approval: Approval, actor: Any) -> None:
    why = can_decide(actor, approval)
    if why is not None:
        code = "self_approval" if why == SELF_APPROVAL else "permission_denied"
        raise PermissionDenied(why, code=code)


def _pending(approval: Approval) -> Approval:
    row = Approval.objects.select_for_update(of=("self",)).select_related("project").get(pk=approval.pk)
    if row.status != ApprovalStatus.PENDING:
        raise Conflict(
            f"This approval is already {row.status}.", code="approval_not_pending", extra={"status": row.status}
        )
    return row


def approval_approve(*, approval: Approval, actor: Any, plan_sha256: Any) -> Approval:
    """Approve the plan whose hash the approver saw; the job then runs exactly that plan.

    A hash that is not the job's current plan (it changed since it was shown, or it is another
    job's) is a 409 `plan_changed` with the current plan and hash, and nothing runs.
    """
    _check(approval, actor)
    if not isinstance(plan_sha256, str) or len(plan_sha256) != 64:
        raise ValidationFailed(
            "plan_sha256 (the hash of the plan you approve) is required.",
            extra={"fields": {"plan_sha256": ["A 64-character sha256 hex digest."]}},
        )
    changed: dict[str, Any] | None = None
    with transaction.atomic():
        row = _pending(approval)
        kind = get_kind(row.kind)
        try:
            current = kind.plan(row)
        except ApplicationError as exc:
            raise Conflict(
                f"The plan can no longer be made: {exc.message}", code="plan_changed", extra={"reason": exc.code}
            ) from None
        current_sha = hash_plan(current)
        if current_sha != row.plan_sha256:
            # what runs changed since it was asked: the approval now shows the new plan
            row.plan, row.plan_sha256 = current, current_sha
            row.save(update_fields=["plan", "plan_sha256", "updated_at"])
        if plan_sha256 != current_sha:
            changed = {"plan_sha256": current_sha, "plan": current}
        else:
            row.status = ApprovalStatus.APPROVED
            row.decided_by, row.decided_at = actor, timezone.now()
            row.save(update_fields=["status", "decided_by", "decided_at", "updated_at"])
            kind.resume(row)
    if changed is not None:
        raise Conflict(
            "The plan changed since it was shown (or the hash is another plan's): review the current plan and "
            "approve its plan_sha256. Nothing ran.",
            code="plan_changed",
            extra=changed,
        )
    return row


def approval_reject(*, approval: Approval, actor: Any, comment: str = "") -> Approval:
    """Reject: the job ends `cancelled` with error code `rejected`."""
    _check(approval, actor)
    with transaction.atomic():
        row = _pending(approval)
        row.status = ApprovalStatus.REJECTED
        row.decided_by, row.decided_at, row.comment = actor, timezone.now(), comment
        row.save(update_fields=["status", "decided_by", "decided_at", "comment", "updated_at"])
        who = actor.get_username() if hasattr(actor, "get_username") else "an approver"
        message = f"Rejected by {who}" + (f": {comment}" if comment else ".")
        get_kind(row.kind).end(row, error={"code": "rejected", "message": message})
    return row


def approvals_withdraw(*, export: Any = None, run: Any = None) -> None:
    """The job was cancelled or retried: its pending approvals no longer stand (inside the caller's tx)."""
    rows = Approval.objects.filter(status=ApprovalStatus.PENDING)
    rows = rows.filter(export=export) if export is not None else rows.filter(run=run)
    for row in rows.select_for_update():
        row.status = ApprovalStatus.WITHDRAWN
        row.decided_at = timezone.now()
        row.save(update_fields=["status", "decided_at", "updated_at"])


def approval_summary(approval: Approval | None) -> dict[str, Any] | None:
    """The `approval` object of an export or run in the API."""
    if approval is None:
        return None
    return {
        "id": approval.pk,
        "status": approval.status,
        "reason": approval.reason,
        "step": approval.step_id or None,
        "plan": approval.plan,
        "plan_sha256": approval.plan_sha256,
        "requested_at": approval.requested_at,
        "decided_by": approval.decided_by.get_username() if approval.decided_by else None,
        "decided_at": approval.decided_at,
    }
