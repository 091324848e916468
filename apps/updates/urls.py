from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.updates import views

router = SimpleRouter()
router.register(
    r"projects/(?P<project_id>[^/.]+)/generated/(?P<generated_id>[^/.]+)/updates",
    views.TemplateUpdateViewSet,
    basename="template-update",
)
router.register(r"projects/(?P<project_id>[^/.]+)/adoptions", views.AdoptionViewSet, basename="adoption")

fleet = views.TemplateFleetViewSet
urlpatterns = [
    *router.urls,
    path(
        "templates/<str:slug>/rollouts/",
        fleet.as_view({"get": "rollouts_list", "post": "rollouts_create"}),
        name="template-rollouts",
    ),
    path("templates/<str:slug>/drift/", fleet.as_view({"get": "drift"}), name="template-drift"),
    path("rollouts/<str:id>/", views.RolloutViewSet.as_view({"get": "retrieve"}), name="rollout-detail"),
    path(
        "rollouts/<str:id>/events/",
        views.RolloutViewSet.as_view({"get": "events"}, **views.RolloutViewSet.events.kwargs),
        name="rollout-events",
    ),
]
