"""The S3 server goes away in the middle of a generation: the job fails with a code, nothing is
half-recorded, and a retry once the store is back completes with every blob readable."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from apps.projects.models import GeneratedProject, ProjectFile
from apps.projects.services.generation import (
    generated_project_dry_run,
    generated_project_execute,
    generated_project_retry,
    generated_project_start,
)
from apps.storage.blobs import blob_store
from apps.storage.models import Blob
from tests.s3.fixtures import use_s3
from tests.s3.proxy import CuttableProxy
from tests.s3.server import MotoServer
from tests.trees import materialised

pytestmark = pytest.mark.django_db

FILES = 120  # distinct contents, so that every file is a blob to store


@pytest.fixture
def proxied_s3(settings: Any, s3_server: MotoServer, s3_bucket: str) -> Iterator[CuttableProxy]:
    proxy = CuttableProxy(s3_server.port)
    use_s3(settings, s3_server, s3_bucket)
    settings.AWS_S3_ENDPOINT_URL = proxy.url
    yield proxy
    proxy.close()


def test_the_store_going_away_mid_generation_fails_it_with_a_code_and_a_retry_completes(
    proxied_s3: CuttableProxy, cast: Any, make_template: Any
) -> None:
    template = make_template(
        {f"src/m{i:03d}.py": f"# module {i} of {{{{ name }}}}\n" + "x = 1\n" * (200 + i) for i in range(FILES)},
        parameters={"type": "object", "properties": {"name": {"type": "string", "default": "outage"}}},
    )
    row = generated_project_start(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice, enqueue=False
    )
    reference = generated_project_dry_run(
        project=cast.project, template_slug=template.slug, parameters={}, actor=cast.alice
    )

    def cut_when_uploading() -> None:
        deadline = time.monotonic() + 60
        while proxied_s3.forwarded < 30_000 and time.monotonic() < deadline:  # some blobs are on their way
            time.sleep(0.005)
        proxied_s3.cut()

    cutter = threading.Thread(target=cut_when_uploading)
    cutter.start()
    failed = generated_project_execute(generated_id=row.pk, owner="t:1:outage").generated
    cutter.join(10)
    assert proxied_s3.forwarded >= 30_000, "the line was cut before any upload"
    assert failed.status == "failed"
    assert failed.error["code"] == "storage_unavailable", failed.error
    assert "SECRET" not in failed.error["message"]
    assert ProjectFile.objects.filter(generated=failed).count() == 0  # nothing half-recorded
    assert failed.file_count == 0 and failed.content_sha256 == ""
    indexed = list(Blob.objects.values_list("sha256", flat=True))
    assert len(indexed) < FILES  # the outage came before the end

    proxied_s3.restore()
    for sha in indexed:  # whatever was indexed had been stored and verified before the outage
        assert blob_store().exists(sha)
    generated_project_retry(generated=failed, actor=cast.alice)
    done = generated_project_execute(generated_id=row.pk, owner="t:2:outage").generated
    assert done.status == "completed", done.error
    assert done.content_sha256 == reference.content_sha256
    assert sum(1 for p in materialised(done).rglob("*") if p.is_file()) == reference.file_count
    assert GeneratedProject.objects.get(pk=row.pk).attempts == 2
