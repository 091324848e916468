"""Rollouts: one template version to the whole fleet, a bounded number of updates at a time.

`rollout_start` picks the targets once, at request time: every completed git/GitHub/GitLab
export of the template (one per repository) in the projects where the caller is maintainer
or above, each from its current generation (see `targets`). Projects where the caller has a
lower role are left untouched and named in `skipped`. The rollout is a job whose worker step,
`rollout_advance`, syncs the items with their updates, starts pending items while fewer than
KILN_ROLLOUT_CONCURRENCY are running, and gives the job back (running, no lease) until every
item is finished; each finished item update enqueues another advance, and the reaper
re-enqueues a rollout nothing moved for a while. Re-running a rollout is idempotent: the same
request while one is active returns it, and a later one updates the same branches and the same
open pull/merge requests through the items' updates.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.projects.models import Role
from apps.projects.selectors import projects_with_role, role_at_least
from apps.templates.models import ProjectTemplate
from apps.templates.services.catalog import template_get
from apps.updates.models import Rollout, RolloutItem, RolloutItemStatus, TemplateUpdate, UpdateMode
from apps.updates.services import versions
from apps.updates.services.targets import resolve, targets_of
from core.exceptions import ApplicationError, LimitExceeded, NotFound, ValidationFailed
from core.jobs import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    ClaimOutcome,
    JobStatus,
    LeaseLost,
    claim,
    enqueue_on_commit,
    error_payload,
    job_log,
)

logger = logging.getLogger("kiln.rollouts")

BODY_FIELDS = {"to_version", "mode", "projects"}
ITEM_STATUS = {
    JobStatus.PENDING: RolloutItemStatus.RUNNING,
    JobStatus.RUNNING: RolloutItemStatus.RUNNING,
    JobStatus.COMPLETED: RolloutItemStatus.COMPLETED,
    JobStatus.FAILED: RolloutItemStatus.FAILED,
    JobStatus.CANCELLED: RolloutItemStatus.CANCELLED,
}
FINISHED_ITEMS = (RolloutItemStatus.COMPLETED, RolloutItemStatus.FAILED, RolloutItemStatus.CANCELLED)


class RolloutBusy(Exception):
    def __init__(self, retry_in: float) -> None:
        super().__init__(f"busy, retry in {retry_in:.0f}s")
        self.retry_in = retry_in


def _clean(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.")
    unknown = sorted(set(data) - BODY_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"Unknown fields: {', '.join(unknown)}.", extra={"fields": {key: ["Unknown field."] for key in unknown}}
        )
    mode = data.get("mode")
    if mode not in UpdateMode.values:
        raise ValidationFailed(
            f"mode is required: one of {', '.join(UpdateMode.values)}.", extra={"fields": {"mode": ["Invalid choice."]}}
        )
    version = data.get("to_version")
    if version is not None and (not isinstance(version, str) or not version.strip() or len(version) > 100):
        raise ValidationFailed("to_version must be a version label.", extra={"fields": {"to_version": ["Invalid."]}})
    projects = data.get("projects")
    if projects is not None:
        if not isinstance(projects, list) or len(projects) > 500:
            raise ValidationFailed(
                "projects must be a list of project ids.", extra={"fields": {"projects": ["Expected a list of ids."]}}
            )
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in projects):
            raise ValidationFailed(
                "projects must be a list of project ids.", extra={"fields": {"projects": ["Expected integer ids."]}}
            )
        projects = sorted(set(projects))
    return {"mode": mode, "to_version": version, "projects": projects}


def rollout_start(*, template_slug: str, data: Any, actor: Any, enqueue: bool = True) -> tuple[Rollout, bool]:
    """Record a rollout and its items, then enqueue it. Returns (rollout, created)."""
    if not getattr(actor, "is_authenticated", False):
        raise NotFound("No such template.")
    body = _clean(data)
    template = template_get(slug=template_slug)
    version = versions.target_version(template, body["to_version"])
    key = hashlib.sha256(
        json.dumps(
            {
                "template": template.pk,
                "version": version.label,
                "mode": body["mode"],
                "projects": body["projects"],
                "actor": actor.pk,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    minimum = Role.DEVELOPER if body["mode"] == UpdateMode.PREVIEW else Role.MAINTAINER
    wanted = set(body["projects"]) if body["projects"] is not None else None
    with transaction.atomic():
        active = Rollout.objects.select_for_update().filter(request_key=key, status__in=ACTIVE_STATUSES).first()
        if active is not None:
            return active, False
        targets = [
            t
            for t in targets_of(template, actor=actor, minimum=minimum)
            if wanted is None or t.export.generated.project_id in wanted
        ]
        rollout = Rollout.objects.create(
            template=template,
            to_version=version.label,
            mode=body["mode"],
            projects=body["projects"],
            request_key=key,
            created_by=actor,
            progress_total=len(targets),
            enqueued_at=timezone.now(),
        )
        RolloutItem.objects.bulk_create(
            [
                RolloutItem(
                    rollout=rollout, project_id=t.export.generated.project_id, generated=t.generated, export=t.export
                )
                for t in targets
            ]
        )
        if enqueue:
            _enqueue(rollout)
    return rollout, True


def skipped_projects(rollout: Rollout, actor: Any) -> list[dict[str, Any]]:
    """Projects the caller can see, with targets of this template, that the rollout left alone."""
    minimum = Role.DEVELOPER if rollout.mode == UpdateMode.PREVIEW else Role.MAINTAINER
    included = set(rollout.items.values_list("project_id", flat=True))
    found: list[dict[str, Any]] = []
    for target in targets_of(rollout.template, actor=actor):
        project_id = target.export.generated.project_id
        if project_id in included or any(s["project"] == project_id for s in found):
            continue
        if rollout.projects is not None and project_id not in rollout.projects:
            continue
        if not role_at_least(target.role, minimum):
            found.append({"project": project_id, "reason": f"your role is {target.role}; {minimum} or above is needed"})
    return found


def _enqueue(rollout: Rollout) -> None:
    from apps.updates.tasks import advance_rollout

    enqueue_on_commit(advance_rollout, rollout.pk, model=Rollout)


def rollouts_visible_to(actor: Any) -> QuerySet[Rollout]:
    """Rollouts the caller started, or that touch one of the caller's projects."""
    if not getattr(actor, "is_authenticated", False):
        return Rollout.objects.none()
    mine = projects_with_role(actor).values("pk")
    return (
        Rollout.objects.filter(created_by_id=actor.pk)
        .union(Rollout.objects.filter(items__project_id__in=mine))
        .order_by("-created_at")
    )


