from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from apps.accounts.serializers import TokenLoginInputSerializer, TokenOutputSerializer
from apps.accounts.services import user_token_login


class TokenLoginView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        operation_id="auth_token_create",
        summary="Exchange a username and password for an API token",
        request=TokenLoginInputSerializer,
        responses={200: TokenOutputSerializer},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = TokenLoginInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = user_token_login(**serializer.validated_data)
        return Response(TokenOutputSerializer({"token": token}).data, status=status.HTTP_200_OK)
