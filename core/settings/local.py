"""Settings for a developer's machine: the embedded default unless the env says otherwise."""

from __future__ import annotations

from core.env import env_bool
from core.settings.base import *  # noqa: F403

DEBUG = env_bool("DJANGO_DEBUG", True)
