from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from apps.web import approvals, fleet, views

app_name = "web"

GENERATION = "projects/<int:project_id>/generated/<int:generated_id>/"

urlpatterns = [
    path("", views.gallery, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="web/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="web:login"), name="logout"),
    path("templates/", views.gallery, name="gallery"),
    path("templates/<slug:slug>/", views.template_detail, name="template"),
    path("templates/<slug:slug>/generate/", views.generate, name="generate"),
    path("templates/<slug:slug>/delete/", views.template_delete_page, name="template-delete"),
    path(
        "templates/<slug:slug>/versions/<str:version>/delete/",
        views.template_version_delete_page,
        name="template-version-delete",
    ),
    path("templates/<slug:slug>/fleet/", fleet.fleet_page, name="fleet"),
    path("templates/<slug:slug>/rollouts/", fleet.rollout_start_page, name="rollout-start"),
    path("rollouts/<int:rollout_id>/", fleet.rollout_page, name="rollout"),
    path("approvals/", approvals.approval_list, name="approvals"),
    path("approvals/<int:approval_id>/", approvals.approval_page, name="approval"),
    path("approvals/<int:approval_id>/approve/", approvals.approval_approve_page, name="approval-approve"),
    path("approvals/<int:approval_id>/reject/", approvals.approval_reject_page, name="approval-reject"),
    path("projects/", views.project_list, name="projects"),
    path("projects/<int:project_id>/", views.project_detail, name="project"),
    path("projects/<int:project_id>/members/", views.member_add, name="member-add"),
    path("projects/<int:project_id>/members/<int:member_id>/remove/", views.member_remove, name="member-remove"),
    path(GENERATION, views.generation_page, name="generation"),
    path(f"{GENERATION}delete/", views.generation_delete, name="generation-delete"),
    path(f"{GENERATION}exports/", views.export_start, name="export-start"),
    path(f"{GENERATION}files/<int:file_id>/", views.file_page, name="file"),
    path(f"{GENERATION}updates/", views.update_start_page, name="update-start"),
    path(f"{GENERATION}updates/<int:update_id>/", views.update_page, name="update"),
]