def rollout_get(*, pk: Any, actor: Any) -> Rollout:
    try:
        key = int(pk)
    except (TypeError, ValueError):
        raise NotFound("No such rollout.") from None
    if not getattr(actor, "is_authenticated", False):
        raise NotFound("No such rollout.")
    mine = projects_with_role(actor).values("pk")
    rollout = (
        Rollout.objects.filter(pk=key).filter(created_by_id=actor.pk).select_related("template").first()
        or Rollout.objects.filter(pk=key, items__project_id__in=mine).select_related("template").distinct().first()
    )
    if rollout is None:
        raise NotFound("No such rollout.")
    return rollout


def items_visible(rollout: Rollout, actor: Any) -> QuerySet[RolloutItem]:
    """The rollout's items in projects the caller can see (the starter sees all of them)."""
    items = rollout.items.select_related("update").order_by("id")
    if rollout.created_by_id == getattr(actor, "pk", None):
        return items
    return items.filter(project_id__in=projects_with_role(actor).values("pk"))


# --- execution ----------------------------------------------------------------------------------


def _sync(item: RolloutItem) -> None:
    update = item.update
    if update is None:
        return
    status = ITEM_STATUS[JobStatus(update.status)]
    fields = {
        "status": status,
        "outcome": update.outcome,
        "pull_request": update.pull_request,
        "error": update.error,
    }
    if any(getattr(item, name) != value for name, value in fields.items()):
        RolloutItem.objects.filter(pk=item.pk).update(updated_at=timezone.now(), **fields)
        for name, value in fields.items():
            setattr(item, name, value)


