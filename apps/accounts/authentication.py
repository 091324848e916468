"""`Authorization: Token <token>` authentication against hashed tokens.

Agent tokens use the same header; authenticators for other token kinds register in
`TOKEN_RESOLVERS` (the agents app adds its own), so one DRF class serves both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.accounts.models import UserToken
from apps.accounts.tokens import token_hash
from core.context import set_actor
from core.exceptions import CSRF_FAILED_CODE, CSRF_FAILED_MESSAGE

# prefix of the clear token -> function(token_hash) -> (user, auth) or None
TOKEN_RESOLVERS: dict[str, Callable[[str], tuple[Any, Any] | None]] = {}
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _resolve_user_token(digest: str) -> tuple[Any, Any] | None:
    now = timezone.now()
    row = (
        UserToken.objects.select_related("user")
        .filter(key_hash=digest, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if row is None or not row.user.is_active:
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        UserToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user, row


TOKEN_RESOLVERS["kiln_u_"] = _resolve_user_token


def resolve_token(token: str) -> tuple[Any, Any] | None:
    """(user, token row) for a live user or agent token, or None (unknown, revoked, expired, inactive).

    The one check behind every bearer credential: DRF's `HashedTokenAuthentication` and the
    MCP endpoint's token verifier (`apps.agents.mcp_server`) both call it.
    """
    for prefix, resolver in TOKEN_RESOLVERS.items():
        if token.startswith(prefix):
            return resolver(token_hash(token))
    return None


class HashedTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in (b"token", b"bearer"):
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header. Use 'Authorization: Token <token>'.")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        result = resolve_token(token)
        if result is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        set_actor(result[0])
        return result

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class KilnSessionAuthentication(authentication.SessionAuthentication):
    """DRF's session auth (browsable API), recording the actor for audit events.

    A CSRF failure is a 403 `csrf_failed` with the same message as Django's CSRF_FAILURE_VIEW
    (DRF's own is a `permission_denied` that reads like a missing role).
    """

    def enforce_csrf(self, request: Request) -> None:
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            reason = str(exc.detail).removeprefix("CSRF Failed: ")
            raise exceptions.PermissionDenied(f"{CSRF_FAILED_MESSAGE} ({reason})", code=CSRF_FAILED_CODE) from None

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is not None:
            set_actor(result[0])
        return result
