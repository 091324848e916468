"""WSGI entry point: Django alone, without /mcp (the web process serves core.asgi; the agents'
API caller uses this application for in-process requests)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.local")

application = get_wsgi_application()
