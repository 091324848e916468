"""Production settings: the same `base`, plus checks that refuse an unsafe start."""

from __future__ import annotations

from core.env import env_bool, env_int
from core.settings.base import *  # noqa: F403
from core.settings.base import DEBUG, SECRET_KEY
from core.settings.checks import check_production_settings

check_production_settings(secret_key=SECRET_KEY, debug=DEBUG)

SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0)
SECURE_CONTENT_TYPE_NOSNIFF = True
