"""Downloads of file contents and archives from the blob store: streamed through Kiln's permission
checks, or a 302 to a short-lived presigned URL with KILN_DOWNLOAD_REDIRECT (S3 only)."""

from __future__ import annotations

import hashlib
import urllib.request
from typing import Any

import pytest

from apps.storage.models import Blob

pytestmark = pytest.mark.django_db

FILES = {
    "README.md": "# {{ name }}\n",
    "src/app.py": "print('hi')\n" * 50,
    "bin/run.sh": ("#!/bin/sh\necho hi\n", 0o755),
    "logo.bin": hashlib.shake_256(b"logo").digest(10240),  # does not compress: stored as it is
}
PARAMS = {"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}}


@pytest.fixture
def exported(cast: Any, make_template: Any, api: Any, run_jobs: Any) -> dict[str, Any]:
    template = make_template(FILES, parameters=PARAMS)
    base = f"/api/v1/projects/{cast.project.pk}/generated/"
    client = api(cast.alice)
    with run_jobs():
        generated = client.post(base, {"template": template.slug}, format="json").json()
    with run_jobs():
        export = client.post(f"{base}{generated['id']}/exports/", {"provider": "zip"}, format="json").json()
    detail = client.get(f"{base}{generated['id']}/exports/{export['id']}/").json()
    assert detail["status"] == "completed", detail
    files = {f["path"]: f for f in client.get(f"{base}{generated['id']}/files/").json()["results"]}
    return {"base": f"{base}{generated['id']}/", "files": files, "export": detail}


def test_contents_and_archives_stream_with_their_headers(
    any_storage: str, exported: dict[str, Any], api: Any, cast: Any
):
    client = api(cast.victor)  # a viewer may read
    readme = exported["files"]["README.md"]
    answer = client.get(f"{exported['base']}files/{readme['id']}/content/")
    assert answer.status_code == 200
    assert b"".join(answer.streaming_content) == b"# demo\n"
    assert answer["Content-Type"] == "application/octet-stream"
    assert answer["Content-Length"] == str(readme["size"])
    assert answer["Content-Disposition"] == 'attachment; filename="README.md"'

    archive = api(cast.mia).get(f"{exported['base']}exports/{exported['export']['id']}/download/")
    body = b"".join(archive.streaming_content)
    assert archive.status_code == 200 and archive["Content-Type"] == "application/zip"
    assert archive["Content-Length"] == str(exported["export"]["archive"]["size"]) == str(len(body))
    assert hashlib.sha256(body).hexdigest() == exported["export"]["archive"]["sha256"]
    assert archive["Content-Disposition"].startswith('attachment; filename="')

    # every blob of the generation and its archive is in the index
    shas = {f["sha256"] for f in exported["files"].values()} | {exported["export"]["archive"]["sha256"]}
    assert set(Blob.objects.filter(sha256__in=shas).values_list("sha256", flat=True)) == shas


def test_redirect_to_a_presigned_url_after_the_permission_check(
    settings: Any, s3_storage: Any, exported: dict[str, Any], api: Any, cast: Any
) -> None:
    settings.KILN_DOWNLOAD_REDIRECT = True
    settings.KILN_DOWNLOAD_URL_TTL = 120
    logo = exported["files"]["logo.bin"]
    for url, filename, content_type in (
        (f"{exported['base']}files/{logo['id']}/content/", "logo.bin", "application/octet-stream"),
        (f"{exported['base']}exports/{exported['export']['id']}/download/", None, "application/zip"),
    ):
        # an outsider learns nothing, not even that a URL would be signed
        assert api(cast.charlie).get(url).status_code == 404
        assert api(None).get(url).status_code == 401
        answer = api(cast.mia).get(url)
        assert answer.status_code == 302
        location = answer["Location"]
        assert location.startswith(s3_storage.url) and "X-Amz-Expires=120" in location
        assert "SECRET" not in location  # the signature, never the secret key
        with urllib.request.urlopen(location, timeout=10) as fetched:  # the client follows it to the store
            body = fetched.read()
            assert fetched.headers["Content-Type"] == content_type
            disposition = fetched.headers["Content-Disposition"]
        if filename:
            assert disposition == f'attachment; filename="{filename}"'
            assert body == FILES["logo.bin"]
        else:
            assert hashlib.sha256(body).hexdigest() == exported["export"]["archive"]["sha256"]
    # a file stored compressed is streamed by Kiln, inflated (the store would send the zlib stream)
    app = exported["files"]["src/app.py"]
    assert Blob.objects.get(pk=app["sha256"]).encoding == "zlib"
    answer = api(cast.mia).get(f"{exported['base']}files/{app['id']}/content/")
    assert answer.status_code == 200 and b"".join(answer.streaming_content) == FILES["src/app.py"].encode()


def test_redirect_setting_streams_on_the_filesystem_backend(
    settings: Any, exported: dict[str, Any], api: Any, cast: Any
) -> None:
    settings.KILN_DOWNLOAD_REDIRECT = True  # nothing to sign: Kiln streams
    readme = exported["files"]["README.md"]
    answer = api(cast.victor).get(f"{exported['base']}files/{readme['id']}/content/")
    assert answer.status_code == 200 and b"".join(answer.streaming_content) == b"# demo\n"
