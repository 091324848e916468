"""Query counts of every list endpoint at two page sizes (runs inside Django; see `kiln_side querycounts`).

The endpoints are discovered, not listed by hand: every `*-list` route of the `api` namespace in
the URL resolver, plus every GET operation of the OpenAPI schema (`/api/schema/`) whose response is
paginated. Each gets a fixture with more rows than the largest page size, so a per-row query (N+1)
shows up as a count that grows with the page size. Must run against a throwaway database.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PASSWORD = "bench-api-password-1"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REGEX_GROUP = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>[^)]*\)")


@dataclass
class Fixture:
    user: Any
    token: str
    ids: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _hex() -> str:
    return uuid.uuid4().hex


def _build(fixture: Fixture, name: str, build: Callable[[], None]) -> None:
    """Build one part of the fixture; a failure is recorded (and shown) instead of stopping the section."""
    from django.db import transaction

    try:
        with transaction.atomic():
            build()
    except Exception as exc:  # models change while the bench is maintained; report, don't crash
        fixture.errors[name] = f"{type(exc).__name__}: {exc}"[:300]


def build_fixture(rows: int) -> Fixture:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from apps.accounts.services import user_token_issue
    from apps.projects.models import (
        GeneratedProject,
        Project,
        ProjectFile,
        ProjectMembership,
        ProviderConnection,
        RepositoryExport,
        Role,
    )
    from apps.templates.models import ProjectTemplate

    users = get_user_model().objects
    owner = users.create_user(username=f"bench-q-{_hex()[:8]}", password=PASSWORD)
    _, token = user_token_issue(user=owner, name="bench")
    fixture = Fixture(user=owner, token=token)
    now = timezone.now()
    tag = _hex()[:6]

    def templates() -> None:
        ProjectTemplate.objects.bulk_create(
            ProjectTemplate(
                slug=f"bench-q-{tag}-{i:03d}",
                name=f"Query template {i}",
                version="1.0.0",
                parameters={"type": "object", "properties": {}},
                source="upload",
                source_path=f"bench-q/{i}",
                checksum="0" * 64,
            )
            for i in range(rows)
        )

    def projects() -> None:
        created = Project.objects.bulk_create(
            Project(name=f"Query project {i}", slug=f"bench-q-{tag}-{i:03d}", owner=owner) for i in range(rows)
        )
        ProjectMembership.objects.bulk_create(
            ProjectMembership(project=project, user=owner, role=Role.OWNER) for project in created
        )
        fixture.ids["project"] = created[0].pk

    def members() -> None:
        people = users.bulk_create(users.model(username=f"bench-m-{tag}-{i:03d}") for i in range(rows))
        ProjectMembership.objects.bulk_create(
            ProjectMembership(project_id=fixture.ids["project"], user=person, role=Role.VIEWER) for person in people
        )

    def generated() -> None:
        template = ProjectTemplate.objects.filter(slug__startswith=f"bench-q-{tag}-").order_by("slug").first()
        created = GeneratedProject.objects.bulk_create(
            GeneratedProject(
                project_id=fixture.ids["project"],
                template=template,
                template_version="1.0.0",
                template_checksum="0" * 64,
                parameters={},
                created_by=owner,
                status="completed",
                content_sha256="0" * 64,
                file_count=rows,
                started_at=now,
                finished_at=now,
            )
            for _ in range(rows)
        )
        fixture.ids["generated"] = created[0].pk

    def files() -> None:
        ProjectFile.objects.bulk_create(
            ProjectFile(
                generated_id=fixture.ids["generated"], path=f"src/file_{i:04d}.py", size=10, sha256="0" * 64, mode=0o644
            )
            for i in range(rows)
        )

    def exports() -> None:
        RepositoryExport.objects.bulk_create(
            RepositoryExport(
                generated_id=fixture.ids["generated"],
                provider="zip",
                status="completed",
                archive_path=f"x/{i}.zip",
                archive_size=1,
                archive_sha256="0" * 64,
                created_by=owner,
                branch="",
            )
            for i in range(rows)
        )

    def connections() -> None:
        ProviderConnection.objects.bulk_create(
            ProviderConnection(
                owner=owner, provider="git", name=f"conn-{i:03d}", token_encrypted="not-a-token", token_hint="abcd"
            )
            for i in range(rows)
        )

    def agents() -> None:
        from apps.agents.models import Agent, AgentToken

        identities = users.bulk_create(users.model(username=f"bench-a-{tag}-{i:03d}") for i in range(rows))
        created = Agent.objects.bulk_create(
            Agent(owner=owner, user=identity, name=f"agent-{i:03d}") for i, identity in enumerate(identities)
        )
        ProjectMembership.objects.bulk_create(
            ProjectMembership(project_id=fixture.ids["project"], user=identity, role=Role.DEVELOPER)
            for identity in identities
        )
        fixture.ids["agent"] = created[0].pk
        AgentToken.objects.bulk_create(
            AgentToken(
                agent=created[0],
                name=f"t{i}",
                key_hash=hashlib.sha256(_hex().encode()).hexdigest(),
                prefix=f"a{i:03d}",
            )
            for i in range(rows)
        )

    def workflows() -> None:
        from apps.workflows.models import StepRun, Workflow, WorkflowRun

        created = Workflow.objects.bulk_create(
            Workflow(name=f"workflow-{i:03d}", project_id=fixture.ids["project"], steps=[], created_by=owner)
            for i in range(rows)
        )
        fixture.ids["workflow"] = created[0].pk
        runs = WorkflowRun.objects.bulk_create(
            WorkflowRun(workflow=created[0], actor=owner, status="completed", started_at=now, finished_at=now)
            for _ in range(rows)
        )
        fixture.ids["run"] = runs[0].pk
        StepRun.objects.bulk_create(
            StepRun(run=run, index=0, step_id="generate", type="file_generation", status="completed") for run in runs
        )

    def audit() -> None:
        from apps.projects.models import AuditEvent

        AuditEvent.objects.bulk_create(
            AuditEvent(
                project_id=fixture.ids["project"],
                actor=owner,
                actor_label=owner.username,
                action="bench.event",
                object_type="project",
                object_id=str(fixture.ids["project"]),
            )
            for _ in range(rows)
        )

    for name, build in (
        ("templates", templates),
        ("projects", projects),
        ("members", members),
        ("generated", generated),
        ("files", files),
        ("exports", exports),
        ("connections", connections),
        ("agents", agents),
        ("workflows", workflows),
        ("audit", audit),
    ):
        _build(fixture, name, build)
    return fixture


# --- discovery --------------------------------------------------------------------------------------


def _resolver_list_routes() -> dict[str, str]:
    """Path template → route name for every `*-list` route in the `api` namespace."""
    from django.urls import get_resolver

    found: dict[str, str] = {}

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for entry in patterns:
            raw = str(entry.pattern).lstrip("^").rstrip("$")
            if hasattr(entry, "url_patterns"):
                inner = f"{namespace}:{entry.namespace}" if entry.namespace else namespace
                walk(entry.url_patterns, prefix + raw, inner)
            elif (entry.name or "").endswith("-list") and namespace.endswith("api"):
                path = prefix + raw
                path = _REGEX_GROUP.sub(lambda m: "{" + m.group(1) + "}", path)
                path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path)
                found["/" + path.replace("\\", "")] = entry.name

    walk(get_resolver().url_patterns, "", "")
    return found


def _schema_list_paths(client: Any) -> dict[str, str]:
    """Path template → operationId for every paginated GET operation of /api/schema/."""
    response = client.get("/api/schema/", {"format": "json"})
    if response.status_code != 200:
        return {}
    schema = response.json()
    components = schema.get("components", {}).get("schemas", {})
    found: dict[str, str] = {}
    for path, operations in schema.get("paths", {}).items():
        operation = operations.get("get")
        if not operation:
            continue
        content = operation.get("responses", {}).get("200", {}).get("content", {})
        ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
        body = components.get(ref.rsplit("/", 1)[-1], {}) if ref else {}
        paginated = {"results", "count"} <= set(body.get("properties", {}))
        if paginated or str(operation.get("operationId", "")).endswith("_list"):
            found[path] = str(operation.get("operationId", ""))
    return found


def _shape(path: str) -> str:
    return _PARAM.sub("{}", path)


def _fill(path: str, ids: dict[str, int]) -> tuple[str, list[str]]:
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        key = re.sub(r"_(id|pk)$", "", name)
        if key in ids:
            return str(ids[key])
        missing.append(name)
        return match.group(0)

    return _PARAM.sub(value, path), missing


def count_list_queries(*, rows: int, page_sizes: list[int]) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    fixture = build_fixture(rows)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {fixture.token}")
    from_resolver = _resolver_list_routes()
    from_schema = _schema_list_paths(client)
    endpoints: dict[str, dict[str, Any]] = {}
    for path, name in from_resolver.items():
        endpoints.setdefault(_shape(path), {"path": path, "sources": []})["sources"].append(f"urls:{name}")
    for path, operation in from_schema.items():
        endpoints.setdefault(_shape(path), {"path": path, "sources": []})["sources"].append(f"schema:{operation}")

    results: list[dict[str, Any]] = []
    for entry in sorted(endpoints.values(), key=lambda e: e["path"]):
        url, missing = _fill(entry["path"], fixture.ids)
        row: dict[str, Any] = {"path": entry["path"], "sources": entry["sources"], "url": url, "counts": {}}
        if missing:
            row["error"] = f"no fixture id for {', '.join(missing)}"
            results.append(row)
            continue
        client.get(url, {"page_size": page_sizes[0]})  # warm-up: content types, permissions caches
        for size in page_sizes:
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url, {"page_size": size})
            body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
            row["counts"][str(size)] = {
                "queries": len(captured.captured_queries),
                "status": response.status_code,
                "results": len(body.get("results", [])) if isinstance(body, dict) else None,
                "total": body.get("count") if isinstance(body, dict) else None,
            }
        results.append(row)
    return {"endpoints": results, "fixture_errors": fixture.errors, "rows": rows}
