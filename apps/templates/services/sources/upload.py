"""`upload`: templates sent as a zip or tar.gz archive (multipart field `archive`); each upload
of a new version label adds a version (the catalog checks the archive member by member)."""

from __future__ import annotations

from typing import Any

from apps.templates.models import ProjectTemplate, TemplateSource
from apps.templates.services import catalog
from apps.templates.services.sources import SyncResult, register_source, sync_unsupported


@register_source
class UploadSource:
    kind = TemplateSource.UPLOAD
    body_key: str | None = "archive"
    syncs = False

    def register(self, data: Any, *, user: Any) -> ProjectTemplate:
        upload = data["archive"]
        return catalog.template_upload(
            archive=upload,
            size=getattr(upload, "size", 0) or 0,
            user=user,
            slug=data.get("slug"),
            version=data.get("version"),
        )

    def sync(self, template: ProjectTemplate, *, user: Any) -> SyncResult:
        raise sync_unsupported(template, "upload an archive with a new version label instead")

    def describe(self, template: ProjectTemplate) -> dict[str, Any] | None:
        return None
