"""Authorization tests: the permission matrix and mass-assignment checks.

This package may not add a conftest.py, so the helpers both test modules share live
here: the operations of Kiln's OpenAPI schema, a lazily built world of alice's objects
(each test case builds only what its request needs, in its own rolled-back database),
and snapshots of the database rows a rejected request must not change.
"""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rest_framework.test import APIClient

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
PASSWORD = "pw-for-tests"  # apps.projects.tests.factories.UserFactory
CANARY_TOKEN = "CANARY-matrix-token-0000"


# --- the schema ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str  # lower case, as the APIClient method
    path: str  # with {placeholders}
    has_body: bool
    content_types: tuple[str, ...]
    request_fields: frozenset[str]  # top-level properties of the request body schema


def fetch_schema(client: Any = None) -> dict[str, Any]:
    """`GET /api/schema/?format=json` through Django's test client."""
    if client is None:
        from django.test import Client

        client = Client()
    response = client.get("/api/schema/?format=json")
    if response.status_code != 200:
        raise RuntimeError(f"GET /api/schema/ answered {response.status_code}: {response.content[:500]!r}")
    return response.json()


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


def operations_of(schema: dict[str, Any]) -> dict[str, Operation]:
    """Every path x method of the schema that has an operationId."""
    found: dict[str, Operation] = {}
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS or not op.get("operationId"):
                continue
            content = op.get("requestBody", {}).get("content", {})
            fields: set[str] = set()
            for media in content.values():
                fields |= set(_resolve(schema, media.get("schema", {})).get("properties", {}))
            operation_id = op["operationId"]
            if operation_id in found:
                raise AssertionError(f"operationId {operation_id} is used twice in the schema")
            found[operation_id] = Operation(
                operation_id=operation_id,
                method=method,
                path=path,
                has_body=bool(content),
                content_types=tuple(content),
                request_fields=frozenset(fields),
            )
    return found


@functools.cache
def schema_operations() -> dict[str, Operation]:
    """The schema's operations, read once per test session (collection uses them too)."""
    return operations_of(fetch_schema())


# --- the world: alice's project and its objects ------------------------------------------------

TEMPLATE_FILES = {"README.md": "# {{ name }}\n", "src/app.py": "print('hi')\n"}
TEMPLATE_PARAMETERS = {"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}}
WORKFLOW_STEPS = [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}]


def template_zip_manifest(slug: str, version: str = "1.0.0") -> str:
    return (
        f"slug: {slug}\nname: {slug.title()}\nversion: '{version}'\n"
        "parameters:\n  type: object\n  properties:\n    who: {type: string, default: world, description: Who is greeted.}\n"
    )


def template_zip(slug: str, version: str = "1.0.0") -> bytes:
    """A tiny valid template archive: template.yaml and one file."""
    manifest = template_zip_manifest(slug, version)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("template.yaml", manifest)
        archive.writestr("hello.txt", "hello {{ who }}\n")
    return buffer.getvalue()


