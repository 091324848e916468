from __future__ import annotations

from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    label = "workflows"
    verbose_name = "Workflows and step executors"

    def ready(self) -> None:
        from apps.workflows import tasks  # noqa: F401 - registers the run job kind with the reaper
