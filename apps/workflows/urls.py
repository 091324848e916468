from __future__ import annotations

from rest_framework.routers import SimpleRouter

from apps.workflows import views

router = SimpleRouter()
router.register(r"workflows", views.WorkflowViewSet, basename="workflow")
router.register(r"runs", views.WorkflowRunViewSet, basename="run")

urlpatterns = router.urls
