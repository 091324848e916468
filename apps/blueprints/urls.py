from __future__ import annotations

from django.urls import path

from apps.blueprints import views

urlpatterns = [path("blueprints/preview/", views.BlueprintPreviewView.as_view(), name="blueprint-preview")]
