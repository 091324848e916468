"""Encryption at rest for provider tokens (Fernet).

The key comes from `KILN_FERNET_KEY` (or `KILN_FERNET_KEY_FILE`); without either, a key
file is created once under the data folder with mode 0600 (like `data/secret.key`).
Several keys may be given, comma-separated, newest first, to rotate keys.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from core.env import env_secret

_lock = threading.Lock()
_cached: tuple[str, MultiFernet] | None = None


def _key_file() -> Path:
    return Path(settings.KILN_SECRET_KEY_FILE)


def _load_keys() -> list[bytes]:
    configured = env_secret("KILN_FERNET_KEY")
    if configured:
        return [key.strip().encode() for key in configured.split(",") if key.strip()]
    path = _key_file()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, Fernet.generate_key())
        finally:
            os.close(fd)
    return [path.read_bytes().strip()]


def _fernet() -> MultiFernet:
    global _cached
    marker = f"{env_secret('KILN_FERNET_KEY')}|{_key_file()}"
    with _lock:
        if _cached is None or _cached[0] != marker:
            _cached = (marker, MultiFernet([Fernet(key) for key in _load_keys()]))
        return _cached[1]


def encrypt_secret(value: str) -> str:
    return _fernet().encrypt(value.encode("utf-8")).decode("ascii")


class SecretUnreadable(Exception):
    """The stored secret cannot be decrypted with the configured key(s)."""


def decrypt_secret(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable("stored secret cannot be decrypted with the configured key") from exc
