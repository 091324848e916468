"""Trusting a template version's code: the one door through which template code may ever run.

A version whose files hold code written by the template's author (Cookiecutter hooks, Copier
`_tasks`, `_migrations`, ...: its `uses_code`, found by its format when it was recorded) is
refused for generation with 400 `template_untrusted` until a staff user trusts that version.
Trust is per version (a new version, new code, is untrusted again) and recorded as an audit
event with what was trusted (the version's checksum and `uses_code`). Trusted code still runs
only in the isolation runner (`services/isolation.py`), never in a Kiln process.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.templates.models import ProjectTemplate, TemplateVersion
from apps.templates.services.versions import version_get
from core.exceptions import PermissionDenied


def template_version_trust(*, template: ProjectTemplate, label: str, actor: Any) -> TemplateVersion:
    """Mark one version's code as allowed to run, isolated (staff only; idempotent)."""
    from apps.projects.signals import audit

    version = version_get(template, label)  # 404 version_not_found first: the catalog is public to users
    if not (getattr(actor, "is_authenticated", False) and getattr(actor, "is_staff", False)):
        raise PermissionDenied(
            "Only staff users may trust a template version's code.",
            code="staff_only",
            extra={"template": template.slug, "version": label},
        )
    with transaction.atomic():
        row = TemplateVersion.objects.select_for_update().get(pk=version.pk)
        if not row.is_trusted:
            TemplateVersion.objects.filter(pk=row.pk).update(is_trusted=True)
            audit(
                "template_version.trusted",
                obj=row,
                project_id=None,
                actor=actor,
                template=template.slug,
                version=row.version,
                checksum=row.checksum,
                format=row.format,
                uses_code=list(row.uses_code or []),
            )
    version.refresh_from_db()
    return version
