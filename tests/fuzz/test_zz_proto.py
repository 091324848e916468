import os
import pytest
from hypothesis import HealthCheck, settings
import schemathesis
from core.wsgi import application

N = int(os.environ.get("KILN_FUZZ_EXAMPLES", "5"))
config = schemathesis.Config.from_dict({"generation": {"mode": "all", "max-examples": N}, "seed": 1, "phases": {"stateful": {"enabled": False}}})
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, config=config)

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


@pytest.fixture
def token(django_db_reset_sequences):
    from apps.accounts.services import user_token_issue
    from apps.projects.tests.factories import UserFactory
    from apps.projects.services.projects import project_create
    u = UserFactory(username="fuzzer")
    project_create(owner=u, name="Fuzz")
    return user_token_issue(user=u, name="fuzz")[1]


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_api(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"})
