"""URL configuration for {{ project_name }}."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.http import require_GET
from rest_framework.authtoken.views import obtain_auth_token


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness probe for load balancers and container orchestrators."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/auth/token/", obtain_auth_token, name="api-token"),
    path("api/", include("{{ app_name }}.urls")),
    path("api-auth/", include("rest_framework.urls")),
]
