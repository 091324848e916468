from __future__ import annotations

from rest_framework_nested import routers

from apps.approvals import views

router = routers.SimpleRouter()
router.register(r"approvals", views.ApprovalViewSet, basename="approval")

urlpatterns = [*router.urls]
