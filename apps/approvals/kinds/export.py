"""`export`: an export (REST, MCP) that waits in `awaiting_approval` before it publishes anything."""

from __future__ import annotations

from typing import Any

from apps.approvals.kinds import register_kind
from apps.projects.models import GeneratedProject, ProjectFile, ProviderConnection, RepositoryExport
from apps.projects.services.project_generator import ManifestEntry, manifest_sha256


def _label(user: Any) -> str | None:
    if user is None:
        return None
    agent = getattr(user, "agent_identity", None)
    return f"agent:{agent.name}" if agent is not None else user.get_username()


def files_manifest_sha256(generated: GeneratedProject) -> str:
    """The manifest hash of the generation's recorded files, recomputed from their rows now."""
    rows = ProjectFile.objects.filter(generated=generated).values_list("path", "size", "sha256", "mode", "is_binary")
    return manifest_sha256(ManifestEntry(*row) for row in rows.iterator(chunk_size=2000))


def publication_plan(
    *,
    generated: GeneratedProject,
    provider: str,
    connection: ProviderConnection | None,
    target: dict[str, Any],
    branch: str,
    remote_url: str,
) -> dict[str, Any]:
    """What a publication does: which files (by manifest hash) go where, with whose credentials."""
    return {
        "generated": {
            "id": generated.pk,
            "template": generated.template.slug,
            "template_version": generated.template_version,
            "parameters": generated.parameters,
            "status": generated.status,
            "file_count": generated.file_count,
            "content_sha256": generated.content_sha256,
        },
        "files_manifest_sha256": files_manifest_sha256(generated),
        "provider": provider,
        "connection": (
            {
                "id": connection.pk,
                "name": connection.name,
                "provider": connection.provider,
                "base_url": connection.base_url,
                "account": connection.account,
            }
            if connection is not None
            else None
        ),
        "target": target,
        "branch": branch,
        "remote_url": remote_url,
    }


@register_kind
class ExportApproval:
    id = "export"

    def plan(self, approval: Any) -> dict[str, Any]:
        export = RepositoryExport.objects.select_related(
            "generated__template", "generated__project", "connection", "created_by__agent_identity"
        ).get(pk=approval.export_id)
        project = export.generated.project
        return {
            "kind": "export",
            "export": export.pk,
            "project": {"id": project.pk, "slug": project.slug},
            "requested_by": _label(export.created_by),
            **publication_plan(
                generated=export.generated,
                provider=export.provider,
                connection=export.connection,
                target=export.target,
                branch=export.branch,
                remote_url=export.remote_url,
            ),
        }

    def resume(self, approval: Any) -> None:
        from apps.projects.services.exports import repository_export_approved

        repository_export_approved(export_id=approval.export_id)

    def end(self, approval: Any, *, error: dict[str, Any]) -> None:
        from apps.projects.services.exports import repository_export_rejected

        repository_export_rejected(export_id=approval.export_id, error=error)
