"""Pages for people: thin callers of the same services and selectors as the API.

Every page that shows a project's objects scopes them with `projects_visible_to` (an
outsider gets 404, as from the API) and every change goes through the service the API
view calls, which checks the role again. Service errors (`ApplicationError`) are shown on
the page with their message; field errors beside their fields.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.events.services import job_log_lines
from apps.projects.models import GeneratedProject, Project, ProjectFile, ProviderConnection, RepositoryExport, Role
from apps.projects.selectors import (
    files_of,
    generated_projects_of,
    memberships_of,
    project_role,
    projects_visible_to,
    role_at_least,
)
from apps.projects.services import exports, generation, projects
from apps.templates.models import ProjectTemplate, TemplateSource
from apps.templates.services.catalog import template_get
from apps.templates.services.removal import can_delete, template_delete, version_delete
from apps.templates.services.versions import version_get, versions_of
from apps.updates.models import UpdateMode
from apps.updates.services.updates import update_diff, update_get, update_start, updates_of
from apps.web import highlight, parameters
from core.exceptions import ApplicationError
from core.jobs import TERMINAL_STATUSES

PREVIEW_MAX_BYTES = 256 * 1024
VERSIONS_SHOWN = 100


def _project(request: HttpRequest, project_id: int) -> Project:
    project = projects_visible_to(request.user).filter(pk=project_id).first()
    if project is None:
        raise Http404("Project not found.")
    return project


def _generated(project: Project, generated_id: int) -> GeneratedProject:
    generated = generated_projects_of(project).filter(pk=generated_id).first()
    if generated is None:
        raise Http404("Generation not found.")
    return generated


def _error(request: HttpRequest, exc: ApplicationError) -> None:
    messages.error(request, exc.message)


# --- templates --------------------------------------------------------------------------------


def _templates(query: str, fmt: str) -> QuerySet[ProjectTemplate]:
    """The catalog as the API lists it (active templates), searched by name, description or format."""
    rows = ProjectTemplate.objects.filter(is_active=True).annotate(versions_count=Count("versions")).order_by("slug")
    if query:
        rows = rows.filter(
            Q(name__icontains=query)
            | Q(description__icontains=query)
            | Q(slug__icontains=query)
            | Q(format__iexact=query)
        )
    if fmt:
        rows = rows.filter(format=fmt)
    return rows


@login_required
def gallery(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    fmt = request.GET.get("format", "").strip()[:50]
    rows = list(_templates(query, fmt))
    formats = sorted(set(ProjectTemplate.objects.filter(is_active=True).values_list("format", flat=True)))
    cards = [{"template": t, "fields": parameters.build_fields(t.parameters or {})} for t in rows]
    return render(request, "web/gallery.html", {"cards": cards, "q": query, "format": fmt, "formats": formats})


@login_required
def template_detail(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        template = template_get(slug=slug)
    except ApplicationError:
        raise Http404("Template not found.") from None
    versions = list(versions_of(template)[:VERSIONS_SHOWN])
    return render(
        request,
        "web/template.html",
        {
            "template": template,
            "fields": parameters.build_fields(template.parameters or {}),
            "versions": versions,
            "can_delete": template.source != TemplateSource.BUILTIN and can_delete(request.user, template),
        },
    )


@login_required
@require_POST
def template_delete_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        template = template_get(slug=slug)
    except ApplicationError:
        raise Http404("Template not found.") from None
    try:
        outcome = template_delete(
            template=template, actor=request.user, deactivate=bool(request.POST.get("deactivate"))
        )
    except ApplicationError as exc:
        _error(request, exc)
        return redirect("web:template", slug=template.slug)
    messages.success(request, f"Template {template.slug} {outcome}.")
    return redirect("web:gallery")


@login_required
@require_POST
def template_version_delete_page(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    try:
        template = template_get(slug=slug)
        row = version_get(template, version)
    except ApplicationError:
        raise Http404("Version not found.") from None
    try:
        version_delete(version=row, actor=request.user)
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"Version {row.version} of {template.slug} deleted.")
    return redirect("web:template", slug=template.slug)


def _generating_projects(user: Any) -> list[Project]:
    """Projects where `user` may generate (developer and above)."""
    return [
        p for p in projects_visible_to(user).order_by("name") if role_at_least(project_role(user, p), Role.DEVELOPER)
    ]


@login_required
@require_http_methods(["GET", "POST"])
def generate(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        template = template_get(slug=slug)
    except ApplicationError:
        raise Http404("Template not found.") from None
    # the version whose schema builds the form (default: the latest); the generation pins it
    versions = list(versions_of(template)[:VERSIONS_SHOWN])
    wanted = (request.POST if request.method == "POST" else request.GET).get("version", "").strip()
    chosen = next((v for v in versions if v.version == wanted), None) or (versions[0] if versions else None)
    if wanted and (chosen is None or chosen.version != wanted):
        raise Http404(f"Template '{template.slug}' has no version '{wanted}'.")
    label = chosen.version if chosen is not None else None
    schema = (chosen.parameters if chosen is not None else template.parameters) or {}
    choices = _generating_projects(request.user)
    context: dict[str, Any] = {
        "template": template,
        "projects": choices,
        "preview": None,
        "versions": versions,
        "version": chosen,
    }
    values: dict[str, Any] | None = None
    errors: dict[str, list[str]] = {}
    selected = request.GET.get("project", "")
    if request.method == "POST":
        selected = request.POST.get("project", "")
        values, errors = parameters.parse_post(schema, request.POST)
        project = next((p for p in choices if str(p.pk) == selected), None)
        if project is None:
            errors["__project__"] = ["Choose a project you can generate in."]
        elif not errors:
            try:
                if request.POST.get("action") == "preview":
                    context["preview"] = generation.generated_project_dry_run(
                        project=project,
                        template_slug=template.slug,
                        parameters=values,
                        actor=request.user,
                        version=label,
                    )
                else:
                    generated = generation.generated_project_start(
                        project=project,
                        template_slug=template.slug,
                        parameters=values,
                        actor=request.user,
                        version=label,
                    )
                    return redirect("web:generation", project_id=project.pk, generated_id=generated.pk)
            except ApplicationError as exc:
                errors = parameters.field_errors(schema, exc.extra)
                if not errors:
                    errors["__all__"] = [exc.message]
    fields = parameters.build_fields(schema, values)
    for item in fields:
        item.errors = errors.get(item.name, [])
    context.update(
        fields=fields,
        selected=selected,
        form_errors=errors.get("__all__", []),
        project_errors=errors.get("__project__", []),
        status=400 if errors else 200,
    )
    return render(request, "web/generate.html", context, status=400 if errors else 200)


# --- projects ---------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if not name or len(name) > 100:
            messages.error(request, "A project needs a name of at most 100 characters.")
        else:
            project = projects.project_create(
                owner=request.user, name=name, description=request.POST.get("description", "").strip()[:2000]
            )
            return redirect("web:project", project_id=project.pk)
    rows = projects_visible_to(request.user).order_by("name")
    return render(request, "web/projects.html", {"projects": rows})


@login_required
def project_detail(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id)
    role = project_role(request.user, project)
    return render(
        request,
        "web/project.html",
        {
            "project": project,
            "role": role,
            "is_owner": role == Role.OWNER,
            "members": memberships_of(project),
            "roles": Role.choices,
            "generations": generated_projects_of(project).order_by("-created_at", "-id")[:50],
        },
    )


@login_required
@require_POST
def member_add(request: HttpRequest, project_id: int) -> HttpResponse:
    project = _project(request, project_id)
    role = request.POST.get("role", "")
    try:
        if role not in Role.values:
            raise ApplicationError(f"Role is one of {', '.join(Role.values)}.")
        projects.membership_add(
            project=project, actor=request.user, username=request.POST.get("username", "").strip(), role=role
        )
    except ApplicationError as exc:
        _error(request, exc)
    return redirect("web:project", project_id=project.pk)


@login_required
@require_POST
def member_remove(request: HttpRequest, project_id: int, member_id: int) -> HttpResponse:
    project = _project(request, project_id)
    membership = memberships_of(project).filter(pk=member_id).first()
    if membership is None:
        raise Http404("Member not found.")
    try:
        projects.membership_remove(membership=membership, actor=request.user)
    except ApplicationError as exc:
        _error(request, exc)
    return redirect("web:project", project_id=project.pk)


# --- a generation -----------------------------------------------------------------------------


def file_tree(rows: list[ProjectFile]) -> dict[str, Any]:
    """Nested folders and files: {name, folders: [...], files: [{name, row}]}, folders first, by name."""
    root: dict[str, Any] = {"name": "", "folders": {}, "files": []}
    for row in rows:
        parts = PurePosixPath(row.path).parts
        node = root
        for part in parts[:-1]:
            node = node["folders"].setdefault(part, {"name": part, "folders": {}, "files": []})
        node["files"].append({"name": parts[-1], "row": row})

    def freeze(node: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": node["name"],
            "files": node["files"],
            "folders": [freeze(child) for _, child in sorted(node["folders"].items())],
        }

    return freeze(root)


def _export_rows(generated: GeneratedProject) -> list[RepositoryExport]:
    return list(RepositoryExport.objects.filter(generated=generated).order_by("-created_at", "-id")[:20])


@login_required
def generation_page(request: HttpRequest, project_id: int, generated_id: int) -> HttpResponse:
    project = _project(request, project_id)
    generated = _generated(project, generated_id)
    role = project_role(request.user, project)
    rows = list(files_of(generated)[:5000]) if generated.status == "completed" else []
    api = f"/api/v1/projects/{project.pk}/generated/{generated.pk}/"
    return render(
        request,
        "web/generation.html",
        {
            "project": project,
            "generated": generated,
            "finished": generated.status in TERMINAL_STATUSES,
            "tree": file_tree(rows),
            "file_count": len(rows),
            "parameters_json": json.dumps(generated.parameters, sort_keys=True, ensure_ascii=False),
            "logs": job_log_lines(model=GeneratedProject, pk=generated.pk, limit=500),
            "api": api,
            "exports": _export_rows(generated),
            "can_export": role_at_least(role, Role.MAINTAINER),
            "connections": ProviderConnection.objects.filter(owner_id=request.user.pk).order_by("name"),
            "allow_file_remotes": settings.KILN_ALLOW_FILE_REMOTES,
            "updates": list(updates_of(generated).order_by("-created_at", "-id")[:20]),
            "can_update": role_at_least(role, Role.DEVELOPER) and generated.status == "completed",
            "latest_version": generated.template.version,
            "template_versions": list(
                versions_of(generated.template).values_list("version", flat=True)[:VERSIONS_SHOWN]
            ),
            "update_modes": UpdateMode.choices,
        },
    )


def _export_body(post: Any) -> dict[str, Any]:
    """The REST export body from the export form (the service validates it as for the API)."""
    provider = post.get("provider", "")
    body: dict[str, Any] = {"provider": provider}
    if post.get("connection"):
        body["connection"] = post.get("connection")
    if provider == "git":
        body["remote_url"] = post.get("remote_url", "").strip()
        if post.get("branch", "").strip():
            body["branch"] = post.get("branch", "").strip()
    elif provider in ("github", "gitlab"):
        repository = {"name": post.get("name", "").strip()}
        owner_key = "owner" if provider == "github" else "namespace"
        for key, value in ((owner_key, post.get("owner", "")), ("visibility", post.get("visibility", ""))):
            if value.strip():
                repository[key] = value.strip()
        if post.get("description", "").strip():
            repository["description"] = post.get("description", "").strip()
        body["repository"] = repository
    return body


@login_required
@require_POST
def export_start(request: HttpRequest, project_id: int, generated_id: int) -> HttpResponse:
    project = _project(request, project_id)
    generated = _generated(project, generated_id)
    try:
        exports.repository_export_start(generated=generated, data=_export_body(request.POST), actor=request.user)
    except ApplicationError as exc:
        fields = exc.extra.get("fields") if isinstance(exc.extra, dict) else None
        detail = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in (fields or {}).items())
        messages.error(request, f"{exc.message}" + (f" ({detail})" if detail and detail not in exc.message else ""))
    return redirect(reverse("web:generation", args=[project.pk, generated.pk]) + "#exports")


@login_required
@require_POST
def generation_delete(request: HttpRequest, project_id: int, generated_id: int) -> HttpResponse:
    project = _project(request, project_id)
    generated = _generated(project, generated_id)
    try:
        generation.generated_project_delete(generated=generated, actor=request.user)
    except ApplicationError as exc:
        _error(request, exc)
        return redirect("web:generation", project_id=project.pk, generated_id=generated.pk)
    messages.success(request, f"Generation #{generated.pk} deleted; its exports stay listed in the audit log.")
    return redirect("web:project", project_id=project.pk)


@login_required
def file_page(request: HttpRequest, project_id: int, generated_id: int, file_id: int) -> HttpResponse:
    project = _project(request, project_id)
    generated = _generated(project, generated_id)
    row = files_of(generated).filter(pk=file_id).first()
    if row is None:
        raise Http404("File not found.")
    html = ""
    note = ""
    if row.is_binary:
        note = "This file is binary; download it to see it."
    elif row.size > PREVIEW_MAX_BYTES:
        note = f"This file is {row.size} bytes; the preview shows files up to {PREVIEW_MAX_BYTES} bytes."
    else:
        try:
            with generation.generated_file_open(row) as reader:
                data = reader.read()
            html = highlight.to_html(row.path, data.decode("utf-8", errors="replace"))
        except ApplicationError as exc:  # blob_missing (410), storage_unavailable (503)
            note = f"The file cannot be read now: {exc.message}"
    return render(
        request,
        "web/file.html",
        {
            "project": project,
            "generated": generated,
            "file": row,
            "html": html,
            "note": note,
            "raw": f"/api/v1/projects/{project.pk}/generated/{generated.pk}/files/{row.pk}/content/",
        },
    )


# --- template updates of a generation (apps/updates) ----------------------------------------------

DIFF_PREVIEW_MAX_BYTES = 512 * 1024


@login_required
@require_POST
def update_start_page(request: HttpRequest, project_id: int, generated_id: int) -> HttpResponse:
    project = _project(request, project_id)
    generated = _generated(project, generated_id)
    data: dict[str, Any] = {"mode": request.POST.get("mode", "preview")}
    if request.POST.get("to_version", "").strip():
        data["to_version"] = request.POST["to_version"].strip()
    try:
        update, _ = update_start(generated=generated, data=data, actor=request.user)
    except ApplicationError as exc:
        _error(request, exc)
        return redirect(reverse("web:generation", args=[project.pk, generated.pk]) + "#updates")
    return redirect("web:update", project_id=project.pk, generated_id=generated.pk, update_id=update.pk)


@login_required
def update_page(request: HttpRequest, project_id: int, generated_id: int, update_id: int) -> HttpResponse:
    project = _project(request, project_id)
    generated = _generated(project, generated_id)
    try:
        update = update_get(generated=generated, pk=update_id)
    except ApplicationError:
        raise Http404("Update not found.") from None
    diff_html, note = "", ""
    if update.status == "completed":
        try:
            diff = update_diff(update)
        except ApplicationError as exc:
            note = exc.message
        else:
            if not diff:
                note = "The update changes nothing on the target branch."
            elif len(diff) > DIFF_PREVIEW_MAX_BYTES:
                note = f"The diff is {len(diff)} bytes; download it to read it."
            else:
                diff_html = highlight.to_html("update.diff", diff.decode("utf-8", errors="replace"))
    api = f"/api/v1/projects/{project.pk}/generated/{generated.pk}/updates/{update.pk}/"
    return render(
        request,
        "web/update.html",
        {
            "project": project,
            "generated": generated,
            "update": update,
            "finished": update.status in TERMINAL_STATUSES,
            "api": api,
            "diff_html": diff_html,
            "note": note,
            "logs": job_log_lines(model=type(update), pk=update.pk, limit=500),
        },
    )
