from __future__ import annotations

from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "apps.approvals"
    label = "approvals"
    verbose_name = "Approval gates"

    def ready(self) -> None:
        from apps.approvals import signals  # noqa: F401 - audit events
