"""`GET /api/v1/`: where everything is (JSON, and the browsable API's front page).

Also Kiln's answers to two things a newcomer trips over: a URL without its trailing
slash (a JSON 308 to the slashed URL, so a POST stays a POST) and `/api/schema/` opened
in a browser (the docs page instead of a 406).
"""

from __future__ import annotations

import threading
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseRedirectBase
from django.middleware.common import CommonMiddleware
from django.urls import NoReverseMatch, reverse
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import error_body

# name in the listing → URL name (namespace `api` unless it contains ':' already)
RESOURCES = {
    "auth_token": "api:auth-token",
    "templates": "api:template-list",
    "blueprints_preview": "api:blueprint-preview",
    "projects": "api:project-list",
    "connections": "api:connection-list",
    "workflows": "api:workflow-list",
    "runs": "api:run-list",
    "agents": "api:agent-list",
    "agents_discovery": "api:agents-discovery",
    "schema": "schema",
    "docs": "api-docs",
}


class ApiRootView(APIView):
    """Kiln's API. Each project's generations, files, exports and members are under `projects/{id}/`."""

    permission_classes = [AllowAny]
    name = "Kiln API"

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        listing: dict[str, str] = {}
        for key, name in RESOURCES.items():
            try:
                listing[key] = request.build_absolute_uri(reverse(name))
            except NoReverseMatch:  # a resource another app no longer routes
                continue
        return Response(listing)


class SlashRedirect(HttpResponseRedirectBase):
    """308 (the method and body are kept, unlike 301) with a JSON body naming the slashed URL."""

    status_code = 308

    def __init__(self, redirect_to: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(redirect_to, *args, **kwargs)
        body = error_body(
            f"This URL ends with a slash: {redirect_to}",
            "trailing_slash",
            {"location": redirect_to},
        )
        self["Content-Type"] = "application/json"
        self.content = JsonResponse(body).content


class KilnCommonMiddleware(CommonMiddleware):
    """Django's CommonMiddleware, with a JSON 308 where it would answer an HTML-less 301.

    Django refuses to redirect a POST in DEBUG (its 301 would turn it into a GET and drop
    the body); a 308 keeps both, so the slashed URL is always given.
    """

    response_redirect_class = SlashRedirect

    def get_full_path_with_slash(self, request: HttpRequest) -> str:
        from django.utils.http import escape_leading_slashes

        return escape_leading_slashes(request.get_full_path(force_append_slash=True))


def _prefers_html(request: HttpRequest) -> bool:
    """A browser opening the URL: text/html named explicitly and no ?format=."""
    if "format" in request.GET:
        return False
    accept = request.headers.get("Accept", "")
    return any(part.split(";")[0].strip() == "text/html" for part in accept.split(","))


# drf-spectacular resolves its extensions' target classes lazily, on first use, without a lock: two
# first generations at once (the docs page fetching the schema while a client does) raced there
# (AttributeError: 'NoneType' object has no attribute 'startswith', a 500). One generation at a time.
_SCHEMA_LOCK = threading.Lock()


class SchemaView(SpectacularAPIView):
    """The OpenAPI document; a browser asking for HTML gets the interactive docs page instead of a 406."""

    def _get_schema_response(self, request: Any) -> Any:
        with _SCHEMA_LOCK:
            return super()._get_schema_response(request)

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # before DRF's content negotiation, which answers text/html with 406
        if request.method in ("GET", "HEAD") and _prefers_html(request):
            return docs_view(request)
        return super().dispatch(request, *args, **kwargs)


docs_view = SpectacularSwaggerView.as_view(url_name="schema")
