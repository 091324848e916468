"""The one door to the git binary: building a commit and pushing it, always isolated.

Every git command runs with no system or global config, an empty HOME, prompts off,
hooks pointed at /dev/null, redirects off and `ext::`-style transports forbidden.
Credentials travel only in per-command environment config (`http.<url>.extraHeader`),
never in a URL, argv or `.git/config`. Commits are built with `git fast-import` from
the recorded files (each read without following links), with a fixed identity and date,
so the same generated project always gives the same commit sha and a re-push is a no-op.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from git import Git, Repo
from git.exc import GitCommandError

from apps.projects.services.stored_files import SourceFile, read_generated_file
from core.exceptions import ApplicationError
from core.redaction import redact

AUTHOR_NAME = "Kiln"
AUTHOR_EMAIL = "kiln@kiln.invalid"


class GitFailed(ApplicationError):
    status_code = 502
    default_code = "push_failed"


@dataclass(frozen=True)
class GitAuth:
    """Basic credentials for one remote origin (`x-access-token`, `oauth2`, ...)."""

    username: str
    token: str

    def header(self) -> str:
        raw = f"{self.username}:{self.token}".encode()
        return f"Authorization: Basic {base64.b64encode(raw).decode()}"


_EMPTY_HOME: str | None = None


def _empty_home() -> str:
    global _EMPTY_HOME
    if _EMPTY_HOME is None or not os.path.isdir(_EMPTY_HOME):
        _EMPTY_HOME = tempfile.mkdtemp(prefix="kiln-git-home-")
    return _EMPTY_HOME


def git_env(*, url: str | None = None, auth: GitAuth | None = None) -> dict[str, str]:
    protocols = ["https"]
    if settings.KILN_ALLOW_PRIVATE_NETWORKS:
        protocols.append("http")
    if settings.KILN_ALLOW_FILE_REMOTES:
        protocols.append("file")
    config = [
        ("core.hooksPath", os.devnull),
        ("http.followRedirects", "false"),
        ("protocol.ext.allow", "never"),
        ("credential.helper", ""),
        ("http.lowSpeedLimit", "1000"),
        ("http.lowSpeedTime", "60"),
        ("init.defaultBranch", "main"),
        ("core.fsmonitor", "false"),
    ]
    if url is not None and auth is not None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}/"
        config.append((f"http.{origin}.extraHeader", auth.header()))
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "HOME": _empty_home(),
        "XDG_CONFIG_HOME": _empty_home(),
        "GIT_ALLOW_PROTOCOL": ":".join(protocols),
        "LC_ALL": "C",
        "GIT_CONFIG_COUNT": str(len(config)),
    }
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _quote_path(path: str) -> str:
    if path.startswith('"') or "\\" in path:
        escaped = path.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return path


def build_commit(
    *, root: Path, files: Iterable[SourceFile], git_dir: Path, branch: str, message: str, timestamp: int
) -> str:
    """Create a bare repository at `git_dir` holding one deterministic commit of `files`."""
    env = git_env()
    Repo.init(git_dir, bare=True, mkdir=True)
    git = Git()
    when = f"{timestamp} +0000"
    command = [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "fast-import", "--quiet", "--done"]
    process = git.execute(command, env=env, as_process=True, istream=subprocess.PIPE)  # type: ignore[call-overload]
    proc = process.proc
    assert proc is not None and proc.stdin is not None
    stdin = proc.stdin
    try:
        msg = message.encode()
        head = (
            f"commit refs/heads/{branch}\n"
            f"author {AUTHOR_NAME} <{AUTHOR_EMAIL}> {when}\n"
            f"committer {AUTHOR_NAME} <{AUTHOR_EMAIL}> {when}\n"
            f"data {len(msg)}\n"
        ).encode()
        stdin.write(head + msg + b"\n")
        for source in sorted(files, key=lambda f: f.path):
            data = read_generated_file(root, source)
            mode = "100755" if source.mode & 0o111 else "100644"
            stdin.write(f"M {mode} inline {_quote_path(source.path)}\ndata {len(data)}\n".encode())
            stdin.write(data)
            stdin.write(b"\n")
        stdin.write(b"done\n")
        stdin.close()
        returncode = proc.wait(timeout=settings.KILN_GIT_TIMEOUT)
    except BaseException:
        proc.kill()
        raise
    if returncode != 0:
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise GitFailed(f"Building the commit failed: {redact(stderr.strip())[:500]}", code="git_build_failed")
    repo = Repo(git_dir)
    repo.git.execute([settings.KILN_GIT_BINARY, "symbolic-ref", "HEAD", f"refs/heads/{branch}"], env=env)
    return repo.git.execute([settings.KILN_GIT_BINARY, "rev-parse", f"refs/heads/{branch}"], env=env).strip()


# How git reports an HTTP answer: "The requested URL returned error: 503".
_HTTP_STATUS = re.compile(r"returned error: (\d{3})")
# "fatal: repository 'https://host/o/r.git/' not found", "remote: Repository not found."
_NOT_FOUND = re.compile(r"repository '[^']*' not found|repository not found|does not appear to be a git repository")
_AUTH_PHRASES = ("authentication failed", "could not read username", "terminal prompts disabled", "invalid credentials")
_UNAVAILABLE_PHRASES = (
    "the remote end hung up unexpectedly",
    "connection refused",
    "connection reset",
    "couldn't connect to server",
    "failed to connect",
    "early eof",
    "rpc failed",
    "service unavailable",
)


def classify_git_error(output: str) -> tuple[str, str]:
    """(code, message) for a failed git command from what it printed (stderr, then stdout).

    `remote_unavailable` (HTTP 429/5xx, dropped connections) and `remote_not_found` (a
    repository the forge is still creating) are worth another try; the others are not.
    """
    text = output.lower()
    status = next((int(m) for m in _HTTP_STATUS.findall(text)), None)
    if status in (401, 403) or any(p in text for p in _AUTH_PHRASES):
        return "invalid_token", "The remote rejected the credentials (check the connection's token and its scopes)."
    if status == 404 or _NOT_FOUND.search(text):
        return "remote_not_found", "The remote repository was not found."
    if status == 429 or (status is not None and status >= 500) or any(p in text for p in _UNAVAILABLE_PHRASES):
        return "remote_unavailable", "The remote is unavailable or dropped the connection."
    if "[remote rejected]" in text or "hook declined" in text or "protected branch" in text:
        return "push_rejected", "The remote refused the push (a server-side hook or branch protection)."
    if any(s in text for s in ("non-fast-forward", "fetch first", "[rejected]")):
        return "remote_not_empty", "The remote branch has commits Kiln did not make; Kiln never force-pushes."
    if "timed out" in text or "timeout" in text:
        return "remote_timeout", "The remote did not answer in time."
    return "push_failed", "Git could not talk to the remote."


def _run(args: list[str], *, env: dict[str, str], secrets: tuple[str, ...]) -> str:
    git = Git()
    try:
        return str(git.execute(args, env=env, kill_after_timeout=settings.KILN_GIT_TIMEOUT))
    except GitCommandError as exc:
        # `push --porcelain` reports a refused ref ("!  ...  [remote rejected] (reason)") on stdout
        output = redact(f"{exc.stderr or ''}\n{exc.stdout or ''}", secrets)
        code, message = classify_git_error(output)
        detail = " ".join(line.strip() for line in output.splitlines() if line.strip())[-300:]
        raise GitFailed(f"{message} ({detail})" if detail else message, code=code) from None


def remote_refs(url: str, *, auth: GitAuth | None) -> dict[str, str]:
    """`git ls-remote` of the branches at `url`."""
    secrets = (auth.token,) if auth else ()
    out = _run(
        [settings.KILN_GIT_BINARY, "ls-remote", "--heads", "--", url], env=git_env(url=url, auth=auth), secrets=secrets
    )
    refs = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref:
            refs[ref.strip()] = sha.strip()
    return refs


@dataclass
class PushOutcome:
    pushed: bool


def push_commit(*, git_dir: Path, url: str, branch: str, commit: str, auth: GitAuth | None) -> PushOutcome:
    """Push `branch` to an empty remote, or find it already there; never force."""
    ref = f"refs/heads/{branch}"
    before = remote_refs(url, auth=auth)
    if before.get(ref) == commit:
        return PushOutcome(pushed=False)
    if before:
        raise GitFailed(
            "The remote repository already has branches; Kiln only pushes into empty repositories "
            "and never force-pushes.",
            code="remote_not_empty",
            status_code=409,
        )
    secrets = (auth.token,) if auth else ()
    options = []
    if url.startswith("file:"):
        # git clears config from the environment for a local receive-pack; pass it on the command
        options.append(f"--receive-pack={settings.KILN_GIT_BINARY} -c core.hooksPath={os.devnull} receive-pack")
    try:
        _run(
            [
                settings.KILN_GIT_BINARY,
                f"--git-dir={git_dir}",
                "push",
                "--porcelain",
                *options,
                "--",
                url,
                f"{ref}:{ref}",
            ],
            env=git_env(url=url, auth=auth),
            secrets=secrets,
        )
    except GitFailed:
        # An earlier delivery's push (its git process outlives a killed worker) may have landed
        # the very same commit meanwhile: that is success, not a conflict.
        if remote_refs(url, auth=auth).get(ref) == commit:
            return PushOutcome(pushed=False)
        raise
    after = remote_refs(url, auth=auth)
    if after.get(ref) != commit:
        raise GitFailed("The push finished but the remote branch does not point at the commit.", code="push_unverified")
    return PushOutcome(pushed=True)
