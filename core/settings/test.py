"""Settings for the test suite.

Tests run on SQLite unless DATABASE_URL is set (CI sets PostgreSQL). Tasks run eagerly
in-process for unit and API tests; integration tests start real workers against the
broker in CELERY_BROKER_URL and switch eager mode off for themselves.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from core.env import env_bool
from core.settings.base import *  # noqa: F403
from core.settings.base import REST_FRAMEWORK

# Unit and API tests run tasks in-process; fault tests start web processes with KILN_CELERY_EAGER=0.
CELERY_TASK_ALWAYS_EAGER = env_bool("KILN_CELERY_EAGER", True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Every test run writes into its own scratch folder, never into the checkout.
_SCRATCH = Path(os.environ.get("KILN_TEST_SCRATCH") or tempfile.mkdtemp(prefix="kiln-test-"))
GENERATED_PROJECTS_DIR = _SCRATCH / "generated-projects"
KILN_TEMPLATES_DIR = _SCRATCH / "templates"
KILN_TEMPLATE_CACHE_DIR = _SCRATCH / "template-cache"
KILN_DATA_DIR = _SCRATCH / "data"
STATIC_ROOT = _SCRATCH / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
KILN_SECRET_KEY_FILE = _SCRATCH / "data" / "secret.key"
KILN_ALLOW_FILE_REMOTES = True
KILN_PROVIDER_MAX_WAIT = 2.0

REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"anon": "10000/min", "user": "10000/min", "login": "10000/min"},
}
KILN_ALLOW_PRIVATE_NETWORKS = True
