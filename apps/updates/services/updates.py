"""Template updates: start one (validate, record, enqueue on commit) and run it in a worker.

An update brings an exported repository to a new template version the way `copier update`
does, but on the server: *base* is the generation the repository was made from, *theirs* is
the new version rendered with the new answers (recorded as a generation of its own, the base
of the next update), *ours* is the target's default branch fetched shallow with git. The
merge engine decides every path; the result is one commit on top of *ours* on
`kiln/update/<slug>-<version>`, pushed without force, then a pull request (GitHub) or merge
request (GitLab) listing every file's outcome. `preview` stops before pushing.

Like exports, an update is a job with a lease, and what it has achieved is recorded at once:
the new generation, the target head it started from, the commit before it is pushed, the pull
request right after it is opened. The commit is deterministic (fixed identity, the new
generation's time), so a redelivered job builds the same commit, finds it already pushed and
finds the one pull request through the provider's list; nothing is pushed or opened twice.
Running the same update again later updates the same branch (a fast-forward: Kiln's own
earlier commit on the branch becomes a parent) and the same open pull request. A branch that
holds commits Kiln did not make is never overwritten: the update fails with `branch_diverged`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.projects.models import ExportProvider, GeneratedProject, Project, RepositoryExport, Role
from apps.projects.services.generation import JobBusy, generated_project_execute
from apps.projects.services.git_names import validate_branch
from apps.projects.services.gitops import (
    FileChange,
    commit_parents,
    diff_commits,
    fetch_heads,
    init_scratch,
    list_tree,
    push_branch,
    write_commit,
)
from apps.projects.services.projects import require_role
from apps.projects.services.repository_exporter import ProposalRequest, get_proposer
from apps.storage.blobs import blob_store, blob_writes, scratch_folder
from apps.updates.models import TemplateUpdate, UpdateMode, UpdateOutcome
from apps.updates.services import report, versions
from apps.updates.services.copier_migrations import commands_for, migration_tasks, run_on_tree
from apps.updates.services.merge import Entry, MergeLimits, Outcome, PathOutcome, Tree, merge_trees
from apps.updates.services.migrations import between, migrate_answers, migrate_trees, migration_outcomes
from apps.updates.services.targets import Access, target_access
from apps.updates.services.trees import generation_tree, git_tree, result_tree
from core.exceptions import ApplicationError, Conflict, NotFound, ValidationFailed
from core.jobs import (
    ACTIVE_STATUSES,
    ClaimOutcome,
    JobStatus,
    LeaseLost,
    check_capacity,
    claim,
    enqueue_on_commit,
    error_payload,
    job_log,
)
from core.redaction import redact

logger = logging.getLogger("kiln.updates")

GIT_TARGETS = (ExportProvider.GITHUB, ExportProvider.GITLAB, ExportProvider.GIT)
BODY_FIELDS = {"to_version", "parameters", "export", "mode"}
BRANCH_PREFIX = "kiln/update/"


class UpdateFailed(ApplicationError):
    status_code = 422
    default_code = "update_failed"


class _Cancelled(Exception):
    pass


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


def branch_name(slug: str, version: str) -> str:
    """`kiln/update/<slug>-<version>`, with anything git would refuse in a label made a '-'."""
    label = re.sub(r"[^A-Za-z0-9._+-]+", "-", version).strip(".-") or "version"
    label = re.sub(r"\.{2,}", ".", label).removesuffix(".lock")
    return validate_branch(f"{BRANCH_PREFIX}{slug}-{label}")


# --- the target ---------------------------------------------------------------------------------


def lineage_export(generated: GeneratedProject) -> RepositoryExport | None:
    """The export whose target a generation belongs to: its own latest completed git export, or
    the target of the update that rendered it."""
    own = (
        RepositoryExport.objects.filter(generated=generated, status=JobStatus.COMPLETED, provider__in=GIT_TARGETS)
        .order_by("-finished_at", "-id")
        .first()
    )
    if own is not None:
        return own
    made_by = (
        TemplateUpdate.objects.filter(new_generation=generated)
        .select_related("export")
        .order_by("-created_at", "-id")
        .first()
    )
    return made_by.export if made_by is not None else None


def _target(generated: GeneratedProject, export_id: Any) -> RepositoryExport:
    if export_id in (None, ""):
        export = lineage_export(generated)
        if export is None:
            raise Conflict(
                "This generation was never exported to a git repository (GitHub, GitLab or a git remote); "
                "export it first, or name the export to update.",
                code="not_exported",
            )
        return export
    try:
        pk = int(export_id)
    except (TypeError, ValueError):
        raise ValidationFailed("export must be an id.", extra={"fields": {"export": ["Invalid id."]}}) from None
    export = (
        RepositoryExport.objects.filter(pk=pk, generated__project_id=generated.project_id)
        .select_related("generated")
        .first()
    )
    if export is None:
        raise ValidationFailed(
            "No such export in this project.", code="export_not_found", extra={"fields": {"export": ["Unknown."]}}
        )
    if export.generated.template_id != generated.template_id:
        raise ValidationFailed(
            f"Export {export.pk} is a repository of another template; an update brings a repository to a new "
            "version of the template it was made from.",
            code="export_not_found",
            extra={"fields": {"export": ["A repository of another template."]}},
        )
    if export.provider not in GIT_TARGETS or export.status != JobStatus.COMPLETED:
        raise Conflict(
            f"Export {export.pk} is a {export.provider} export that is {export.status}; only completed "
            "GitHub, GitLab and git exports can be updated.",
            code="not_exported",
            extra={"export": export.pk},
        )
    return export


# --- start --------------------------------------------------------------------------------------


def _clean_body(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.")
    unknown = sorted(set(data) - BODY_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"Unknown fields: {', '.join(unknown)}.",
            extra={"fields": {key: ["Unknown field."] for key in unknown}},
        )
    mode = data.get("mode") or UpdateMode.PULL_REQUEST
    if mode not in UpdateMode.values:
        raise ValidationFailed(
            f"mode must be one of {', '.join(UpdateMode.values)}.", extra={"fields": {"mode": ["Invalid choice."]}}
        )
    version = data.get("to_version")
    if version is not None and (not isinstance(version, str) or not version.strip() or len(version) > 100):
        raise ValidationFailed("to_version must be a version label.", extra={"fields": {"to_version": ["Invalid."]}})
    parameters = data.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ValidationFailed(
            "parameters must be a JSON object.", extra={"fields": {"parameters": ["Expected an object."]}}
        )
    return {"mode": mode, "to_version": version, "parameters": parameters, "export": data.get("export")}


def update_start(
    *, generated: GeneratedProject, data: Any, actor: Any, enqueue: bool = True
) -> tuple[TemplateUpdate, bool]:
    """Validate and record an update, then enqueue it after commit. Returns (update, created).

    The same request while an identical update (target, version, answers, mode) is pending or
    running returns that one instead of starting another.
    """
    body = _clean_body(data)
    minimum = Role.DEVELOPER if body["mode"] == UpdateMode.PREVIEW else Role.MAINTAINER
    project = generated.project
    require_role(actor=actor, project=project, minimum=minimum, action=f"run {body['mode']} updates")
    if generated.status != JobStatus.COMPLETED:
        raise Conflict(
            f"The generation is {generated.status}; only a completed generation can be the base of an update.",
            code="generation_not_ready",
            extra={"status": generated.status},
        )
    export = _target(generated, body["export"])
    template = generated.template
    version = versions.target_version(template, body["to_version"])
    spec = versions.update_spec(version)
    crossed = between(
        spec.migrations,
        old=generated.template_version,
        new=version.label,
        positions=versions.version_positions(template),
    )
    answers = versions.new_answers(
        generated=generated,
        version=version,
        changed=body["parameters"],
        renamed=migrate_answers(crossed, versions.recorded_answers(generated)),
    )
    request_key = _digest(
        {
            "generated": generated.pk,
            "export": export.pk,
            "version": version.label,
            "answers": answers,
            "mode": body["mode"],
        }
    )
    render_key = _digest({"project": project.pk, "template": template.pk, "version": version.label, "answers": answers})
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        active = TemplateUpdate.objects.filter(request_key=request_key, status__in=ACTIVE_STATUSES).first()
        if active is not None:
            return active, False
        check_capacity(TemplateUpdate.objects.filter(project=project), what="updates")
        new_generation = _reusable_generation(render_key) or versions.start_generation(
            project=project, version=version, answers=answers, actor=actor
        )
        update = TemplateUpdate.objects.create(
            project=project,
            generated=generated,
            export=export,
            mode=body["mode"],
            from_version=generated.template_version,
            to_version=version.label,
            parameters=new_generation.parameters,
            request_key=request_key,
            render_key=render_key,
            new_generation=new_generation,
            branch=branch_name(template.slug, version.label),
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            enqueued_at=timezone.now(),
        )
        if enqueue:
            _enqueue(update)
    return update, True


def _reusable_generation(render_key: str) -> GeneratedProject | None:
    """The generation an earlier identical update rendered (same project, version and answers)."""
    earlier = (
        TemplateUpdate.objects.filter(render_key=render_key, new_generation__isnull=False)
        .exclude(new_generation__status__in=[JobStatus.FAILED, JobStatus.CANCELLED])
        .select_related("new_generation")
        .order_by("-created_at", "-id")
        .first()
    )
    return earlier.new_generation if earlier is not None else None


def _enqueue(update: TemplateUpdate) -> None:
    from apps.updates.tasks import execute_template_update

    enqueue_on_commit(execute_template_update, update.pk, model=TemplateUpdate)


def update_enqueue(update: TemplateUpdate) -> None:
    """Enqueue an update recorded with `enqueue=False` (after the surrounding transaction commits)."""
    _enqueue(update)


# --- reads --------------------------------------------------------------------------------------


def updates_of(generated: GeneratedProject) -> QuerySet[TemplateUpdate]:
    return TemplateUpdate.objects.filter(generated=generated).select_related("export", "new_generation")


def update_diff(update: TemplateUpdate) -> bytes:
    """The unified diff the update makes to the target branch (empty when it changes nothing)."""
    if update.status != JobStatus.COMPLETED:
        raise Conflict(f"The update is {update.status}; its diff is not ready.", code="update_not_ready")
    if not update.diff_sha256:
        return b""
    return blob_store().read(update.diff_sha256, size=update.diff_size)


# --- execution (inside a worker) ----------------------------------------------------------------


def _limits() -> MergeLimits:
    return MergeLimits(
        max_files=settings.KILN_UPDATE_MAX_FILES,
        max_merge_bytes=settings.KILN_UPDATE_MAX_MERGE_BYTES,
        file_seconds=settings.KILN_UPDATE_FILE_SECONDS,
        total_seconds=settings.KILN_UPDATE_TIME_LIMIT,
    )


class _UpdateRun:
    """One delivery of an update job, holding its lease."""

    def __init__(self, update: TemplateUpdate, lease: Any, owner: str) -> None:
        self.update = update
        self.lease = lease
        self.owner = owner
        self.logs: list[str] = []
        self.secrets: tuple[str, ...] = ()

    def record(self, **fields: Any) -> None:
        """Persist progress at once, while the lease is ours."""
        if not TemplateUpdate.objects.filter(pk=self.update.pk, lease_owner=self.owner).update(
            updated_at=timezone.now(), **fields
        ):
            raise LeaseLost(f"update {self.update.pk}: lease lost")
        for name, value in fields.items():
            setattr(self.update, name, value)

    def heartbeat(self, done: int | None = None, total: int | None = None) -> None:
        if self.lease.heartbeat(done=done, total=total):
            raise _Cancelled()

    def log(self, message: str) -> None:
        text = redact(message, self.secrets)
        self.logs.append(text)
        logger.info("update %s: %s", self.update.pk, text)
        job_log(TemplateUpdate, self.update.pk, f"INFO {text}")

    # -- the steps

    def run(self) -> dict[str, Any]:
        update = self.update
        self.heartbeat(done=0, total=4)
        theirs_generation = self.render_new_version()
        self.heartbeat(done=1)
        target = target_access(update.export)
        self.secrets = (target.token,) if target.token else ()
        with scratch_folder(f"update-{int(update.pk)}") as work:
            return self.merge_and_publish(theirs_generation, target, work)

    def render_new_version(self) -> GeneratedProject:
        generation = self.update.new_generation
        if generation is None:
            raise UpdateFailed("The update's new generation was deleted; start the update again.", code="gone")
        if generation.status in (JobStatus.PENDING, JobStatus.RUNNING):
            self.log(f"rendering {self.update.to_version} as generation {generation.pk}")
            generated_project_execute(generated_id=generation.pk, owner=self.owner)
            generation.refresh_from_db()
        if generation.status != JobStatus.COMPLETED:
            error = generation.error or {}
            raise UpdateFailed(
                f"Rendering version {self.update.to_version} failed: {error.get('message') or generation.status}",
                code="generation_failed",
                extra={"generation": generation.pk, "error": error},
            )
        return generation

    def merge_and_publish(self, theirs_generation: GeneratedProject, target: Access, work: Path) -> dict[str, Any]:
        update = self.update
        git_dir = work / "repo.git"
        init_scratch(git_dir)
        heads = fetch_heads(git_dir, url=target.url, branches=[target.branch, update.branch], auth=target.auth)
        if target.branch not in heads:
            raise UpdateFailed(
                f"The target repository has no branch '{target.branch}' (it was renamed or deleted).",
                code="target_branch_missing",
                status_code=409,
            )
        ours_sha = heads[target.branch]
        if update.base_commit != ours_sha:
            self.record(base_commit=ours_sha)
        self.log(f"{target.branch} is at {ours_sha[:12]}")
        ours = git_tree(git_dir, ours_sha, max_bytes=settings.KILN_UPDATE_MAX_MERGE_BYTES)
        base = generation_tree(update.generated)
        theirs = generation_tree(theirs_generation)
        template = update.generated.template
        version = versions.target_version(template, update.to_version)
        rules = versions.update_rules(version, theirs_generation)
        crossed = between(
            rules.spec.migrations,
            old=update.from_version,
            new=update.to_version,
            positions=versions.version_positions(template),
        )
        migrated = migrate_trees(crossed, base=base, ours=ours)
        copier_stages = self.copier_stages(rules, theirs_generation)
        if copier_stages is not None:
            migrated.ours = copier_stages("before", migrated.ours)
        merged = merge_trees(
            base=migrated.base,
            theirs=theirs,
            ours=migrated.ours,
            policy=rules.policy,
            limits=_limits(),
            scratch=work / "merge",
        )
        self.heartbeat(done=2)
        report_items = migration_outcomes(migrated, merged.report())
        if copier_stages is None:
            changes = final_changes(ours, migrated.ours, merged.changes)
        else:
            merged_tree = result_tree(migrated.ours, merged.changes)
            after = copier_stages("after", merged_tree)
            report_items = with_task_changes(report_items, merged_tree, after)
            changes = final_changes(ours, after, {})
        files = [item.as_dict() for item in report_items]
        conflicts = [f["path"] for f in files if f["outcome"] == "conflict"]
        counts: dict[str, int] = {}
        for item in files:
            counts[item["outcome"]] = counts.get(item["outcome"], 0) + 1
        self.log(
            "merged: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) if counts else "merged: no files"
        )
        if not changes:
            self.record(files=files, conflicts=conflicts, diff_sha256="", diff_size=0)
            self.log("the target already matches the new version; nothing to push")
            return {"outcome": UpdateOutcome.NOTHING_TO_UPDATE}
        when = theirs_generation.finished_at or theirs_generation.created_at
        message = report.commit_message(
            slug=template.slug,
            old=update.from_version,
            new=update.to_version,
            generation=theirs_generation.pk,
            counts=counts,
            conflicts=conflicts,
        )
        ref = "refs/kiln/result"
        commit = write_commit(
            git_dir, ref=ref, parents=[ours_sha], changes=changes, message=message, timestamp=int(when.timestamp())
        )
        self.store_diff(diff_commits(git_dir, ours_sha, commit), files=files, conflicts=conflicts)
        self.heartbeat(done=3)
        if update.mode == UpdateMode.PREVIEW:
            self.log(f"preview: {len(changes)} paths change; nothing pushed")
            return {"outcome": UpdateOutcome.PREVIEWED, "commit_sha": commit}

        existing = heads.get(update.branch)
        outcome = UpdateOutcome.PUSHED
        if existing is not None and existing != commit:
            tip = list_tree(git_dir, existing)
            same_tree = tip == list_tree(git_dir, commit)
            if same_tree and ours_sha in commit_parents(git_dir, existing):
                commit = existing
                self.log(f"{update.branch} already holds this result ({existing[:12]})")
            elif TemplateUpdate.objects.filter(
                export=update.export, branch=update.branch, commit_sha=existing
            ).exists():
                # Kiln's own earlier result: the new one continues it, so the push is a fast-forward
                commit = write_commit(
                    git_dir,
                    ref=ref,
                    parents=[ours_sha, existing],
                    changes=changes,
                    message=message,
                    timestamp=int(when.timestamp()),
                )
                self.log(f"{update.branch} holds an earlier Kiln update ({existing[:12]}); continuing it")
            else:
                raise UpdateFailed(
                    f"The branch '{update.branch}' has commits Kiln did not make ({existing[:12]}); Kiln does not "
                    "overwrite them (no force push). Merge or delete that branch, then run the update again.",
                    code="branch_diverged",
                    status_code=409,
                    extra={"branch": update.branch, "head": existing},
                )
        self.record(commit_sha=commit)
        pushed = push_branch(
            git_dir=git_dir, url=target.url, branch=update.branch, commit=commit, auth=target.auth, remote_head=existing
        )
        self.record(pushed=pushed.pushed)
        self.log(f"pushed {update.branch} at {commit[:12]}" if pushed.pushed else f"{update.branch} was already there")
        if not pushed.pushed and existing == commit:
            outcome = UpdateOutcome.UP_TO_DATE
        if update.mode == UpdateMode.PULL_REQUEST:
            proposal = self.propose(target, files=files, conflicts=conflicts, theirs_generation=theirs_generation)
            if proposal is not None:
                outcome = UpdateOutcome.PROPOSED
        return {"outcome": outcome, "commit_sha": commit}

    def copier_stages(
        self, rules: versions.UpdateRules, theirs_generation: GeneratedProject
    ) -> Callable[[str, Tree], Tree] | None:
        """Running a trusted Copier version's `_migrations` of one stage over a tree (None when
        the version has none, or is not trusted: then they never run)."""
        if not rules.copier_migrations or rules.render is None:
            return None
        update = self.update
        render = rules.render
        answers = versions.render_answers(theirs_generation)
        folder = rules.folder

        def run(stage: str, tree: Tree) -> Tree:
            tasks = migration_tasks(
                rules.copier_migrations, stage=stage, old=update.from_version, new=update.to_version
            )
            commands = commands_for(tasks, answers=answers, render=render)
            if not commands:
                return tree
            self.log(f"running {len(commands)} Copier migration(s) ({stage}) in the isolation runner")
            return run_on_tree(
                tree, commands, template=folder, project=update.generated.template.slug, secrets=self.secrets
            )

        return run

    def store_diff(self, diff: bytes, *, files: list[dict[str, Any]], conflicts: list[str]) -> None:
        cap = settings.KILN_UPDATE_DIFF_MAX_BYTES
        if len(diff) > cap:
            diff = diff[:cap] + f"\n# Kiln: the diff is longer than {cap} bytes and was cut here.\n".encode()
        with blob_writes():
            ref = blob_store().put(diff)
            self.record(files=files, conflicts=conflicts, diff_sha256=ref.sha256, diff_size=ref.size)

    def propose(
        self, target: Access, *, files: list[dict[str, Any]], conflicts: list[str], theirs_generation: GeneratedProject
    ) -> dict[str, Any] | None:
        update = self.update
        proposer = get_proposer(update.export.provider)
        if proposer is None:
            self.log("a git remote has no pull requests; the branch is the result")
            return None
        if target.token is None:
            raise UpdateFailed("A pull request needs the export's connection token.", code="connection_missing")
        slug = update.generated.template.slug
        proposal = proposer.propose(
            ProposalRequest(
                connection=update.export.connection,
                token=target.token,
                repository=update.export.remote_full_name,
                repository_id=update.export.remote_repo_id,
                head=update.branch,
                base=target.branch,
                title=report.title(slug=slug, version=update.to_version),
                body=report.body(
                    slug=slug,
                    old=update.from_version,
                    new=update.to_version,
                    files=files,
                    update_id=update.pk,
                    base_generation=update.generated_id,
                    new_generation=theirs_generation.pk,
                ),
                draft=bool(conflicts),
                log=self.log,
            )
        )
        pull = {"number": proposal.number, "url": proposal.url}
        self.record(pull_request=pull)
        return pull


def _kiln_made(update: TemplateUpdate, commit: str) -> bool:
    """Whether `commit` is a result an update of this target recorded for this branch."""
    return TemplateUpdate.objects.filter(export_id=update.export_id, branch=update.branch, commit_sha=commit).exists()


def with_task_changes(report_items: list[PathOutcome], before: Tree, after: Tree) -> list[PathOutcome]:
    """The report with what Copier's `after` migrations changed on top of the merge."""
    known = {item.path: item for item in report_items}
    for path in sorted(before.entries.keys() | after.entries.keys()):
        old, new = before.entries.get(path), after.entries.get(path)
        if old is not None and new is not None and old.same(new):
            continue
        reason = "changed by a Copier migration"
        item = known.get(path)
        if item is not None and item.outcome == Outcome.CONFLICT:
            continue  # a conflict stays listed as one
        outcome = Outcome.DELETED if new is None else Outcome.ADDED if old is None else Outcome.UPDATED
        if item is None:
            report_items.append(PathOutcome(path, outcome, reason))
        else:
            item.outcome, item.reason = outcome, reason
    return report_items


