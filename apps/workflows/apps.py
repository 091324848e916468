from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    label = "workflows"
    verbose_name = "Workflows and step executors"

    def ready(self) -> None:
        from apps.workflows import tasks  # noqa: F401 - registers the run job kind with the reaper
        from apps.workflows.services.step_executors.base import check_step_schemas

        checks.register(check_step_schemas)
