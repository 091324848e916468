"""git smart-HTTP for the local forge: `/{full_path}.git/...` → `git http-backend` (CGI).

Authentication is Basic with the API token as the password, as on the real forges:
GitHub expects the username `x-access-token` and GitLab `oauth2` (the token owner's own
login is accepted as well, as both forges do for personal tokens). The answers mirror
the real ones where git shows them: 401 + `WWW-Authenticate: Basic` when credentials are
missing or wrong (git then asks its credential helper, or fails with prompts disabled),
404 "Repository not found." for a repository that does not exist or cannot be seen, 403
when the user may read but not push. A bare repository only exists after the API call
that created it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import subprocess
from typing import TYPE_CHECKING

from tests.forge.model import GIT, Request, Response, User, git_env, text_response

if TYPE_CHECKING:
    from tests.forge.server import LocalForge

GIT_PATH = re.compile(r"^/(?P<repo>[^?]+?)\.git(?P<rest>/.*)?$")
REALMS = {"github": "GitHub", "gitlab": "GitLab"}


def is_git_path(path: str) -> bool:
    return GIT_PATH.match(path) is not None


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = raw.partition(":")
    return (user, password) if sep else None


def basic_username(header: str | None) -> str | None:
    creds = basic_credentials(header)
    return creds[0] if creds else None


def _unauthorized(forge: LocalForge, text: str = "Invalid username or token.\n") -> Response:
    realm = REALMS[forge.flavor]
    return text_response(401, text, [("WWW-Authenticate", f'Basic realm="{realm}"')])


def _authenticate(forge: LocalForge, req: Request) -> tuple[User | None, Response | None]:
    header = req.header("authorization")
    if not header:
        return None, None
    creds = basic_credentials(header)
    if creds is None:
        return None, _unauthorized(forge)
    username, token = creds
    user = forge.user_for_token(token)
    if user is None or username.lower() not in (forge.git_username, user.login.lower()):
        return None, _unauthorized(forge)
    return user, None


def handle(forge: LocalForge, req: Request) -> Response:
    match = GIT_PATH.match(req.path)
    assert match is not None
    rest = match.group("rest") or ""
    user, failure = _authenticate(forge, req)
    if failure is not None:
        return failure
    service = (
        "receive-pack"
        if (rest.endswith("/git-receive-pack") or req.arg("service") == "git-receive-pack")
        else "upload-pack"
    )
    repo = forge.find_repo(match.group("repo"))
    if repo is None or not forge.can_read(user, repo):
        # Without credentials the real forges ask for them before saying "not found".
        if user is None:
            return _unauthorized(forge, "Authentication required.\n")
        return text_response(404, "Repository not found.\n")
    if service == "receive-pack":
        if user is None:
            return _unauthorized(forge, "Authentication required.\n")
        if not forge.can_write(user, repo):
            return text_response(403, f"Permission to {repo.full_name}.git denied to {user.login}.\n")
    if rest not in ("/info/refs", "/git-upload-pack", "/git-receive-pack"):
        return text_response(404, "Not Found\n")

    env = git_env(forge.home)
    env.update(
        {
            "GIT_PROJECT_ROOT": str(forge.git_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": "local-forge",
            "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": req.method,
            "PATH_INFO": f"/{repo.full_name}.git{rest}",
            "QUERY_STRING": req.query_string,
            "CONTENT_TYPE": req.header("content-type") or "",
            "CONTENT_LENGTH": str(len(req.body)),
        }
    )
    if user is not None:
        env["REMOTE_USER"] = user.login  # enables receive-pack in http-backend
    if req.header("content-encoding"):
        env["HTTP_CONTENT_ENCODING"] = req.header("content-encoding") or ""
    if req.header("git-protocol"):
        env["GIT_PROTOCOL"] = req.header("git-protocol") or ""
    proc = subprocess.run(
        [GIT, "http-backend"], input=req.body, capture_output=True, env=env, timeout=300, check=False, cwd=os.sep
    )
    resp = _parse_cgi(proc.stdout)
    if resp is None:
        raise RuntimeError(f"git http-backend gave no CGI answer: {proc.stderr.decode(errors='replace')}")
    if service == "receive-pack" and rest == "/git-receive-pack" and resp.status == 200:
        forge.after_push(repo)
    return resp


def _parse_cgi(output: bytes) -> Response | None:
    """Split a CGI answer into status, headers and body (`Status:` defaults to 200)."""
    crlf, lf = output.find(b"\r\n\r\n"), output.find(b"\n\n")
    if crlf == -1 and lf == -1:
        return None
    if crlf != -1 and (lf == -1 or crlf <= lf):
        head, body = output[:crlf], output[crlf + 4 :]
    else:
        head, body = output[:lf], output[lf + 2 :]
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not name:
            continue
        if name.lower() == "status":
            status = int(value.split()[0])
        else:
            headers.append((name, value))
    return Response(status, body, headers, None)
