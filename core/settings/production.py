"""Production settings: the same `base`, plus checks that refuse an unsafe start."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_int
from core.settings.base import *  # noqa: F403
from core.settings.base import DEBUG, INSECURE_SECRET_KEY, SECRET_KEY


def check_production_settings(*, secret_key: str, debug: bool) -> None:
    """Refuse to start with a development secret key or with DEBUG on."""
    if debug:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off in production.")
    if not secret_key or secret_key == INSECURE_SECRET_KEY or secret_key.startswith("django-insecure"):
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) to a long random value.")
    if len(secret_key) < 40 or len(set(secret_key)) < 8:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is too short or too simple; use at least 40 random characters.")


check_production_settings(secret_key=SECRET_KEY, debug=DEBUG)

SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0)
SECURE_CONTENT_TYPE_NOSNIFF = True
