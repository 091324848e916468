"""URL configuration: the versioned API under /api/v1/, the schema, docs and admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularSwaggerView

from apps.accounts.views import TokenLoginView
from core import schema  # noqa: F401 - registers the OpenAPI auth extension before any schema is built
from core.api_root import ApiRootView, SchemaView
from core.health import healthz

api_v1: list[URLPattern | URLResolver] = [
    path("", ApiRootView.as_view(), name="root"),
    path("auth/token/", TokenLoginView.as_view(), name="auth-token"),
    path("", include("apps.templates.urls")),
    path("", include("apps.projects.urls")),
    path("", include("apps.workflows.urls")),
    path("", include("apps.agents.urls")),
    path("", include("apps.approvals.urls")),
    path("", include("apps.blueprints.urls")),
    path("", include("apps.updates.urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api-auth/", include("rest_framework.urls", namespace="rest_framework")),
    path("admin/", admin.site.urls),
    # pages for people (apps/web): the template gallery, generate, generations, projects
    path("", include("apps.web.urls")),
]

handler400 = "core.exceptions.json_bad_request"
handler403 = "core.exceptions.json_permission_denied"
handler404 = "core.exceptions.json_not_found"
handler500 = "core.exceptions.json_server_error"
