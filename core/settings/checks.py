"""Checks `core.settings.production` runs at start-up (importable without side effects)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

INSECURE_PREFIX = "django-insecure"


def check_production_settings(*, secret_key: str, debug: bool) -> None:
    """Refuse to start with a development secret key or with DEBUG on."""
    if debug:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off in production.")
    if not secret_key or secret_key.startswith(INSECURE_PREFIX):
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) to a long random value.")
    if len(secret_key) < 40 or len(set(secret_key)) < 8:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is too short or too simple; use at least 40 random characters.")