def final_changes(
    original: Tree, effective: Tree, merged: dict[str, FileChange | None]
) -> dict[str, FileChange | None]:
    """What to write on top of the target branch: the merge's changes on the migrated tree,
    expressed against the branch as it is (renamed paths moved, deleted ones removed)."""
    result: dict[str, Entry | FileChange] = dict(effective.entries)
    for path, change in merged.items():
        if change is None:
            result.pop(path, None)
        else:
            result[path] = change
    known = {entry.oid for entry in original.entries.values()}
    changes: dict[str, FileChange | None] = {}
    for path in original.entries.keys() - result.keys():
        changes[path] = None
    pending_reads: list[str] = []
    for path, item in result.items():
        before = original.entries.get(path)
        if isinstance(item, FileChange):
            if before is None or item.data is not None or item.oid != before.oid or item.mode != before.mode:
                changes[path] = item
        elif not item.same(before):
            if item.oid in known:
                changes[path] = FileChange(mode=item.mode, oid=item.oid)
            else:
                pending_reads.append(path)
    if pending_reads:
        data = effective.read(pending_reads)
        for path in pending_reads:
            changes[path] = FileChange(mode=effective.entries[path].mode, data=data[path])
    return changes


def update_execute(*, update_id: int, owner: str) -> TemplateUpdate:
    """One delivery of an update job; idempotent (see the module docstring)."""
    result = claim(TemplateUpdate, update_id, owner=owner)
    if result.outcome == ClaimOutcome.MISSING:
        raise NotFound(f"Update {update_id} does not exist.", code="job_not_found")
    if result.outcome == ClaimOutcome.BUSY:
        raise JobBusy(result.retry_in)
    update = TemplateUpdate.objects.select_related(
        "generated__template", "generated__project", "export__connection", "new_generation"
    ).get(pk=update_id)
    if result.outcome != ClaimOutcome.CLAIMED:
        return update
    lease = result.lease
    assert lease is not None
    run = _UpdateRun(update, lease, owner)
    try:
        outcome = run.run()
        if not lease.finish(JobStatus.COMPLETED, progress_done=4, progress_total=4, **outcome):
            raise LeaseLost("lease lost before finishing")
    except JobBusy:
        # the new version is being rendered by another worker: give the job back and come again
        lease.stop_keeping()
        TemplateUpdate.objects.filter(pk=update_id, lease_owner=owner).update(
            status=JobStatus.PENDING, lease_owner="", lease_expires_at=None, delivery_count=0, updated_at=timezone.now()
        )
        raise
    except _Cancelled:
        job_log(TemplateUpdate, update_id, "INFO cancelled")
        lease.finish(JobStatus.CANCELLED)
    except LeaseLost:
        logger.warning("update %s: lease lost; another delivery owns it", update_id)
    except ApplicationError as exc:
        job_log(TemplateUpdate, update_id, f"ERROR {exc.code}: {exc.message}")
        lease.finish(
            JobStatus.FAILED, error=error_payload(exc.code, redact(exc.message, run.secrets), exc.extra or None)
        )
    except SoftTimeLimitExceeded:
        lease.finish(
            JobStatus.FAILED, error=error_payload("time_limit", "The update took longer than the task time limit.")
        )
    except OSError as exc:
        lease.finish(
            JobStatus.FAILED,
            error=error_payload("storage_error", f"Reading or writing files failed: {exc.strerror or exc}."),
        )
    update.refresh_from_db()
    if update.is_terminal:
        _tell_rollouts(update)
    return update


def _tell_rollouts(update: TemplateUpdate) -> None:
    from apps.updates.services.rollouts import rollout_item_finished

    rollout_item_finished(update)


def update_get(*, generated: GeneratedProject, pk: Any) -> TemplateUpdate:
    try:
        key = int(pk)
    except (TypeError, ValueError):
        raise NotFound("No such update.") from None
    found = updates_of(generated).filter(pk=key).first()
    if found is None:
        raise NotFound("No such update.")
    return found


def updates_open_for(export: RepositoryExport) -> TemplateUpdate | None:
    """The latest update of a target that left a branch or pull request behind."""
    return (
        TemplateUpdate.objects.filter(export=export, status=JobStatus.COMPLETED)
        .filter(
            Q(outcome=UpdateOutcome.PROPOSED) | Q(outcome=UpdateOutcome.PUSHED) | Q(outcome=UpdateOutcome.UP_TO_DATE)
        )
        .order_by("-finished_at", "-id")
        .first()
    )
