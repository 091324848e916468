"""pytest plugin: `github_forge`, `gitlab_forge` and `git_env`.

Registered from the root conftest (`pytest_plugins = ["tests.forge.fixtures"]`). Each forge
is function-scoped, lives under the test's `tmp_path`, starts in a few milliseconds and is
stopped afterwards; an exception inside the forge itself fails the test at teardown.

The cast on every forge: `alice` (token `ALICE_TOKEN`) and `bob` (`BOB_TOKEN`); GitHub
organisation `acme` / GitLab groups `acme` and `acme/platform/tools` (`acme/platform` is
created as their parent), all with alice as the member and bob outside.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.forge.server import LocalForge

# Obvious canaries: if one of these shows up in a log, a URL or an error message, a test
# can grep for it. Never shaped like a real token (no ghp_/glpat- prefix).
ALICE_TOKEN = "CANARY-forge-token-alice-0000"
BOB_TOKEN = "CANARY-forge-token-bob-0000"


def populate(forge: LocalForge) -> LocalForge:
    forge.add_user("alice", ALICE_TOKEN, name="Alice")
    forge.add_user("bob", BOB_TOKEN, name="Bob")
    if forge.flavor == "github":
        forge.add_org("acme", members=["alice"], name="Acme")
    else:
        forge.add_group("acme", members=["alice"], name="Acme")
        forge.add_group("acme/platform/tools", members=["alice"], name="Tools")
    return forge


def _run_forge(flavor: str, root: Path) -> Iterator[LocalForge]:
    forge = LocalForge(flavor, root)
    with forge:
        populate(forge)
        yield forge
    if forge.errors:
        pytest.fail("the local forge raised internally:\n" + "\n".join(forge.errors), pytrace=False)


@pytest.fixture
def github_forge(tmp_path: Path) -> Iterator[LocalForge]:
    """A started local GitHub (`forge.api_url` is PyGithub's `base_url`)."""
    yield from _run_forge("github", tmp_path / "forge-github")


@pytest.fixture
def gitlab_forge(tmp_path: Path) -> Iterator[LocalForge]:
    """A started local GitLab (`forge.api_url` is python-gitlab's `url`)."""
    yield from _run_forge("gitlab", tmp_path / "forge-gitlab")


@pytest.fixture
def forge_token() -> str:
    return ALICE_TOKEN


@pytest.fixture
def git_env(tmp_path: Path) -> dict[str, str]:
    """Variables that isolate a git command from the machine's and user's configuration.

    Merge them into the `env=` of one git call (GitPython merges `env=` over os.environ);
    add the forge's `git_auth_env(token)` for credentials.
    """
    home = tmp_path / "git-home"
    home.mkdir(exist_ok=True)
    return {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "HOME": str(home),
        "GIT_ASKPASS": "/bin/false",
    }
