"""Issue 21 item 10: `PATCH /agents/{id}/ {"projects": [...]}`.

It deleted the agent's owner membership in projects the agent had created (leaving them
with no member who could manage or delete them), reset the agent's role in the kept
projects to `developer` when `role` was omitted, and answered a stale `projects` list.
"""

from __future__ import annotations

import pytest

from apps.agents.services.agents import agent_create
from apps.projects.models import Project, ProjectMembership, Role
from apps.projects.services.projects import project_create

pytestmark = pytest.mark.django_db


def patch(api, user, agent, body):
    return api(user).patch(f"/api/v1/agents/{agent.pk}/", body, format="json")


def roles(agent) -> dict[int, str]:
    return dict(ProjectMembership.objects.filter(user=agent.user).values_list("project_id", "role"))


@pytest.fixture
def agent(cast):
    return agent_create(owner=cast.alice, name="Bot", projects=[cast.project.pk], role=Role.MAINTAINER)


def test_projects_the_agent_created_keep_their_owner(api, cast, agent):
    created = api(agent.user).post("/api/v1/projects/", {"name": "Agent's own"}, format="json")
    assert created.status_code == 201, created.content
    own = created.json()["id"]
    response = patch(api, cast.alice, agent, {"projects": []})
    assert response.status_code == 200, response.content
    assert roles(agent) == {own: Role.OWNER}
    assert response.json()["projects"] == [own]
    assert ProjectMembership.objects.filter(project_id=own).exists()
    again = patch(api, cast.alice, agent, {"projects": [own, cast.project.pk], "role": "developer"})
    assert again.status_code == 200, again.content
    assert roles(agent) == {own: Role.OWNER, cast.project.pk: Role.DEVELOPER}


def test_roles_are_kept_when_role_is_omitted(api, cast, agent):
    other = project_create(owner=cast.alice, name="Beta")
    response = patch(api, cast.alice, agent, {"projects": [cast.project.pk, other.pk]})
    assert response.status_code == 200, response.content
    assert roles(agent) == {cast.project.pk: Role.MAINTAINER, other.pk: Role.DEVELOPER}
    changed = patch(api, cast.alice, agent, {"projects": [cast.project.pk, other.pk], "role": "viewer"})
    assert changed.status_code == 200
    assert roles(agent) == {cast.project.pk: Role.VIEWER, other.pk: Role.VIEWER}


def test_the_response_lists_the_projects_after_the_change(api, cast, agent):
    other = project_create(owner=cast.alice, name="Beta")
    response = patch(api, cast.alice, agent, {"projects": [other.pk]})
    assert response.status_code == 200
    assert response.json()["projects"] == [other.pk]
    assert api(cast.alice).get(f"/api/v1/agents/{agent.pk}/").json()["projects"] == [other.pk]


def test_removing_an_agent_that_is_the_last_owner_is_409(api, cast, agent):
    project = Project.objects.get(pk=cast.project.pk)
    ProjectMembership.objects.filter(project=project, user=agent.user).update(role=Role.OWNER)
    ProjectMembership.objects.filter(project=project).exclude(user=agent.user).filter(role=Role.OWNER).delete()
    response = patch(api, cast.alice, agent, {"projects": []})
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "last_owner"
    assert roles(agent) == {project.pk: Role.OWNER}


def test_demoting_an_agent_that_is_the_last_owner_is_409(api, cast, agent):
    project = Project.objects.get(pk=cast.project.pk)
    ProjectMembership.objects.filter(project=project, user=agent.user).update(role=Role.OWNER)
    ProjectMembership.objects.filter(project=project, user=cast.alice).update(role=Role.MAINTAINER)
    ProjectMembership.objects.filter(project=project, user=cast.mia).update(role=Role.MAINTAINER)
    response = patch(api, cast.mia, agent, {"projects": [project.pk], "role": "developer"})
    assert response.status_code in (403, 404), response.content  # not mia's agent: 404
    response = patch(api, cast.alice, agent, {"projects": [project.pk], "role": "developer"})
    assert response.status_code == 409, response.content
    assert roles(agent) == {project.pk: Role.OWNER}