class World:
    """alice's project "Alpha" (from the `cast` fixture) and objects in it, built on first use.

    Everything is created in the test's own transaction, so destructive requests of one
    test case (DELETE, cancel) never reach another.
    """

    def __init__(self, cast: Any, make_template: Callable[..., Any], run_jobs: Callable[[], Any]) -> None:
        self.cast = cast
        self._make_template = make_template
        self._run_jobs = run_jobs

    @property
    def project(self) -> Any:
        return self.cast.project

    @functools.cached_property
    def template(self) -> Any:
        return self._make_template(TEMPLATE_FILES, slug="authz-tpl", parameters=TEMPLATE_PARAMETERS)

    @functools.cached_property
    def git_template(self) -> Any:
        """alice's template registered from a local bare repository (file://) with one version tag."""
        import tempfile
        from pathlib import Path

        from django.conf import settings
        from django.utils import timezone

        from apps.templates.services.sources import get_source
        from tests.forge.model import fast_import_commit, run_git

        root = Path(tempfile.mkdtemp(prefix="authz-git-", dir=Path(settings.GENERATED_PROJECTS_DIR).parent))
        bare = root / "tpl.git"
        run_git(["init", "--bare", "--quiet", str(bare)], home=root)
        files = {"template.yaml": template_zip_manifest("authz-git").encode(), "hello.txt": b"hello {{ who }}\n"}
        commit = fast_import_commit(
            bare, root, branch="main", files=files, message="v1", parent=None, when=timezone.now()
        )
        run_git(["tag", "v1.0.0", commit], home=root, git_dir=bare)
        data = {"git": {"url": f"file://{bare}"}, "slug": "authz-git"}
        return get_source("git").register(data, user=self.cast.alice)

    @functools.cached_property
    def generated(self) -> Any:
        """A completed generation of Alpha, with files on disk."""
        from apps.projects.services.generation import generated_project_execute, generated_project_start

        row = generated_project_start(
            project=self.project, template_slug=self.template.slug, parameters={}, actor=self.cast.alice, enqueue=False
        )
        generated = generated_project_execute(generated_id=row.pk, owner="authz:1:x").generated
        assert generated.status == "completed", generated.error
        return generated

    @functools.cached_property
    def project_file(self) -> Any:
        from apps.projects.models import ProjectFile

        return ProjectFile.objects.filter(generated=self.generated).order_by("path").first()

    @functools.cached_property
    def export(self) -> Any:
        """A completed zip export of the generation."""
        from apps.projects.services.exports import repository_export_execute, repository_export_start

        row = repository_export_start(
            generated=self.generated, data={"provider": "zip"}, actor=self.cast.alice, enqueue=False
        )
        export, _logs = repository_export_execute(export_id=row.pk, owner="authz:1:x")
        assert export.status == "completed", export.error
        return export

    @functools.cached_property
    def membership(self) -> Any:
        """erin's viewer membership of Alpha (nobody in the cast, so removing it disturbs no caller)."""
        from apps.projects.models import ProjectMembership, Role
        from apps.projects.tests.factories import UserFactory

        erin = UserFactory(username="erin")
        return ProjectMembership.objects.create(project=self.project, user=erin, role=Role.VIEWER)

    @functools.cached_property
    def connection(self) -> Any:
        from apps.projects.services.connections import connection_create

        return connection_create(owner=self.cast.alice, provider="git", name="matrix", token=CANARY_TOKEN)

    @functools.cached_property
    def workflow(self) -> Any:
        from apps.workflows.services.workflow_executor import workflow_create

        return workflow_create(actor=self.cast.alice, name="Matrix", project=self.project.pk, steps=WORKFLOW_STEPS)

    @functools.cached_property
    def run(self) -> Any:
        """A completed run of the workflow, started by alice."""
        from apps.workflows.services.workflow_executor import workflow_run_start

        with self._run_jobs():
            run = workflow_run_start(workflow=self.workflow, inputs={}, actor=self.cast.alice)
        run.refresh_from_db()
        assert run.status == "completed", run.error
        return run

    @functools.cached_property
    def git_export(self) -> Any:
        """A completed export of the generation to a bare git repository (file://): an update target."""
        import subprocess
        from pathlib import Path

        from django.conf import settings

        from apps.projects.services.exports import repository_export_execute, repository_export_start

        bare = Path(settings.GENERATED_PROJECTS_DIR) / "authz-remote.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
        row = repository_export_start(
            generated=self.generated,
            data={"provider": "git", "remote_url": f"file://{bare}"},
            actor=self.cast.alice,
            enqueue=False,
        )
        export, _logs = repository_export_execute(export_id=row.pk, owner="authz:1:x")
        assert export.status == "completed", export.error
        return export

    @functools.cached_property
    def update(self) -> Any:
        """A template update of the git export, recorded by the service and marked finished (a
        preview to the same version would change nothing; running it costs a render and a fetch
        per case, which the matrix does not need: it checks who may read, not the merge)."""
        from django.utils import timezone

        from apps.updates.models import TemplateUpdate
        from apps.updates.services.updates import update_start

        assert self.git_export
        row, _ = update_start(generated=self.generated, data={"mode": "preview"}, actor=self.cast.alice, enqueue=False)
        TemplateUpdate.objects.filter(pk=row.pk).update(
            status="completed", outcome="nothing_to_update", finished_at=timezone.now()
        )
        row.refresh_from_db()
        return row

    @functools.cached_property
    def adoption(self) -> Any:
        """An adoption of a git remote in Alpha (recorded, not run: the matrix checks who may read it)."""
        from apps.updates.services.adoptions import adoption_start

        return adoption_start(
            project=self.project,
            data={"provider": "git", "remote_url": "file:///nonexistent/adopted.git"},
            actor=self.cast.alice,
            enqueue=False,
        )

    @functools.cached_property
    def rollout(self) -> Any:
        """alice's rollout of the template (one item: the git export in Alpha)."""
        from apps.updates.services.rollouts import rollout_start

        assert self.git_export
        rollout, _ = rollout_start(
            template_slug=self.template.slug, data={"mode": "preview"}, actor=self.cast.alice, enqueue=False
        )
        return rollout

    @functools.cached_property
    def agent(self) -> Any:
        """An agent of alice's (maintainer in Alpha): the object of the /agents/{id}/ routes."""
        from apps.agents.services.agents import agent_create

        return agent_create(owner=self.cast.alice, name="Target", projects=[self.project.pk], role="maintainer")

    @functools.cached_property
    def agent_token(self) -> Any:
        from apps.agents.services.agents import agent_token_issue

        row, _token = agent_token_issue(agent=self.agent, name="target")
        return row

    @functools.cached_property
    def awaiting_export(self) -> Any:
        """A zip export of the generation waiting for approval, requested by the agent (as if it were gated)."""
        from apps.approvals.services import approval_request
        from apps.projects.models import RepositoryExport
        from apps.projects.services.exports import repository_export_start

        row = repository_export_start(
            generated=self.generated, data={"provider": "zip"}, actor=self.cast.alice, enqueue=False
        )
        RepositoryExport.objects.filter(pk=row.pk).update(status="awaiting_approval", created_by=self.agent.user)
        row.refresh_from_db()
        approval_request(kind="export", project=self.project, actor=self.agent.user, reason="agent_export", export=row)
        return row

    @functools.cached_property
    def awaiting_run(self) -> Any:
        """A run of alice's that waits at a `requires_approval` step."""
        from apps.workflows.services.workflow_executor import workflow_create, workflow_run_start

        gated = [{**WORKFLOW_STEPS[0], "requires_approval": True}]
        workflow = workflow_create(actor=self.cast.alice, name="Gated", project=self.project.pk, steps=gated)
        with self._run_jobs():
            run = workflow_run_start(workflow=workflow, inputs={}, actor=self.cast.alice)
        run.refresh_from_db()
        assert run.status == "awaiting_approval", (run.status, run.error)
        return run

    def pending_approval(self, **job: Any) -> Any:
        from apps.approvals.models import Approval

        return Approval.objects.get(status="pending", **job)

    @property
    def approval(self) -> Any:
        return self.pending_approval(export=self.awaiting_export)

    def value(self, name: str) -> Any:
        """The id substituted for a path placeholder that is not `{id}`."""
        values: dict[str, Callable[[], Any]] = {
            "project_id": lambda: self.project.pk,
            "generated_id": lambda: self.generated.pk,
            "agent_id": lambda: self.agent.pk,
            "slug": lambda: self.template.slug,
            "version": lambda: self.template.version,
        }
        if name not in values:
            raise AssertionError(f"no object to substitute for path parameter {{{name}}}; add one to World.value")
        return values[name]()

    def object_id(self, collection: str) -> Any:
        """The id substituted for `{id}` after `collection` in a path."""
        ids: dict[str, Callable[[], Any]] = {
            "agents": lambda: self.agent.pk,
            "tokens": lambda: self.agent_token.pk,
            "connections": lambda: self.connection.pk,
            "projects": lambda: self.project.pk,
            "generated": lambda: self.generated.pk,
            "files": lambda: self.project_file.pk,
            "exports": lambda: self.export.pk,
            "members": lambda: self.membership.pk,
            "workflows": lambda: self.workflow.pk,
            "runs": lambda: self.run.pk,
            "updates": lambda: self.update.pk,
            "rollouts": lambda: self.rollout.pk,
            "adoptions": lambda: self.adoption.pk,
            "approvals": lambda: self.approval.pk,
        }
        if collection not in ids:
            raise AssertionError(f"no object to substitute for {{id}} of '{collection}'; add one to World.object_id")
        return ids[collection]()

    def url(self, path: str, **overrides: Any) -> str:
        """`path` with its placeholders filled; `overrides` replace `{id}` of a collection
        (`runs=5`) or a named parameter (`project_id=7`)."""
        parts = path.split("/")
        if parts[-2:-1] in (["approve"], ["reject"]):
            # decisions need a job that waits for one
            overrides = {"exports": self.awaiting_export.pk, "runs": self.awaiting_run.pk, **overrides}
        if parts[-2:] == ["sync", ""] and parts[-4:-3] == ["templates"]:
            overrides = {"slug": self.git_template.slug, **overrides}  # only git templates sync
        for index, part in enumerate(parts):
            if part == "{id}":
                collection = parts[index - 1]
                value = overrides[collection] if collection in overrides else self.object_id(collection)
                parts[index] = str(value)
            elif part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                parts[index] = str(overrides[name] if name in overrides else self.value(name))
        return "/".join(parts)


