from __future__ import annotations

from django.urls import path
from rest_framework_nested import routers

from apps.agents import views

router = routers.SimpleRouter()
router.register(r"agents", views.AgentViewSet, basename="agent")
agent_router = routers.NestedSimpleRouter(router, r"agents", lookup="agent")
agent_router.register(r"tokens", views.AgentTokenViewSet, basename="agent-token")

urlpatterns = [
    path("agents/discovery/", views.DiscoveryView.as_view(), name="agents-discovery"),
    path("agents/discovery/tools/", views.DiscoveryToolsView.as_view(), name="agents-discovery-tools"),
    path("agents/discovery/docs/", views.DiscoveryDocsView.as_view(), name="agents-discovery-docs"),
    *router.urls,
    *agent_router.urls,
]
