from __future__ import annotations

from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "apps.events"
    label = "events"
    verbose_name = "Live job events"

    def ready(self) -> None:
        from apps.events import receivers

        receivers.connect()
