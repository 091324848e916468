"""Settings for a developer's machine: the embedded default unless the env says otherwise."""

from __future__ import annotations

from core.env import env_bool
from core.settings.base import *  # noqa: F403
from core.settings.base import STATIC_ROOT

DEBUG = env_bool("DJANGO_DEBUG", True)

# Serve static files straight from the apps while developing; nothing to collect first.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
