from __future__ import annotations

from django.apps import AppConfig


class UpdatesConfig(AppConfig):
    name = "apps.updates"
    label = "updates"
    verbose_name = "Template updates, rollouts and drift"
