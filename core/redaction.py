"""Removes secrets from text before it is stored, logged or returned.

Every error message Kiln stores or returns passes `redact`. It knows the token shapes
of the providers Kiln talks to, HTTP auth headers and URL credentials, and any extra
literal values a caller registers for the duration of a job (the decrypted token of
the connection in use, for example).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"

_PATTERNS = [
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"glpat-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"kiln_[ua]_[A-Za-z0-9_\-]{16,}"),
    re.compile(r"(?i)(authorization\s*[:=]\s*)(basic|bearer|token)\s+[^\s'\"]+"),
    re.compile(r"(?i)(private-token\s*[:=]\s*)[^\s'\"]+"),
    re.compile(r"(?i)(x-access-token|oauth2):[^@\s'\"]+"),
    re.compile(r"(?i)(https?://)[^/\s:@]+:[^/\s@]+@"),
]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` with known secret shapes and the given literal secrets replaced."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(_replacement, text)
    return text


def _replacement(match: re.Match[str]) -> str:
    groups = match.groups()
    if groups and groups[0] is not None:
        return f"{groups[0]}{REDACTED}" if not groups[0].lower().startswith("http") else f"{groups[0]}{REDACTED}@"
    return REDACTED
