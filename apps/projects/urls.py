from __future__ import annotations

from rest_framework_nested import routers

from apps.projects import views

router = routers.SimpleRouter()
router.register(r"projects", views.ProjectViewSet, basename="project")
router.register(r"connections", views.ConnectionViewSet, basename="connection")

project_router = routers.NestedSimpleRouter(router, r"projects", lookup="project")
project_router.register(r"members", views.MembershipViewSet, basename="project-member")
project_router.register(r"generated", views.GeneratedProjectViewSet, basename="generated-project")
project_router.register(r"audit", views.AuditEventViewSet, basename="project-audit")

generated_router = routers.NestedSimpleRouter(project_router, r"generated", lookup="generated")
generated_router.register(r"files", views.ProjectFileViewSet, basename="project-file")
generated_router.register(r"exports", views.RepositoryExportViewSet, basename="repository-export")

urlpatterns = [*router.urls, *project_router.urls, *generated_router.urls]
