"""Kiln's settings. Every value that varies between deployments comes from the
environment through `core.env`; `.env.example` documents each variable.

With no environment at all Kiln runs on an embedded default: SQLite in `data/` and
Celery executing tasks in-process (no broker server), so a newcomer needs only Python.
`DATABASE_URL` switches to PostgreSQL and `CELERY_BROKER_URL` to Redis with real
workers; that is how CI and production run.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_float, env_int, env_list, env_path, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATA_DIR = env_path("KILN_DATA_DIR", BASE_DIR / "data")
KILN_DATA_DIR = DATA_DIR
# Every process keeps something here (SQLite, uploaded templates, compiled templates, the
# token key file, beat's schedule), so it exists before any of them starts. A read-only
# or missing parent is reported by the first writer, with the path, not at import.
with contextlib.suppress(OSError):
    DATA_DIR.mkdir(parents=True, exist_ok=True)

# Development default only; `core.settings.production` refuses to start with it.
INSECURE_SECRET_KEY = "django-insecure-kiln-development-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", INSECURE_SECRET_KEY)
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# A JSON 403 `csrf_failed` (Django's HTML page only under /admin/)
CSRF_FAILURE_VIEW = "core.exceptions.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.accounts",
    "apps.templates",
    "apps.projects",
    "apps.workflows",
    "apps.agents",
    "apps.approvals",
    "apps.storage",
    "apps.events",
    "apps.updates",
    "apps.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Django's CommonMiddleware with a JSON 308 for a missing trailing slash (core/api_root.py)
    "core.api_root.KilnCommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.context.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # a strict Content-Security-Policy on the pages at / (apps/web)
    "apps.web.middleware.PagesSecurityHeadersMiddleware",
]

ROOT_URLCONF = "core.urls"
WSGI_APPLICATION = "core.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    # A persistent connection that died (failover, pg_terminate_backend) is replaced at the
    # next request instead of failing it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "kiln.sqlite3"),
            # IMMEDIATE avoids "database is locked" on lock upgrades; WAL lets readers in.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Request bodies: JSON is small; template archives go through FILE_UPLOAD_* below.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("KILN_MAX_REQUEST_BYTES", 2 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Django REST framework ------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.HashedTokenAuthentication",
        "apps.accounts.authentication.KilnSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.KilnPagination",
    "PAGE_SIZE": 20,
    # core.filters.StrictQueryParams: a list answers 400 to a query parameter it does not know
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend", "core.filters.StrictQueryParams"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
    # Kiln's subclasses of DRF's three parsers: NUL characters and non-finite numbers are a 400
    # whatever the media type (core/parsers.py)
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.KilnJSONParser",
        "core.parsers.KilnFormParser",
        "core.parsers.KilnMultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("KILN_THROTTLE_ANON", "60/min"),
        "user": env_str("KILN_THROTTLE_USER", "600/min"),
        "login": env_str("KILN_THROTTLE_LOGIN", "10/min"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Kiln API",
    "DESCRIPTION": "Turn a project template plus parameters into a new repository and publish it.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "core.jobs.JobStatus",
        "StepStatusEnum": "apps.workflows.models.StepStatus",
        "ApprovalStatusEnum": "apps.approvals.models.ApprovalStatus",
        "ApprovalReasonEnum": "apps.approvals.models.ApprovalReason",
        "ExportProviderEnum": "apps.projects.models.ExportProvider",
        "ConnectionProviderEnum": "apps.projects.models.Provider",
        "RoleEnum": "apps.projects.models.Role",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.integer_path_ids",
        "core.schema.documented_errors",
    ],
}

# --- Celery ---------------------------------------------------------------------------
# Without CELERY_BROKER_URL tasks run in-process right after the transaction commits
# (the same task code, the same path); with it they go to Redis and real workers.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = env_bool("KILN_CELERY_EAGER", not CELERY_BROKER_URL)
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_DEFAULT_QUEUE = env_str("KILN_CELERY_QUEUE", "kiln")
# Exports (git pushes, provider APIs, archives) may go to workers of their own, e.g. the machines
# that can reach your git hosts: `celery worker -Q <this queue>` there. Empty: the default queue.
KILN_EXPORT_QUEUE = env_str("KILN_EXPORT_QUEUE", "")
CELERY_TASK_ROUTES = {"projects.execute_repository_export": {"queue": KILN_EXPORT_QUEUE}} if KILN_EXPORT_QUEUE else {}
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = env_float("KILN_WORKER_SOFT_SHUTDOWN_TIMEOUT", 10.0)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("KILN_TASK_SOFT_TIME_LIMIT", 900)
CELERY_TASK_TIME_LIMIT = env_int("KILN_TASK_TIME_LIMIT", 960)
# Retries never wait longer than this, so a delayed message never outlives the visibility timeout.
KILN_MAX_RETRY_COUNTDOWN = env_int("KILN_MAX_RETRY_COUNTDOWN", 300)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Above the hard time limit plus the longest retry countdown (RELIABILITY.md).
    "visibility_timeout": env_int("KILN_VISIBILITY_TIMEOUT", 3600),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 5
# A publish to a dead broker fails fast; the row stays `pending` and the reaper re-enqueues it.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# celery beat: Kiln's periodic jobs on a static schedule (see core/celery.py); beat's own
# scheduler keeps the last run times in the file given with `-s`. Run exactly one beat.
KILN_REAPER_INTERVAL_SECONDS = env_int("KILN_REAPER_INTERVAL_SECONDS", 60)
KILN_CLEANUP_CRONTAB = env_str("KILN_CLEANUP_CRONTAB", "17 3 * * *")  # minute hour day month weekday (UTC)
KILN_GIT_SYNC_INTERVAL_SECONDS = env_int("KILN_GIT_SYNC_INTERVAL_SECONDS", 3600)  # 0: git templates sync on request

# --- Kiln -----------------------------------------------------------------------------
GENERATED_PROJECTS_DIR = env_path("GENERATED_PROJECTS_DIR", BASE_DIR / "generated-projects")
GENERATED_PROJECTS_RETENTION_DAYS = env_int("GENERATED_PROJECTS_RETENTION_DAYS", 30)
MAX_FILE_SIZE = env_int("MAX_FILE_SIZE", 10 * 1024 * 1024)
KILN_MAX_FILES = env_int("KILN_MAX_FILES", 20_000)
KILN_MAX_TOTAL_BYTES = env_int("KILN_MAX_TOTAL_BYTES", 256 * 1024 * 1024)
KILN_RENDER_TIME_LIMIT = env_float("KILN_RENDER_TIME_LIMIT", 300.0)
# Renders run in a forked child whose address space may grow this much (bytes); 0 renders in
# the calling process without a hard memory limit (core/bounded.py).
KILN_RENDER_MEMORY_LIMIT = env_int("KILN_RENDER_MEMORY_LIMIT", 512 * 1024 * 1024)
KILN_BUILTIN_TEMPLATES_DIR = BASE_DIR / "apps" / "templates" / "builtin_templates"
KILN_TEMPLATES_DIR = env_path("KILN_TEMPLATES_DIR", DATA_DIR / "templates")
KILN_TEMPLATE_CACHE_DIR = env_path("KILN_TEMPLATE_CACHE_DIR", DATA_DIR / "template-cache")
# Compiled templates kept in memory per prepared template; larger templates read their code from the
# compiled-code store (KILN_TEMPLATE_CACHE_DIR/<checksum>.code) at each render.
KILN_TEMPLATE_MEMORY_CACHE_FILES = env_int("KILN_TEMPLATE_MEMORY_CACHE_FILES", 2_000)
# The first generation of a template version compiles every file; from this many files on,
# the work is shared with KILN_COMPILE_PROCESSES - 1 helper processes (spawned, not forked).
KILN_COMPILE_PROCESSES = env_int("KILN_COMPILE_PROCESSES", min(os.cpu_count() or 1, 4))
KILN_PARALLEL_COMPILE_MIN_FILES = env_int("KILN_PARALLEL_COMPILE_MIN_FILES", 200)
KILN_DRY_RUN_TIME_LIMIT = env_float("KILN_DRY_RUN_TIME_LIMIT", 30.0)
KILN_TEMPLATE_UPLOAD_MAX_BYTES = env_int("KILN_TEMPLATE_UPLOAD_MAX_BYTES", 20 * 1024 * 1024)
KILN_TEMPLATE_UPLOAD_MAX_FILES = env_int("KILN_TEMPLATE_UPLOAD_MAX_FILES", 5_000)
KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED = env_int("KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED", 100 * 1024 * 1024)
# --- template code (Cookiecutter hooks, Copier tasks): the isolation runner (apps/templates/services/isolation.py)
KILN_ISOLATION_BWRAP = env_str(
    "KILN_ISOLATION_BWRAP", "bwrap"
)  # the bubblewrap binary; empty: template code is refused
KILN_ISOLATION_DIR = env_path(
    "KILN_ISOLATION_DIR", Path(tempfile.gettempdir()) / "kiln-isolation"
)  # scratch copies, removed after each run; every folder above it must be passable by others
KILN_ISOLATION_TIME_LIMIT = env_float("KILN_ISOLATION_TIME_LIMIT", 60.0)  # seconds per hook / task batch
KILN_ISOLATION_MEMORY_BYTES = env_int("KILN_ISOLATION_MEMORY_BYTES", 1024 * 1024 * 1024)  # address space per process
KILN_ISOLATION_MAX_PROCESSES = env_int("KILN_ISOLATION_MAX_PROCESSES", 64)
KILN_ISOLATION_OUTPUT_BYTES = env_int("KILN_ISOLATION_OUTPUT_BYTES", 128 * 1024 * 1024)  # the project's tmpfs
KILN_ISOLATION_TMP_BYTES = env_int("KILN_ISOLATION_TMP_BYTES", 64 * 1024 * 1024)  # the sandbox's /tmp
KILN_ISOLATION_LOG_BYTES = env_int("KILN_ISOLATION_LOG_BYTES", 16 * 1024)  # output kept for the error message
KILN_ISOLATION_UID_BASE = env_int("KILN_ISOLATION_UID_BASE", 200_000)  # as root: each run gets a fresh uid above this
KILN_ISOLATION_PYTHON = env_str("KILN_ISOLATION_PYTHON", "")  # hooks' python3 (under /usr); default: the system's
KILN_JOB_LEASE_SECONDS = env_int("KILN_JOB_LEASE_SECONDS", 120)
KILN_JOB_MAX_DELIVERIES = env_int("KILN_JOB_MAX_DELIVERIES", 3)
KILN_PENDING_DEADLINE_SECONDS = env_int("KILN_PENDING_DEADLINE_SECONDS", 120)
KILN_MAX_ACTIVE_JOBS_PER_PROJECT = env_int("KILN_MAX_ACTIVE_JOBS_PER_PROJECT", 10)
KILN_ALLOW_PRIVATE_NETWORKS = env_bool("KILN_ALLOW_PRIVATE_NETWORKS", False)
KILN_ALLOW_FILE_REMOTES = env_bool("KILN_ALLOW_FILE_REMOTES", False)
KILN_SECRET_KEY_FILE = env_path("KILN_SECRET_KEY_FILE", DATA_DIR / "secret.key")
KILN_GITHUB_API_URL = env_str("KILN_GITHUB_API_URL", "https://api.github.com")
KILN_GITLAB_URL = env_str("KILN_GITLAB_URL", "https://gitlab.com")
KILN_PROVIDER_TIMEOUT = env_float("KILN_PROVIDER_TIMEOUT", 15.0)
KILN_GIT_TIMEOUT = env_int("KILN_GIT_TIMEOUT", 300)
KILN_PROVIDER_MAX_ATTEMPTS = env_int("KILN_PROVIDER_MAX_ATTEMPTS", 4)
KILN_PROVIDER_MAX_WAIT = env_float("KILN_PROVIDER_MAX_WAIT", 60.0)
KILN_GIT_BINARY = env_str("KILN_GIT_BINARY", "git")
# Git template sources (apps/templates/services/sources/git.py): the newest this many version tags
# of a repository are kept as versions (older ones are not fetched).
KILN_GIT_SOURCE_MAX_VERSIONS = env_int("KILN_GIT_SOURCE_MAX_VERSIONS", 20)
# Template updates (apps/updates): bounds of one update's merge, its stored diff, and a rollout's pace.
KILN_UPDATE_MAX_FILES = env_int("KILN_UPDATE_MAX_FILES", 50_000)  # paths in base, theirs and ours together
KILN_UPDATE_MAX_MERGE_BYTES = env_int("KILN_UPDATE_MAX_MERGE_BYTES", 2 * 1024 * 1024)  # larger: a conflict, ours kept
KILN_UPDATE_FILE_SECONDS = env_float("KILN_UPDATE_FILE_SECONDS", 10.0)  # one git merge-file
KILN_UPDATE_TIME_LIMIT = env_float("KILN_UPDATE_TIME_LIMIT", 300.0)  # all merges of one update
KILN_UPDATE_DIFF_MAX_BYTES = env_int("KILN_UPDATE_DIFF_MAX_BYTES", 8 * 1024 * 1024)  # the stored unified diff
KILN_ROLLOUT_CONCURRENCY = env_int("KILN_ROLLOUT_CONCURRENCY", 4)  # updates of one rollout running at once
# The agents' API caller: empty base = in-process WSGI transport (embedded default).
KILN_INTERNAL_API_BASE = env_str("KILN_INTERNAL_API_BASE", "")
KILN_API_CALLER_CONNECT_TIMEOUT = env_float("KILN_API_CALLER_CONNECT_TIMEOUT", 5.0)
KILN_API_CALLER_READ_TIMEOUT = env_float("KILN_API_CALLER_READ_TIMEOUT", 30.0)
KILN_API_CALLER_MAX_BYTES = env_int("KILN_API_CALLER_MAX_BYTES", 2 * 1024 * 1024)
KILN_API_CALLER_RETRIES = env_int("KILN_API_CALLER_RETRIES", 2)
KILN_RUN_TOKEN_TTL_SECONDS = env_int("KILN_RUN_TOKEN_TTL_SECONDS", 900)

# --- Storage: generated files, archives and template versions as blobs (apps/storage) -----
# `filesystem` keeps them under GENERATED_PROJECTS_DIR (shared by web and workers); `s3` in a
# bucket of any S3-compatible store, configured with django-storages' own settings.
KILN_STORAGE_BACKEND = env_str("KILN_STORAGE_BACKEND", "filesystem")
KILN_STORAGE_BACKENDS = {
    "filesystem": "apps.storage.backends.filesystem.FileSystemBlobStorage",
    "s3": "apps.storage.backends.s3.S3BlobStorage",
}
if KILN_STORAGE_BACKEND not in KILN_STORAGE_BACKENDS:
    raise ImproperlyConfigured(
        f"KILN_STORAGE_BACKEND must be one of {', '.join(KILN_STORAGE_BACKENDS)}, got {KILN_STORAGE_BACKEND!r}"
    )
STORAGES["blobs"] = {"BACKEND": KILN_STORAGE_BACKENDS[KILN_STORAGE_BACKEND]}
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME") or None
AWS_ACCESS_KEY_ID = env_secret("AWS_ACCESS_KEY_ID") or None
AWS_SECRET_ACCESS_KEY = env_secret("AWS_SECRET_ACCESS_KEY") or None
AWS_S3_ADDRESSING_STYLE = env_str("AWS_S3_ADDRESSING_STYLE") or None
# Downloads answer a 302 to a presigned URL valid this many seconds (s3 only; else they stream).
KILN_DOWNLOAD_REDIRECT = env_bool("KILN_DOWNLOAD_REDIRECT", False)
KILN_DOWNLOAD_URL_TTL = env_int("KILN_DOWNLOAD_URL_TTL", 300)

# --- Pages for people (apps/web): session login at /login/ --------------------------------
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:home"

# --- Live job events (apps/events): SSE streams wake on Redis pub/sub, else poll the rows ---
_EVENTS_BROKER = env_str("CELERY_BROKER_URL")
KILN_EVENTS_REDIS_URL = env_str(
    "KILN_EVENTS_REDIS_URL", _EVENTS_BROKER if _EVENTS_BROKER.startswith(("redis://", "rediss://")) else ""
)
# A stream ends after this long (clients reconnect with Last-Event-ID); keep it below
# gunicorn's --timeout, since a sync worker serves one stream at a time.
KILN_EVENTS_MAX_SECONDS = env_float("KILN_EVENTS_MAX_SECONDS", 30.0)
KILN_EVENTS_POLL_SECONDS = env_float("KILN_EVENTS_POLL_SECONDS", 1.0)

# --- MCP (the /mcp endpoint of the ASGI application, core/asgi.py) ----------------------
# Kiln's public origin: the issuer and resource URLs in /mcp's OAuth protected-resource metadata.
KILN_PUBLIC_URL = env_str("KILN_PUBLIC_URL", "http://localhost:8000").rstrip("/")
# Host and Origin headers /mcp accepts (DNS-rebinding protection); "name:*" allows any port.
# Default: every DJANGO_ALLOWED_HOSTS name with and without a port, and their http(s) origins
# (a leading-dot or "*" entry of DJANGO_ALLOWED_HOSTS has no equivalent here: list names).
KILN_MCP_ALLOWED_HOSTS = env_list(
    "KILN_MCP_ALLOWED_HOSTS",
    [h for host in ALLOWED_HOSTS if not host.startswith((".", "*")) for h in (host, f"{host}:*")],
)
KILN_MCP_ALLOWED_ORIGINS = env_list(
    "KILN_MCP_ALLOWED_ORIGINS",
    [
        f"{scheme}://{host}{port}"
        for host in ALLOWED_HOSTS
        if not host.startswith((".", "*"))
        for scheme in ("http", "https")
        for port in ("", ":*")
    ],
)
# read_file returns at most this many bytes of a file (the whole file is its resource)
KILN_MCP_READ_FILE_MAX_BYTES = env_int("KILN_MCP_READ_FILE_MAX_BYTES", 256 * 1024)
# generate_project / export_generation called with a progress token follow the job this long
KILN_MCP_FOLLOW_SECONDS = env_float("KILN_MCP_FOLLOW_SECONDS", 30.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.context.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s job=%(job)s] %(message)s"},
        "json": {"()": "core.context.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env_str("KILN_LOG_FORMAT", "plain"),
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("KILN_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}