def _start_item(rollout: Rollout, item: RolloutItem) -> TemplateUpdate | None:
    """Record the item's update (enqueued by the caller once the rollout's lease is handed back)."""
    from apps.updates.services.updates import update_start

    # where the repository is now: a proposal merged since the rollout was requested moves the base
    current, _open = resolve(item.export, observe=True)
    if current.pk != item.generated_id:
        RolloutItem.objects.filter(pk=item.pk).update(generated=current, updated_at=timezone.now())
        item.generated = current
    data: dict[str, Any] = {"to_version": rollout.to_version, "mode": rollout.mode, "export": item.export_id}
    try:
        update, _ = update_start(generated=current, data=data, actor=rollout.created_by, enqueue=False)
    except LimitExceeded:
        return None  # the project is busy; the item waits for the next advance
    except ApplicationError as exc:
        RolloutItem.objects.filter(pk=item.pk).update(
            status=RolloutItemStatus.FAILED,
            error=error_payload(exc.code, exc.message, exc.extra or None),
            updated_at=timezone.now(),
        )
        job_log(Rollout, rollout.pk, f"WARNING item {item.pk} (export {item.export_id}): {exc.code}: {exc.message}")
        return None
    RolloutItem.objects.filter(pk=item.pk).update(
        update=update, status=RolloutItemStatus.RUNNING, updated_at=timezone.now()
    )
    job_log(Rollout, rollout.pk, f"INFO item {item.pk} (export {item.export_id}): update {update.pk} started")
    return update


def rollout_advance(*, rollout_id: int, owner: str) -> Rollout:
    """One step of a rollout job: sync the items, record the updates that fit, finish or hand the
    job back, and only then enqueue the recorded updates (so an update that finishes at once, and
    the advance it triggers, never finds this step still holding the lease)."""
    from apps.updates.services.updates import update_enqueue

    result = claim(Rollout, rollout_id, owner=owner)
    if result.outcome == ClaimOutcome.MISSING:
        raise NotFound(f"Rollout {rollout_id} does not exist.", code="job_not_found")
    if result.outcome == ClaimOutcome.BUSY:
        raise RolloutBusy(result.retry_in)
    rollout = Rollout.objects.select_related("template", "created_by").get(pk=rollout_id)
    if result.outcome != ClaimOutcome.CLAIMED:
        return rollout
    lease = result.lease
    assert lease is not None
    started: list[TemplateUpdate] = []
    try:
        items = list(
            rollout.items.select_related(
                "update", "generated__project", "generated__template", "export__connection", "export__generated"
            ).order_by("id")
        )
        for item in items:
            _sync(item)
        running = sum(1 for item in items if item.status == RolloutItemStatus.RUNNING)
        slots = max(settings.KILN_ROLLOUT_CONCURRENCY - running, 0)
        cancelled = lease.heartbeat()
        if cancelled:
            RolloutItem.objects.filter(rollout=rollout, status=RolloutItemStatus.PENDING).update(
                status=RolloutItemStatus.CANCELLED, updated_at=timezone.now()
            )
        for item in items:
            if slots <= 0 or cancelled:
                break
            if item.status == RolloutItemStatus.PENDING and item.update_id is None:
                update = _start_item(rollout, item)
                if update is not None:
                    started.append(update)
                    slots -= 1
        statuses = list(rollout.items.values_list("status", flat=True))
        done = sum(1 for status in statuses if status in FINISHED_ITEMS)
        if done == len(statuses):
            status = JobStatus.CANCELLED if cancelled else JobStatus.COMPLETED
            lease.finish(status, progress_done=done, progress_total=len(statuses))
        else:
            lease.heartbeat(done=done, total=len(statuses))
            # hand the job back: running, no lease, deliveries reset; the next item to finish (or
            # the reaper, if nothing moves) enqueues the next advance
            lease.stop_keeping()
            Rollout.objects.filter(pk=rollout.pk, lease_owner=owner).update(
                lease_owner="", lease_expires_at=None, delivery_count=0, updated_at=timezone.now()
            )
    except LeaseLost:
        logger.warning("rollout %s: lease lost; another delivery owns it", rollout_id)
    except ApplicationError as exc:
        lease.finish(JobStatus.FAILED, error=error_payload(exc.code, exc.message, exc.extra or None))
    for update in started:
        update_enqueue(update)
    rollout.refresh_from_db()
    return rollout


def rollout_item_finished(update: TemplateUpdate) -> None:
    """An item's update reached a terminal state: let its rollout move on."""
    rollout_ids = set(RolloutItem.objects.filter(update=update).values_list("rollout_id", flat=True))
    for rollout_id in rollout_ids:
        if Rollout.objects.filter(pk=rollout_id).exclude(status__in=TERMINAL_STATUSES).exists():
            _enqueue(Rollout(pk=rollout_id))


def rollout_templates(actor: Any) -> QuerySet[ProjectTemplate]:
    return ProjectTemplate.objects.filter(generated_projects__project__in=projects_with_role(actor)).distinct()
