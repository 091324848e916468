from __future__ import annotations

from rest_framework.routers import SimpleRouter

from apps.templates import views

router = SimpleRouter()
router.register(r"templates", views.TemplateViewSet, basename="template")
router.register(
    r"templates/(?P<slug>[a-z0-9-]{1,100})/versions", views.TemplateVersionViewSet, basename="template-version"
)

urlpatterns = [*router.urls]
