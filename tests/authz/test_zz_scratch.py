import pytest
from tests.authz import World, authenticated

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cast, make_template, run_jobs):
    return World(cast, make_template, run_jobs)


def test_idor_steps(world, run_jobs):
    export = world.export
    gen = world.generated
    charlie = authenticated(world.cast.charlie)
    steps = [
        {"id": "g", "type": "file_generation", "input": {"generated": gen.pk}},
        {"id": "e", "type": "repo_creation", "input": {"export": export.pk}},
    ]
    wf = charlie.post("/api/v1/workflows/", {"name": "peek", "steps": steps}, format="json")
    print(wf.status_code, wf.json())
    with run_jobs():
        run = charlie.post(f"/api/v1/workflows/{wf.json()['id']}/runs/", {}, format="json")
    print(run.status_code)
    detail = charlie.get(f"/api/v1/runs/{run.json()['id']}/").json()
    print(detail)


def test_orphan(world):
    alice = authenticated(world.cast.alice)
    agent = alice.post("/api/v1/agents/", {"name": "Maker"}, format="json").json()
    tok = alice.post(f"/api/v1/agents/{agent['id']}/tokens/", {}, format="json").json()["token"]
    from rest_framework.test import APIClient

    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {tok}")
    p = c.post("/api/v1/projects/", {"name": "Agent made"}, format="json").json()
    print(p)
    print(alice.delete(f"/api/v1/agents/{agent['id']}/").status_code)
    from apps.projects.models import Project, ProjectMembership

    pr = Project.objects.get(pk=p["id"])
    print(
        "owner",
        pr.owner.username,
        "members",
        list(ProjectMembership.objects.filter(project=pr).values_list("user__username", "role")),
    )
    print(alice.get(f"/api/v1/projects/{p['id']}/").status_code)


def test_nonnumeric(world):
    alice = authenticated(world.cast.alice)
    for url in [
        "/api/v1/projects/abc/generated/",
        "/api/v1/projects/abc/",
        f"/api/v1/projects/{world.project.pk}/generated/abc/files/",
        "/api/v1/agents/abc/tokens/",
        "/api/v1/runs/abc/",
        "/api/v1/projects/99999999999999999999999/generated/",
        "/api/v1/projects/99999999999999999999999/",
    ]:
        r = alice.get(url)
        print(url, r.status_code, r.content[:200])


def test_oracle(world):
    charlie = authenticated(world.cast.charlie)
    a = charlie.get(f"/api/v1/runs/?workflow={world.workflow.pk}")
    b = charlie.get("/api/v1/runs/?workflow=999999")
    print(a.status_code, a.content[:200])
    print(b.status_code, b.content[:300])


def test_agent_persist(world):
    from apps.projects.models import ProjectMembership

    mia = authenticated(world.cast.mia)
    agent = mia.post(
        "/api/v1/agents/", {"name": "MiaBot", "projects": [world.project.pk], "role": "maintainer"}, format="json"
    ).json()
    tok = mia.post(f"/api/v1/agents/{agent['id']}/tokens/", {}, format="json").json()["token"]
    alice = authenticated(world.cast.alice)
    mid = ProjectMembership.objects.get(project=world.project, user=world.cast.mia).pk
    print(alice.delete(f"/api/v1/projects/{world.project.pk}/members/{mid}/").status_code)
    from rest_framework.test import APIClient

    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {tok}")
    print(mia.get(f"/api/v1/projects/{world.project.pk}/").status_code)
    print(
        c.patch(f"/api/v1/projects/{world.project.pk}/", {"description": "mia still here"}, format="json").status_code
    )


def test_pending_foreign(world, run_jobs):
    from apps.projects.services.generation import generated_project_start
    from apps.projects.models import GeneratedProject

    g = generated_project_start(
        project=world.project, template_slug=world.template.slug, parameters={}, actor=world.cast.alice, enqueue=False
    )
    charlie = authenticated(world.cast.charlie)
    steps = [{"id": "g", "type": "file_generation", "input": {"generated": g.pk}}]
    wf = charlie.post("/api/v1/workflows/", {"name": "peek", "steps": steps}, format="json")
    with run_jobs():
        run = charlie.post(f"/api/v1/workflows/{wf.json()['id']}/runs/", {}, format="json")
    print(charlie.get(f"/api/v1/runs/{run.json()['id']}/").json()["status"])
    print(GeneratedProject.objects.get(pk=g.pk).status)


def test_login_extra(world):
    from rest_framework.test import APIClient

    r = APIClient().post(
        "/api/v1/auth/token/", {"username": "alice", "password": "pw-for-tests", "is_staff": True}, format="json"
    )
    print(r.status_code, r.content)