def authenticated(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


# --- minimal valid request bodies ----------------------------------------------------------------


def _slug(caller: str) -> str:
    return caller.replace("_", "-")


def _members_create(world: World, caller: str) -> dict[str, Any]:
    from apps.projects.tests.factories import UserFactory

    newcomer = UserFactory(username=f"new-{_slug(caller)}")
    return {"data": {"username": newcomer.username, "role": "viewer"}, "format": "json"}


def _templates_create(world: World, caller: str) -> dict[str, Any]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {
        "data": {"archive": SimpleUploadedFile("t.zip", template_zip(f"up-{_slug(caller)}"))},
        "format": "multipart",
    }


def _json(data: dict[str, Any]) -> dict[str, Any]:
    return {"data": data, "format": "json"}


# operation id -> (world, caller) -> APIClient keyword arguments. Minimal and valid, so that
# a 4xx answer reflects permission (the matrix) or the one extra field (mass assignment).
MINIMAL_BODIES: dict[str, Callable[[World, str], dict[str, Any]]] = {
    "auth_token_create": lambda w, c: _json({"username": "alice", "password": PASSWORD}),
    "agents_create": lambda w, c: _json({"name": f"A-{c}"}),
    "agents_partial_update": lambda w, c: _json({"description": "changed"}),
    "agent_runs_create": lambda w, c: _json({"workflow": w.workflow.pk}),
    "agent_tokens_create": lambda w, c: _json({"name": f"t-{c}"}),
    "connections_create": lambda w, c: _json(
        {"provider": "git", "name": f"c-{c}", "token": "CANARY-matrix-token-0001"}
    ),
    "templates_create": _templates_create,
    "blueprints_preview": lambda w, c: _json({"document": "```\nsvc/\n  main.py  # entry\n```\n"}),
    "projects_create": lambda w, c: _json({"name": "X"}),
    "projects_partial_update": lambda w, c: _json({"description": "changed"}),
    "members_create": _members_create,
    "generated_create": lambda w, c: _json({"template": w.template.slug}),
    "exports_create": lambda w, c: _json({"provider": "zip"}),
    "workflows_create": lambda w, c: _json(
        {"name": f"W-{c}", "project": w.project.pk, "steps": [dict(s) for s in WORKFLOW_STEPS]}
    ),
    "workflows_partial_update": lambda w, c: _json({"description": "changed"}),
    "workflow_runs_create": lambda w, c: _json({"inputs": {}}),
    "updates_create": lambda w, c: (w.git_export and None) or _json({"mode": "preview"}),
    "rollouts_create": lambda w, c: (w.git_export and None) or _json({"mode": "preview"}),
    "adoptions_create": lambda w, c: _json({"provider": "git", "remote_url": f"file:///nonexistent/{_slug(c)}.git"}),
    "exports_approve": lambda w, c: _json({"plan_sha256": w.pending_approval(export=w.awaiting_export).plan_sha256}),
    "exports_reject": lambda w, c: _json({}),
    "runs_approve": lambda w, c: _json({"plan_sha256": w.pending_approval(run=w.awaiting_run).plan_sha256}),
    "runs_reject": lambda w, c: _json({}),
    "approvals_approve": lambda w, c: _json({"plan_sha256": w.approval.plan_sha256}),
    "approvals_reject": lambda w, c: _json({"comment": "no"}),
}


# --- database snapshots ------------------------------------------------------------------------

SNAPSHOT_MODELS = ("projects", "workflows", "agents", "accounts", "updates", "auth.User")
# token authentication records when a token was last used; that is not a change a request makes
IGNORED_COLUMNS = frozenset({"last_used_at"})


def db_snapshot() -> dict[str, set[str]]:
    """Every row of Kiln's own tables (and users), each as the repr of its column values."""
    from django.apps import apps

    models = []
    for name in SNAPSHOT_MODELS:
        models.extend([apps.get_model(name)] if "." in name else apps.get_app_config(name).get_models())
    rows: dict[str, set[str]] = {}
    for model in models:
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in IGNORED_COLUMNS]
        rows[model._meta.label] = {repr(row) for row in model.objects.values_list(*fields)}
    return rows


def snapshot_diff(before: dict[str, set[str]], after: dict[str, set[str]]) -> list[str]:
    changes = []
    for label in sorted(set(before) | set(after)):
        old, new = before.get(label, set()), after.get(label, set())
        if old != new:
            changes.append(f"{label}: removed {sorted(old - new)} added {sorted(new - old)}")
    return changes


def error_shape_problems(response: Any) -> list[str]:
    """For a 4xx/5xx: the body is JSON `{message, code, extra}` and shows no traceback."""
    if response.status_code < 400:
        return []
    problems = []
    content = response.content
    if b"Traceback" in content:
        problems.append("the error body contains a Traceback")
    try:
        body = response.json()
    except ValueError:
        return [*problems, f"the error body is not JSON: {content[:200]!r}"]
    if not isinstance(body, dict) or not {"message", "code", "extra"} <= set(body):
        problems.append(f"the error body lacks message/code/extra: {body!r}")
    return problems


def release(response: Any) -> None:
    """Close a response's files without `response.close()`: that sends request_finished, whose
    handler closes the test's database connection on PostgreSQL (Django's test client avoids it too)."""
    for closer in getattr(response, "_resource_closers", []):
        closer()
    response._resource_closers = []
