"""Storage settings: the backend registry, django-storages' own names, secrets from files, compose's MinIO."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def _settings(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    code = f"import django; django.setup(); from django.conf import settings as s; print(repr(({expression})))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KILN_STORAGE"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "core.settings.test", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_s3_is_configured_with_django_storages_names_and_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("kiln-test-SECRET-from-a-file\n")
    answer = _settings(
        {
            "KILN_STORAGE_BACKEND": "s3",
            "AWS_STORAGE_BUCKET_NAME": "kiln-bucket",
            "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_ACCESS_KEY_ID": "kiln-test-id",
            "AWS_SECRET_ACCESS_KEY_FILE": str(secret),
            "AWS_S3_ADDRESSING_STYLE": "path",
        },
        "s.STORAGES['blobs']['BACKEND'], s.AWS_STORAGE_BUCKET_NAME, s.AWS_SECRET_ACCESS_KEY, "
        "__import__('django.core.files.storage', fromlist=['x']).storages['blobs'].secret_key",
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == str(
        (
            "apps.storage.backends.s3.S3BlobStorage",
            "kiln-bucket",
            "kiln-test-SECRET-from-a-file",
            "kiln-test-SECRET-from-a-file",
        )
    )


def test_an_unknown_backend_is_refused_at_start() -> None:
    answer = _settings({"KILN_STORAGE_BACKEND": "floppy"}, "1")
    assert answer.returncode != 0
    assert "KILN_STORAGE_BACKEND must be one of filesystem, s3" in answer.stderr


def test_compose_runs_minio_and_points_kiln_at_its_bucket() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    env = services["worker"]["environment"]
    assert env["KILN_STORAGE_BACKEND"] == "${KILN_STORAGE_BACKEND:-s3}"
    assert env["AWS_S3_ENDPOINT_URL"] == "http://minio:9000" and env["AWS_STORAGE_BUCKET_NAME"] == "kiln"
    assert "kiln/kiln" in services["minio-bucket"]["command"][0]
    for name in ("web", "worker", "beat", "migrate"):
        assert services[name]["depends_on"]["minio-bucket"]["condition"] == "service_completed_successfully"
    assert "minio-data" in compose["volumes"]
