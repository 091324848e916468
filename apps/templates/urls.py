from __future__ import annotations

from rest_framework.routers import SimpleRouter

from apps.templates import views

router = SimpleRouter()
router.register(r"templates", views.TemplateViewSet, basename="template")

urlpatterns = [*router.urls]
