"""Adopting a repository Kiln did not generate: read its answers file, link it, then update it."""

from __future__ import annotations

from typing import Any

import pytest

from apps.projects.services.connections import connection_create
from apps.updates.models import Adoption
from apps.updates.services.adoptions import adoption_execute, adoption_start
from apps.updates.services.updates import update_execute, update_start
from apps.updates.tests.conftest import V1, V2, publish
from tests.forge.fixtures import ALICE_TOKEN

pytestmark = pytest.mark.django_db

ANSWERS = "# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY\n_commit: 1.0.0\n_src_path: gh:acme/svc\nname: shop\nport: 8000\n"


def rendered_v1() -> dict[str, str | bytes]:
    """What version 1.0.0 renders with name=shop, port=8000 (the files someone else generated)."""
    files: dict[str, str | bytes] = {}
    for path, content in V1.items():
        data = content[0] if isinstance(content, tuple) else content
        if isinstance(data, str):
            data = data.replace("{{ name }}", "shop").replace("{{ port }}", "8000")
        files[path] = data
    return files


def test_a_copier_made_repository_is_adopted_and_then_updated(cast: Any, settings: Any, github_forge: Any) -> None:
    publish(settings, "svc", "1.0.0", V1)
    github_forge.create_repo_directly("alice/legacy", "alice")
    files = {**rendered_v1(), ".copier-answers.yml": ANSWERS}
    github_forge.seed_commit("alice/legacy", files=files, message="made with copier")
    github_forge.seed_commit("alice/legacy", files={"config.yaml": "name: shop\nlevel: debug\nretries: 3\n"})
    connection = connection_create(
        owner=cast.alice, provider="github", name="gh", base_url=github_forge.api_url, token=ALICE_TOKEN
    )
    adoption = adoption_start(
        project=cast.project,
        data={"provider": "github", "connection": connection.pk, "repository": {"name": "legacy"}, "template": "svc"},
        actor=cast.alice,
        enqueue=False,
    )
    adoption = adoption_execute(adoption_id=adoption.pk, owner="test:1:adopt")
    assert adoption.status == "completed", adoption.error
    assert adoption.answers_file == ".copier-answers.yml" and adoption.version == "1.0.0"
    assert adoption.recorded == {"tool": "copier", "source": "gh:acme/svc", "version": "1.0.0"}
    generated, export = adoption.generated, adoption.export
    assert generated.status == "completed" and generated.parameters == {"name": "shop", "port": 8000}
    assert export.remote_full_name == "alice/legacy" and export.status == "completed" and export.target["adopted"]
    assert export.commit_sha == github_forge.refs("alice/legacy")["refs/heads/main"]

    publish(settings, "svc", "2.0.0", V2)
    update, _ = update_start(generated=generated, data={"mode": "pull_request"}, actor=cast.alice, enqueue=False)
    assert update.export_id == export.pk
    done = update_execute(update_id=update.pk, owner="test:1:adopted-update")
    assert done.status == "completed", done.error
    outcomes = {f["path"]: f["outcome"] for f in done.files}
    assert outcomes["config.yaml"] == "conflict" and outcomes["new.txt"] == "added"
    assert ".copier-answers.yml" not in outcomes  # the repository's own file to Kiln's native template
    assert [c.head for c in github_forge.changes("alice/legacy")] == ["kiln/update/svc-2.0.0"]


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({"README.md": "# nothing to read\n"}, "no_answers_file"),
        ({".copier-answers.yml": "just: text\n"}, "answers_file_invalid"),
        ({".copier-answers.yml": "_commit: 9.9.9\n_src_path: gh:acme/svc\n"}, "version_not_found"),
    ],
)
def test_adoptions_that_cannot_link_fail_with_a_code(
    cast: Any, settings: Any, github_forge: Any, files: dict[str, str], code: str
) -> None:
    publish(settings, "svc", "1.0.0", V1)
    github_forge.create_repo_directly("alice/other", "alice")
    github_forge.seed_commit("alice/other", files=files)
    connection = connection_create(
        owner=cast.alice, provider="github", name="gh", base_url=github_forge.api_url, token=ALICE_TOKEN
    )
    adoption = adoption_start(
        project=cast.project,
        data={"provider": "github", "connection": connection.pk, "repository": {"name": "other"}, "template": "svc"},
        actor=cast.alice,
        enqueue=False,
    )
    done = adoption_execute(adoption_id=adoption.pk, owner="test:1:adopt")
    assert done.status == "failed" and done.error["code"] == code, done.error
    assert done.export is None


def test_adoption_api(api: Any, cast: Any, settings: Any, github_forge: Any) -> None:
    publish(settings, "svc", "1.0.0", V1)
    url = f"/api/v1/projects/{cast.project.pk}/adoptions/"
    refused = api(cast.dave).post(url, {"provider": "git", "remote_url": "file:///x.git"}, format="json")
    assert refused.status_code == 403
    bad = api(cast.mia).post(url, {"provider": "zip"}, format="json")
    assert bad.status_code == 400
    missing = api(cast.mia).post(
        url, {"provider": "git", "remote_url": "file:///x.git", "template": "nope"}, format="json"
    )
    assert missing.status_code == 404 and missing.json()["code"] == "template_not_found"
    created = api(cast.mia).post(url, {"provider": "git", "remote_url": "file:///x.git"}, format="json")
    assert created.status_code == 202 and created.json()["status"] == "pending"
    assert [a["id"] for a in api(cast.victor).get(url).json()["results"]] == [created.json()["id"]]
    assert api(cast.charlie).get(url).status_code == 404
    assert Adoption.objects.count() == 1
