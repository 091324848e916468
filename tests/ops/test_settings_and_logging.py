"""Production settings guards, request ids, structured logs without secrets."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.context import ContextFilter, JsonFormatter
from core.settings.checks import check_production_settings
from tests.integration.harness import ROOT


@pytest.mark.parametrize(
    ("key", "debug"),
    [
        ("django-insecure-kiln-development-key-do-not-use-in-production", False),
        ("django-insecure-anything-else-0123456789012345678901234567890", False),
        ("short", False),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", False),
        ("Zx9-Qw8_Er7tY6uI5oP4aS3dF2gH1jK0lZxCvBnMqWeRtYuIoP", True),
    ],
)
def test_production_refuses_insecure_configuration(key, debug):
    with pytest.raises(ImproperlyConfigured):
        check_production_settings(secret_key=key, debug=debug)


def test_production_settings_load_with_a_real_key_and_refuse_without():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    command = [sys.executable, "-c", "import django; django.setup(); print('ok')"]
    env["DJANGO_SETTINGS_MODULE"] = "core.settings.production"
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode != 0
    assert "DJANGO_SECRET_KEY" in refused.stderr
    env["DJANGO_SECRET_KEY"] = "Zx9-Qw8_Er7tY6uI5oP4aS3dF2gH1jK0lZxCvBnMqWeRtYuIoP"
    loaded = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "ok"


def test_json_logs_are_one_escaped_line_without_tokens():
    record = logging.LogRecord(
        "kiln",
        logging.WARNING,
        __file__,
        1,
        "user %s\n[ERROR] injected Authorization: Basic eC1hY2Nlc3M6Q0FOQVJZ",
        ("a\x1b[31m",),
        None,
    )
    ContextFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    payload = json.loads(line)
    assert "eC1hY2Nlc3M6Q0FOQVJZ" not in line
    assert payload["request_id"] == "-"
    assert payload["level"] == "WARNING"


@pytest.mark.django_db
def test_request_id_is_echoed_or_generated(client):
    response = client.get("/api/v1/templates/", HTTP_X_REQUEST_ID="abcdef012345")
    assert response["X-Request-ID"] == "abcdef012345"
    response = client.get("/api/v1/templates/", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32
