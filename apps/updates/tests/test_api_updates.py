"""The updates API: POST/GET .../generated/{g}/updates/, .../updates/{id}/, .../updates/{id}/diff/."""

from __future__ import annotations

from typing import Any

import pytest

from apps.updates.services.updates import update_execute

pytestmark = pytest.mark.django_db

FIELDS = {
    "id",
    "status",
    "mode",
    "from_version",
    "to_version",
    "export",
    "branch",
    "commit_sha",
    "pull_request",
    "new_generation",
    "files",
    "conflicts",
    "error",
    "created_at",
    "finished_at",
}


def url(target: Any, suffix: str = "") -> str:
    return f"/api/v1/projects/{target.project.pk}/generated/{target.generated.pk}/updates/{suffix}"


def test_preview_over_the_api_then_its_diff(api: Any, cast: Any, exported: Any) -> None:
    target = exported("github")
    created = api(cast.dave).post(url(target), {"mode": "preview"}, format="json")  # a developer may preview
    assert created.status_code == 202, created.content
    body = created.json()
    assert set(body) >= FIELDS
    assert body["status"] == "pending" and body["mode"] == "preview"
    assert (body["from_version"], body["to_version"]) == ("1.0.0", "2.0.0")
    assert body["export"] == target.export.pk and body["branch"] == "kiln/update/svc-2.0.0"
    assert body["new_generation"] is not None and body["pull_request"] is None

    not_ready = api(cast.victor).get(url(target, f"{body['id']}/diff/"))
    assert not_ready.status_code == 409 and not_ready.json()["code"] == "update_not_ready"

    update_execute(update_id=body["id"], owner="test:1:api")
    detail = api(cast.victor).get(url(target, f"{body['id']}/")).json()  # viewers read
    assert detail["status"] == "completed" and detail["outcome"] == "previewed"
    assert {"path": "config.yaml", "outcome": "conflict", "reason": "conflicting changes; markers in the file"} in (
        detail["files"]
    )
    assert detail["conflicts"] == ["config.yaml"]
    diff = api(cast.victor).get(url(target, f"{body['id']}/diff/"))
    assert diff.status_code == 200
    assert diff["Content-Type"] == "text/x-diff; charset=utf-8"
    assert diff.content.startswith(b"diff --git ")
    assert b"+<<<<<<< before updating" in diff.content
    listed = api(cast.victor).get(url(target)).json()
    assert [item["id"] for item in listed["results"]] == [body["id"]]
    logs = api(cast.victor).get(url(target, f"{body['id']}/logs/")).json()
    assert any("preview" in line for line in logs["logs"])


def test_branch_and_pull_request_modes_need_a_maintainer(api: Any, cast: Any, exported: Any) -> None:
    target = exported("github")
    refused = api(cast.dave).post(url(target), {"mode": "pull_request"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    accepted = api(cast.mia).post(url(target), {"mode": "branch"}, format="json")
    assert accepted.status_code == 202


def test_posting_the_same_update_while_it_is_pending_returns_it(api: Any, cast: Any, exported: Any) -> None:
    target = exported("github")
    first = api(cast.alice).post(url(target), {"mode": "pull_request", "to_version": "2.0.0"}, format="json")
    again = api(cast.alice).post(url(target), {"mode": "pull_request"}, format="json")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other_answers = api(cast.alice).post(
        url(target), {"mode": "pull_request", "parameters": {"port": 9}}, format="json"
    )
    assert other_answers.json()["id"] != first.json()["id"]


BAD_INPUT = [
    ({"mode": "merge"}, "validation_error", "mode"),
    ({"to_version": 2}, "validation_error", "to_version"),
    ({"parameters": []}, "validation_error", "parameters"),
    ({"parameters": {"nope": 1}}, "validation_error", "parameters.nope"),
    ({"parameters": {"port": "eighty"}}, "validation_error", "parameters.port"),
    ({"export": "x"}, "validation_error", "export"),
    ({"export": 999999}, "export_not_found", "export"),
    ({"branch": "main"}, "validation_error", "branch"),
]


def test_bad_input_is_a_coded_400_naming_the_field(api: Any, cast: Any, exported: Any) -> None:
    target = exported("github")
    for body, code, field in BAD_INPUT:
        response = api(cast.alice).post(url(target), {"mode": "preview", **body}, format="json")
        assert response.status_code == 400, (body, response.content)
        payload = response.json()
        assert payload["code"] == code and field in payload["extra"]["fields"], (body, payload)
    assert not target.generated.updates.exists()


def test_an_export_of_another_template_is_refused(api: Any, cast: Any, exported: Any, make_template: Any) -> None:
    from apps.updates.tests.conftest import export_to, generate

    target = exported("github")
    other = make_template({"a.txt": "a\n"}, slug="other")
    elsewhere = export_to(generate(cast.project, cast.alice, other.slug), cast.alice, {"provider": "zip"})
    response = api(cast.alice).post(url(target), {"mode": "preview", "export": elsewhere.pk}, format="json")
    assert response.status_code == 400 and response.json()["extra"]["fields"]["export"]


def test_unknown_version_is_404(api: Any, cast: Any, exported: Any) -> None:
    target = exported("github")
    response = api(cast.alice).post(url(target), {"mode": "preview", "to_version": "9.9.9"}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "version_not_found"


def test_a_generation_never_exported_to_git_is_not_exported(api: Any, cast: Any, make_template: Any) -> None:
    from apps.updates.tests.conftest import generate

    template = make_template({"a.txt": "a\n"}, slug="lonely")
    generated = generate(cast.project, cast.alice, template.slug)
    response = api(cast.alice).post(
        f"/api/v1/projects/{cast.project.pk}/generated/{generated.pk}/updates/", {"mode": "preview"}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "not_exported"


def test_non_members_get_404_and_ids_are_scoped(api: Any, cast: Any, exported: Any) -> None:
    target = exported("github")
    created = api(cast.alice).post(url(target), {"mode": "preview"}, format="json").json()
    assert api(cast.charlie).get(url(target)).status_code == 404
    assert api(cast.charlie).post(url(target), {"mode": "preview"}, format="json").status_code == 404
    assert api(cast.alice).get(url(target, "abc/")).status_code == 404
    other = f"/api/v1/projects/{cast.project.pk}/generated/{created['new_generation']}/updates/{created['id']}/"
    assert api(cast.alice).get(other).status_code == 404  # the update belongs to the base generation only
