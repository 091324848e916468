"""Agent tokens (`kiln_a_...`) resolve to the agent's own user; see accounts.authentication."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils import timezone

from apps.accounts.authentication import LAST_USED_RESOLUTION, TOKEN_RESOLVERS
from apps.agents.models import AgentToken


def _resolve_agent_token(digest: str) -> tuple[Any, Any] | None:
    now = timezone.now()
    row = (
        AgentToken.objects.select_related("agent__user")
        .filter(key_hash=digest, revoked_at__isnull=True, agent__is_active=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if row is None or not row.agent.user.is_active:
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        AgentToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.agent.user, row


TOKEN_RESOLVERS["kiln_a_"] = _resolve_agent_token
