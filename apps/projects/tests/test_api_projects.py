"""Projects, members, auth tokens and the error contract through DRF's client."""

from __future__ import annotations

import pytest

from apps.projects.models import Project, ProjectMembership

pytestmark = pytest.mark.django_db


def test_create_project_makes_creator_owner(api, cast):
    response = api(cast.charlie).post("/api/v1/projects/", {"name": "Beta", "description": "b"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= {"id", "name", "slug", "description", "owner", "created_at"}
    assert body["owner"] == "charlie" and body["slug"] == "beta"
    assert ProjectMembership.objects.get(project_id=body["id"], user=cast.charlie).role == "owner"


def test_list_shows_only_own_projects(api, cast):
    api(cast.charlie).post("/api/v1/projects/", {"name": "Charlie's"}, format="json")
    names = [p["name"] for p in api(cast.victor).get("/api/v1/projects/").json()["results"]]
    assert names == ["Alpha"]
    assert [p["name"] for p in api(cast.charlie).get("/api/v1/projects/").json()["results"]] == ["Charlie's"]


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "a\nb"},
        {"name": "evil\u202e"},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "ok", "owner": 1},
        {"name": "ok", "id": 5},
        {"name": "ok", "slug": "chosen"},
    ],
)
def test_bad_project_input_is_400(api, cast, payload):
    response = api(cast.alice).post("/api/v1/projects/", payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"
    assert Project.objects.count() == 1


def test_patch_and_delete_by_role(api, cast):
    url = f"/api/v1/projects/{cast.project.pk}/"
    assert api(cast.dave).patch(url, {"description": "x"}, format="json").status_code == 403
    response = api(cast.mia).patch(url, {"description": "new"}, format="json")
    assert response.status_code == 200 and response.json()["description"] == "new"
    assert api(cast.mia).patch(url, {"owner": cast.mia.pk}, format="json").status_code == 400
    assert api(cast.charlie).patch(url, {"description": "x"}, format="json").status_code == 404
    assert api(cast.mia).delete(url).status_code == 403
    assert api(cast.charlie).delete(url).status_code == 404
    assert api(cast.alice).delete(url).status_code == 204
    assert not Project.objects.filter(pk=cast.project.pk).exists()


def test_members_management(api, cast):
    from apps.projects.tests.factories import UserFactory

    UserFactory(username="newbie")
    url = f"/api/v1/projects/{cast.project.pk}/members/"
    listing = api(cast.victor).get(url).json()
    assert {m["username"]: m["role"] for m in listing["results"]} == {
        "alice": "owner",
        "mia": "maintainer",
        "dave": "developer",
        "victor": "viewer",
    }
    assert api(cast.mia).post(url, {"username": "newbie", "role": "viewer"}, format="json").status_code == 403
    created = api(cast.alice).post(url, {"username": "newbie", "role": "developer"}, format="json")
    assert created.status_code == 201 and created.json()["role"] == "developer"
    assert (
        api(cast.alice).post(url, {"username": "newbie", "role": "viewer"}, format="json").json()["code"]
        == "already_member"
    )
    assert api(cast.alice).post(url, {"username": "ghost", "role": "viewer"}, format="json").status_code == 400
    assert api(cast.alice).post(url, {"username": "x", "role": "emperor"}, format="json").status_code == 400
    assert api(cast.alice).delete(f"{url}{created.json()['id']}/").status_code == 204
    owner_id = ProjectMembership.objects.get(project=cast.project, user=cast.alice).pk
    last_owner = api(cast.alice).delete(f"{url}{owner_id}/")
    assert last_owner.status_code == 409 and last_owner.json()["code"] == "last_owner"
    assert api(cast.charlie).get(url).status_code == 404


def test_token_login_and_use(api, cast, client):
    response = client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "pw-for-tests"}, content_type="application/json"
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert token.startswith("kiln_u_")
    from apps.accounts.models import UserToken

    assert not UserToken.objects.filter(key_hash=token).exists()  # stored hashed
    listed = client.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {token}")
    assert listed.status_code == 200 and listed.json()["count"] == 1
    bad = client.get("/api/v1/projects/", HTTP_AUTHORIZATION="Token kiln_u_not-a-real-token-000000000")
    assert bad.status_code == 401 and bad.json()["code"] == "authentication_failed"
    wrong = client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "nope"}, content_type="application/json"
    )
    assert wrong.status_code == 400 and wrong.json()["code"] == "invalid_credentials"
    anonymous = client.get("/api/v1/projects/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"


def test_unknown_api_route_is_json_404(client):
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
