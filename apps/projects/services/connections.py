"""Provider connections: tokens encrypted at rest, write-only, checked against the provider."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.projects.models import Provider, ProviderConnection, RepositoryExport
from apps.projects.services.git_names import validate_base_url
from apps.projects.services.secrets import SecretUnreadable, decrypt_secret, encrypt_secret
from core.exceptions import ApplicationError, Conflict, ValidationFailed
from core.jobs import ACTIVE_STATUSES
from core.netguard import check_url


def token_hint(token: str) -> str:
    return token[-4:] if len(token) >= 8 else ""


@transaction.atomic
def connection_create(*, owner: Any, provider: str, name: str, token: str, base_url: str = "") -> ProviderConnection:
    if provider not in Provider.values:
        raise ValidationFailed(f"Unknown provider '{provider}'.", extra={"fields": {"provider": ["Unknown provider."]}})
    token = token.strip()
    if len(token) < 4 or any(ord(c) < 33 for c in token):
        raise ValidationFailed("The token looks malformed.", extra={"fields": {"token": ["Invalid token."]}})
    if base_url:
        base_url = validate_base_url(base_url)
        check_url(base_url, field="base_url")
    try:
        with transaction.atomic():
            return ProviderConnection.objects.create(
                owner=owner,
                provider=provider,
                name=name,
                base_url=base_url,
                token_encrypted=encrypt_secret(token),
                token_hint=token_hint(token),
            )
    except IntegrityError:
        raise Conflict(f"You already have a connection named '{name}'.", code="name_taken") from None


def connection_delete(*, connection: ProviderConnection) -> None:
    if RepositoryExport.objects.filter(connection=connection, status__in=ACTIVE_STATUSES).exists():
        raise Conflict(
            "Exports using this connection are still running; wait for them first.", code="connection_in_use"
        )
    connection.delete()


def connection_verify(*, connection: ProviderConnection) -> dict[str, Any]:
    """Check the token against the provider; returns `{ok, account}` or raises with a code."""
    from apps.projects.services.export_providers import github, gitlab

    verifiers = {Provider.GITHUB: github.verify, Provider.GITLAB: gitlab.verify}
    verifier = verifiers.get(Provider(connection.provider))
    if verifier is None:
        raise ValidationFailed(
            "Plain git connections hold only a token; it is checked on the first push.", code="verify_unsupported"
        )
    if connection.base_url:
        check_url(connection.base_url, field="base_url")
    try:
        token = decrypt_secret(connection.token_encrypted)
    except SecretUnreadable:
        raise ApplicationError(
            "The stored token cannot be decrypted; add it again.", code="connection_unreadable"
        ) from None
    account = verifier(connection, token)
    connection.verified_at = timezone.now()
    connection.account = account[:200]
    connection.save(update_fields=["verified_at", "account", "updated_at"])
    return {"ok": True, "account": account, "verified_at": connection.verified_at}
