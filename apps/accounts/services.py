"""Account services: log in with a password, issue and revoke API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import authenticate
from django.utils import timezone

from apps.accounts.models import UserToken
from apps.accounts.tokens import new_token, token_hash, token_prefix
from core.exceptions import ApplicationError

INVALID_CREDENTIALS = "Unable to log in with the given username and password."


def user_token_issue(*, user: Any, name: str = "", ttl: timedelta | None = None) -> tuple[UserToken, str]:
    """Create a token for `user`; the clear token is returned once and never stored."""
    token = new_token("u")
    row = UserToken.objects.create(
        user=user,
        name=name,
        key_hash=token_hash(token),
        prefix=token_prefix(token),
        expires_at=timezone.now() + ttl if ttl else None,
    )
    return row, token


def user_token_login(*, username: str, password: str) -> str:
    user = authenticate(username=username, password=password)
    if user is None or not user.is_active:
        raise ApplicationError(INVALID_CREDENTIALS, code="invalid_credentials", status_code=400)
    _, token = user_token_issue(user=user, name="login")
    return token


def user_token_revoke(*, token: UserToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at", "updated_at"])
