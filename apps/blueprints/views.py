"""Blueprint endpoints: HTTP and validation only; the services parse and scaffold."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.blueprints.serializers import BlueprintPreviewSerializer
from apps.blueprints.services.blueprints import blueprint_preview
from apps.projects.views import _errors


class BlueprintPreviewView(APIView):
    @extend_schema(
        operation_id="blueprints_preview",
        summary="Parse a structure document: its tree, stack, warnings and the files a generation makes",
        request=BlueprintPreviewSerializer,
        responses={200: OpenApiTypes.OBJECT, **_errors(400, 401)},
        tags=["blueprints"],
    )
    def post(self, request: Request) -> Response:
        serializer = BlueprintPreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(blueprint_preview(document=serializer.validated_data["document"]))
