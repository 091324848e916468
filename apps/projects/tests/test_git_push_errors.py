"""How a failed git command is classified, and which pushes are tried again."""

from __future__ import annotations

import pytest

from apps.projects.services.export_providers import common
from apps.projects.services.gitops import classify_git_error
from apps.projects.tests.test_exports_forge import connect, export

URL = "https://forge.example/acme/svc.git"


@pytest.mark.parametrize(
    ("output", "code"),
    [
        (f"fatal: unable to access '{URL}/': The requested URL returned error: 403", "invalid_token"),
        (f"fatal: unable to access '{URL}/': The requested URL returned error: 401", "invalid_token"),
        (f"fatal: Authentication failed for '{URL}/'", "invalid_token"),
        (
            "fatal: could not read Username for 'https://forge.example': terminal prompts disabled",
            "invalid_token",
        ),
        (f"fatal: repository '{URL}/' not found", "remote_not_found"),
        ("remote: Repository not found.\nfatal: repository not found", "remote_not_found"),
        (f"fatal: unable to access '{URL}/': The requested URL returned error: 404", "remote_not_found"),
        (f"fatal: unable to access '{URL}/': The requested URL returned error: 503", "remote_unavailable"),
        (f"fatal: unable to access '{URL}/': The requested URL returned error: 429", "remote_unavailable"),
        (
            "error: RPC failed; HTTP 500 curl 22 The requested URL returned error: 500\n"
            "send-pack: unexpected disconnect while reading sideband packet\n"
            "fatal: the remote end hung up unexpectedly",
            "remote_unavailable",
        ),
        # a port number holding "403"/"401" is not an HTTP status
        (
            "fatal: unable to access 'http://127.0.0.1:40312/acme/svc.git/': Failed to connect to 127.0.0.1 "
            "port 40312 after 0 ms: Couldn't connect to server",
            "remote_unavailable",
        ),
        (
            "remote: GitLab: A default branch (e.g. main) does not yet exist in acme/svc\n"
            "remote: Ask a project Owner or Maintainer to create a default branch:\n"
            f"error: failed to push some refs to '{URL}'\n"
            f"To {URL}\n!\trefs/heads/main:refs/heads/main\t[remote rejected] (pre-receive hook declined)\nDone",
            "push_rejected",
        ),
        (
            f"To {URL}\n!\trefs/heads/main:refs/heads/main\t[remote rejected] (protected branch hook declined)",
            "push_rejected",
        ),
        (
            f"error: failed to push some refs to '{URL}'\nhint: Updates were rejected because the remote "
            f"contains work that you do\nTo {URL}\n!\trefs/heads/main:refs/heads/main\t[rejected] (fetch first)",
            "remote_not_empty",
        ),
        (f"fatal: unable to access '{URL}/': Operation timed out after 30000 milliseconds", "remote_timeout"),
        ("fatal: protocol error: bad line length character: HTTP", "push_failed"),
    ],
)
def test_git_errors_are_classified(output, code):
    assert classify_git_error(output)[0] == code


def test_a_push_answered_503_once_is_tried_again(api, cast, generated, run_jobs, github_forge, monkeypatch):
    monkeypatch.setattr(common, "backoff", lambda attempt: 0.01)
    github_forge.inject("POST", r"/git-receive-pack$", 503, "busy", times=1)
    conn = connect(api, cast.alice, github_forge, "github")
    body = {"provider": "github", "connection": conn, "repository": {"name": "busy-forge"}}

    detail = export(api, cast.alice, cast, generated, body, run_jobs)

    assert detail["status"] == "completed", detail
    assert github_forge.refs("alice/busy-forge")["refs/heads/main"] == detail["commit_sha"]
    pushes = [status for status, method, path, _ in github_forge.git_requests if path.endswith("/git-receive-pack")]
    assert pushes == [503, 200]


def test_a_push_refused_with_403_is_not_retried(api, cast, generated, run_jobs, github_forge, monkeypatch):
    monkeypatch.setattr(common, "backoff", lambda attempt: 0.01)
    github_forge.inject("POST", r"/git-receive-pack$", 403, "forbidden", times=None)
    conn = connect(api, cast.alice, github_forge, "github")
    body = {"provider": "github", "connection": conn, "repository": {"name": "no-push"}}

    detail = export(api, cast.alice, cast, generated, body, run_jobs)

    assert detail["status"] == "failed", detail
    assert detail["error"]["code"] == "invalid_token"
    pushes = [status for status, method, path, _ in github_forge.git_requests if path.endswith("/git-receive-pack")]
    assert pushes == [403]
