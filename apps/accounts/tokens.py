"""Issuing and checking hashed bearer tokens (users here; agents reuse the helpers)."""

from __future__ import annotations

import hashlib
import secrets


def new_token(kind: str) -> str:
    """A random token such as `kiln_u_<43 url-safe chars>`; `kind` is `u` or `a`."""
    return f"kiln_{kind}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_prefix(token: str) -> str:
    return token[:12]
