"""The one door to the git binary: building a commit and pushing it, always isolated.

Every git command runs with no system or global config, an empty HOME, prompts off,
hooks pointed at /dev/null, redirects off and `ext::`-style transports forbidden.
Credentials travel only in per-command environment config (`http.<url>.extraHeader`),
never in a URL, argv or `.git/config`. Commits are built with `git fast-import` from
the recorded files (read from the blob store, verified), with a fixed identity and date,
so the same generated project always gives the same commit sha and a re-push is a no-op.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from git import Git, Repo
from git.exc import GitCommandError

from apps.projects.services.stored_files import SourceFile
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
    *,
    files: Sequence[SourceFile],
    read_many: Callable[[Sequence[SourceFile]], Iterable[bytes]],
    git_dir: Path,
    branch: str,
    message: str,
    timestamp: int,
) -> str:
    """Create a bare repository at `git_dir` holding one deterministic commit of `files`.

    `read_many` gives the files' bytes in the order asked (the blob store's verified reads):
    they are streamed into `git fast-import`, so no working tree is written.
    """
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
        ordered = sorted(files, key=lambda f: f.path)
        for source, data in zip(ordered, read_many(ordered), strict=True):
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


# --- template updates: read a branch, merge one file, write a commit on top, push it --------------
#
# An update never clones a working tree: the target's branches are fetched shallow into a scratch
# bare repository, its tree is listed by blob id, only the blobs a merge needs are read, and the
# result is written with fast-import as a commit whose parent is the fetched head (only the paths
# that change are sent). Git's own 3-way file merge (`git merge-file`) merges what both sides changed.

GIT_MODE_FILE = 0o100644
GIT_MODE_EXECUTABLE = 0o100755
GIT_MODE_SYMLINK = 0o120000
GIT_MODE_GITLINK = 0o160000


def blob_id(data: bytes) -> str:
    """The git blob id (sha1 of `blob <size>\\0<bytes>`) of `data`, without running git."""
    digest = hashlib.sha1(f"blob {len(data)}\0".encode(), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True)
class TreeEntry:
    mode: int
    oid: str


def init_scratch(git_dir: Path) -> None:
    """An empty bare repository for one job (objects from fetches and fast-import land here)."""
    Repo.init(git_dir, bare=True, mkdir=True)


def fetch_heads(git_dir: Path, *, url: str, branches: Sequence[str], auth: GitAuth | None) -> dict[str, str]:
    """Fetch the tips of `branches` that exist at `url` (depth 1) into `refs/remotes/origin/*`.

    Returns {branch: sha} for the branches the remote has; the others are absent. One round
    trip: each branch is fetched through a pattern refspec (`refs/heads/<name>*`), which matches
    nothing instead of failing when the branch does not exist.
    """
    secrets = (auth.token,) if auth else ()
    refspecs = [f"+refs/heads/{b}*:refs/remotes/origin/{b}*" for b in branches]
    options = []
    if url.startswith("file:"):
        options.append(f"--upload-pack={settings.KILN_GIT_BINARY} -c core.hooksPath={os.devnull} upload-pack")
    _run(
        [
            settings.KILN_GIT_BINARY,
            f"--git-dir={git_dir}",
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--depth=1",
            *options,
            "--",
            url,
            *refspecs,
        ],
        env=git_env(url=url, auth=auth),
        secrets=secrets,
    )
    listed = _run(
        [
            settings.KILN_GIT_BINARY,
            f"--git-dir={git_dir}",
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/remotes/origin/",
        ],
        env=git_env(),
        secrets=(),
    )
    found = {}
    for line in listed.splitlines():
        sha, _, ref = line.partition(" ")
        found[ref.removeprefix("refs/remotes/origin/")] = sha
    return {branch: found[branch] for branch in branches if branch in found}


def list_tree(git_dir: Path, commit: str) -> dict[str, TreeEntry]:
    """Every entry of `commit`'s tree, recursively: path → (mode, blob id)."""
    out = subprocess.run(
        [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "ls-tree", "-r", "-z", "--full-tree", commit],
        env={**os.environ, **git_env()},
        capture_output=True,
        timeout=settings.KILN_GIT_TIMEOUT,
        check=False,
    )
    if out.returncode != 0:
        raise GitFailed(f"Reading the tree of {commit[:12]} failed.", code="git_read_failed")
    entries: dict[str, TreeEntry] = {}
    for record in out.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, _kind, oid = meta.decode().split()
        entries[raw_path.decode("utf-8", "surrogateescape")] = TreeEntry(int(mode, 8), oid)
    return entries


def read_blobs(git_dir: Path, oids: Iterable[str], *, max_bytes: int) -> dict[str, bytes]:
    """The contents of blobs already in `git_dir`, read with one `git cat-file --batch`.

    A blob larger than `max_bytes` is not read: it is absent from the answer (the caller treats
    it as too large to merge).
    """
    wanted = sorted(set(oids))
    if not wanted:
        return {}
    proc = subprocess.Popen(
        [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "cat-file", "--batch"],
        env={**os.environ, **git_env()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    blobs: dict[str, bytes] = {}
    try:
        proc.stdin.write("".join(f"{oid}\n" for oid in wanted).encode())
        proc.stdin.close()
        for oid in wanted:
            header = proc.stdout.readline().decode().split()
            if len(header) != 3:
                continue  # "<oid> missing"
            size = int(header[2])
            data = proc.stdout.read(size)
            proc.stdout.read(1)  # the newline after each object
            if size <= max_bytes:
                blobs[oid] = data
        proc.wait(timeout=settings.KILN_GIT_TIMEOUT)
    except BaseException:
        proc.kill()
        raise
    return blobs


@dataclass(frozen=True)
class FileChange:
    """A path's new content in a commit (`data` inline, or `oid` of a blob the repository has)."""

    mode: int
    data: bytes | None = None
    oid: str | None = None


def write_commit(
    git_dir: Path,
    *,
    ref: str,
    parents: Sequence[str],
    changes: dict[str, FileChange | None],
    message: str,
    timestamp: int,
) -> str:
    """A commit on top of `parents[0]` (merging `parents[1:]`) whose tree is the first parent's
    with `changes` applied (None deletes the path); fixed identity and date, so the same inputs
    always give the same sha. Returns the sha; `ref` points at it."""
    when = f"{timestamp} +0000"
    msg = message.encode()
    stream = [
        f"commit {ref}\n"
        f"author {AUTHOR_NAME} <{AUTHOR_EMAIL}> {when}\n"
        f"committer {AUTHOR_NAME} <{AUTHOR_EMAIL}> {when}\n"
        f"data {len(msg)}\n".encode()
        + msg
        + b"\n"
    ]
    if parents:
        stream.append(f"from {parents[0]}\n".encode())
        stream.extend(f"merge {parent}\n".encode() for parent in parents[1:])
    for path in sorted(changes):
        change = changes[path]
        quoted = _quote_path(path)
        if change is None:
            stream.append(f"D {quoted}\n".encode())
        elif change.oid is not None:
            stream.append(f"M {change.mode:o} {change.oid} {quoted}\n".encode())
        else:
            data = change.data or b""
            stream.append(f"M {change.mode:o} inline {quoted}\ndata {len(data)}\n".encode() + data + b"\n")
    stream.append(b"done\n")
    proc = subprocess.run(
        # --force moves the scratch repository's own ref; what reaches a remote is pushed without force
        [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "fast-import", "--quiet", "--done", "--force"],
        input=b"".join(stream),
        env={**os.environ, **git_env()},
        capture_output=True,
        timeout=settings.KILN_GIT_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        detail = redact(proc.stderr.decode(errors="replace").strip())[:500]
        raise GitFailed(f"Building the commit failed: {detail}", code="git_build_failed")
    return _run([settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "rev-parse", ref], env=git_env(), secrets=()).strip()


def is_ancestor(git_dir: Path, ancestor: str, descendant: str) -> bool:
    proc = subprocess.run(
        [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "merge-base", "--is-ancestor", ancestor, descendant],
        env={**os.environ, **git_env()},
        capture_output=True,
        timeout=settings.KILN_GIT_TIMEOUT,
        check=False,
    )
    return proc.returncode == 0


def commit_parents(git_dir: Path, commit: str) -> list[str]:
    """The parents a commit object names (read from the object itself: right in a shallow repository too)."""
    proc = subprocess.run(
        [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "cat-file", "commit", commit],
        env={**os.environ, **git_env()},
        capture_output=True,
        timeout=settings.KILN_GIT_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise GitFailed(f"Reading commit {commit[:12]} failed.", code="git_read_failed")
    header = proc.stdout.split(b"\n\n", 1)[0].decode(errors="replace")
    return [line.split()[1] for line in header.splitlines() if line.startswith("parent ")]


def diff_commits(git_dir: Path, old: str, new: str) -> bytes:
    """The unified diff from `old` to `new` (renames found, binary files named, no colour)."""
    proc = subprocess.run(
        [
            settings.KILN_GIT_BINARY,
            f"--git-dir={git_dir}",
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--find-renames",
            old,
            new,
        ],
        env={**os.environ, **git_env()},
        capture_output=True,
        timeout=settings.KILN_GIT_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise GitFailed("Computing the diff failed.", code="git_read_failed")
    return proc.stdout


@dataclass(frozen=True)
class MergedFile:
    data: bytes
    conflicts: int


def merge_file(
    *, ours: bytes, base: bytes, theirs: bytes, labels: tuple[str, str, str], scratch: Path, timeout: float
) -> MergedFile:
    """`git merge-file -p -L ours -L base -L theirs`: git's 3-way merge of one text file.

    `conflicts` is the number of conflicting hunks (0: merged cleanly); the conflict
    markers carry `labels`. Raises GitFailed (`merge_failed`) when git cannot merge the
    inputs (binary data) or takes longer than `timeout` seconds.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    names = []
    for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
        path = scratch / name
        path.write_bytes(data)
        names.append(str(path))
    args = [settings.KILN_GIT_BINARY, "merge-file", "-p"]
    for label in labels:
        args += ["-L", label]
    try:
        proc = subprocess.run(
            [*args, "--", *names],
            env={**os.environ, **git_env()},
            capture_output=True,
            timeout=timeout,
            check=False,
            cwd=scratch,
        )
    except subprocess.TimeoutExpired:
        raise GitFailed(f"Merging one file took longer than {timeout:.0f}s.", code="merge_timeout") from None
    # the exit status is the number of conflicts (capped at 127); negative (255 here) is an error
    if proc.returncode > 127:
        detail = proc.stderr.decode(errors="replace").strip()[:200]
        raise GitFailed(f"git merge-file could not merge: {detail}", code="merge_failed")
    return MergedFile(proc.stdout, proc.returncode)


@dataclass
class BranchPush:
    pushed: bool


def push_branch(
    *, git_dir: Path, url: str, branch: str, commit: str, auth: GitAuth | None, remote_head: str | None = None
) -> BranchPush:
    """Create or fast-forward `branch` at `url` to `commit`; never force.

    `remote_head` is the branch's tip as just fetched (None: absent); finding it already at
    `commit` is success without pushing. A remote that refuses the update as not a fast-forward
    (someone else's commits on the branch) is `branch_diverged` (409). git's porcelain answer
    for the ref says whether it was updated; a failed push is checked against the remote once
    more, since an earlier delivery's push of the same commit may have won the race.
    """
    ref = f"refs/heads/{branch}"
    if remote_head == commit:
        return BranchPush(pushed=False)
    options = []
    if url.startswith("file:"):
        options.append(f"--receive-pack={settings.KILN_GIT_BINARY} -c core.hooksPath={os.devnull} receive-pack")
    secrets = (auth.token,) if auth else ()
    try:
        out = _run(
            [
                settings.KILN_GIT_BINARY,
                f"--git-dir={git_dir}",
                "push",
                "--porcelain",
                *options,
                "--",
                url,
                f"{commit}:{ref}",
            ],
            env=git_env(url=url, auth=auth),
            secrets=secrets,
        )
    except GitFailed as exc:
        if remote_refs(url, auth=auth).get(ref) == commit:
            return BranchPush(pushed=False)  # an earlier delivery's push landed meanwhile
        if exc.code == "remote_not_empty":
            raise GitFailed(
                f"The branch '{branch}' has commits Kiln did not make; Kiln does not overwrite them "
                "(no force push). Delete the branch or merge those commits, then run the update again.",
                code="branch_diverged",
                status_code=409,
                extra={"branch": branch},
            ) from None
        raise
    # porcelain: "<flag>\t<from>:<to>\t<summary>"; ' ' fast-forward, '*' new ref, '=' up to date
    flags = [line[0] for line in out.splitlines() if line[:1] in " *=+-!" and f":{ref}\t" in line]
    if flags == ["="]:
        return BranchPush(pushed=False)
    if flags not in ([" "], ["*"]):
        raise GitFailed("The push finished but git did not report the branch as updated.", code="push_unverified")
    return BranchPush(pushed=True)


def branch_contains(
    git_dir: Path, *, url: str, branch: str, commit: str, auth: GitAuth | None, depth: int = 200
) -> bool:
    """Whether `commit` is in the last `depth` commits of `branch` at `url` (fetched into `git_dir`).

    A result merged with a merge commit or fast-forwarded is found; one squashed or rebased is
    not (its commit never reaches the branch), nor one older than `depth` commits.
    """
    secrets = (auth.token,) if auth else ()
    options = []
    if url.startswith("file:"):
        options.append(f"--upload-pack={settings.KILN_GIT_BINARY} -c core.hooksPath={os.devnull} upload-pack")
    try:
        _run(
            [
                settings.KILN_GIT_BINARY,
                f"--git-dir={git_dir}",
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                f"--depth={int(depth)}",
                *options,
                "--",
                url,
                f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
            ],
            env=git_env(url=url, auth=auth),
            secrets=secrets,
        )
    except GitFailed:
        return False
    present = subprocess.run(
        [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "cat-file", "-e", f"{commit}^{{commit}}"],
        env={**os.environ, **git_env()},
        capture_output=True,
        timeout=settings.KILN_GIT_TIMEOUT,
        check=False,
    )
    return present.returncode == 0 and is_ancestor(git_dir, commit, f"refs/remotes/origin/{branch}")


# --- template sources: list a repository's refs, fetch one of them shallow, read its tree ---------
#
# A git template source never clones: the refs are listed (`ls-remote`, tags and HEAD), then one
# version at a time is fetched at depth 1 into a scratch bare repository and its tree is read blob
# by blob. Everything a remote sends is bounded: the listing's size, the fetched pack (git is
# stopped when the scratch repository grows past the budget), the tree listing and the time.

MAX_LISTING_BYTES = 8 * 1024 * 1024
_BUDGET_POLL_SECONDS = 0.1


def _local_service(url: str, service: str) -> list[str]:
    """A file:// remote runs the service locally, where git clears config from the environment:
    the hooks path is passed on the command instead."""
    if not url.startswith("file:"):
        return []
    return [f"--{service}={settings.KILN_GIT_BINARY} -c core.hooksPath={os.devnull} {service}"]


def _run_bounded(
    args: list[str],
    *,
    env: dict[str, str],
    secrets: tuple[str, ...],
    max_output: int,
    watch: Callable[[], None] | None = None,
) -> bytes:
    """Run git with a deadline (KILN_GIT_TIMEOUT) and at most `max_output` bytes of output kept;
    `watch` is called every tenth of a second and may raise to stop git (it is killed first)."""
    deadline = time.monotonic() + settings.KILN_GIT_TIMEOUT
    proc = subprocess.Popen(
        args,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its helpers (git-remote-http, index-pack) are stopped with it
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, out)
            selector.register(proc.stderr, selectors.EVENT_READ, err)
            while selector.get_map():
                if time.monotonic() > deadline:
                    raise GitFailed(
                        f"git did not finish within {settings.KILN_GIT_TIMEOUT}s.",
                        code="remote_timeout",
                        extra={"limit": settings.KILN_GIT_TIMEOUT},
                    )
                for key, _ in selector.select(timeout=_BUDGET_POLL_SECONDS):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    key.data.extend(chunk)
                if len(out) > max_output:
                    raise GitFailed(
                        f"The remote sent more than {max_output} bytes.",
                        code="git_output_too_large",
                        extra={"limit": max_output},
                    )
                del err[: max(0, len(err) - 65536)]  # the end of what git said is enough
                if watch is not None:
                    watch()
        try:
            returncode = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise GitFailed(
                f"git did not finish within {settings.KILN_GIT_TIMEOUT}s.",
                code="remote_timeout",
                extra={"limit": settings.KILN_GIT_TIMEOUT},
            ) from None
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        proc.stderr.close()
    if returncode != 0:
        output = redact(err.decode(errors="replace"), secrets)
        code, message = classify_git_error(output)
        if "couldn't find remote ref" in output.lower():
            code, message = "ref_not_found", "The remote has no such ref."
        detail = " ".join(line.strip() for line in output.splitlines() if line.strip())[-300:]
        raise GitFailed(f"{message} ({detail})" if detail else message, code=code)
    return bytes(out)


@dataclass(frozen=True)
class RemoteRefs:
    """What `git ls-remote` told: the branch HEAD points at ("" if not said) and ref → commit
    (annotated tags peeled to the commit they name)."""

    head: str
    refs: dict[str, str]


def list_remote_refs(url: str, *, patterns: Sequence[str], auth: GitAuth | None) -> RemoteRefs:
    """The refs at `url` matching `patterns` (ls-remote's tail patterns, e.g. `HEAD`, `refs/tags/*`).

    The patterns are the caller's own or checked (`git_names.validate_ref`); they follow `--`
    and the URL, so none is read as an option.
    """
    raw = _run_bounded(
        [
            settings.KILN_GIT_BINARY,
            "ls-remote",
            "--symref",
            *_local_service(url, "upload-pack"),
            "--",
            url,
            *patterns,
        ],
        env=git_env(url=url, auth=auth),
        secrets=(auth.token,) if auth else (),
        max_output=MAX_LISTING_BYTES,
    )
    head, refs, peeled = "", {}, {}
    for line in raw.decode("utf-8", "replace").splitlines():
        left, _, name = line.partition("\t")
        if left.startswith("ref: ") and name == "HEAD":
            head = left[5:].strip()
        elif re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", left) and name:
            if name.endswith("^{}"):
                peeled[name[:-3]] = left
            else:
                refs[name] = left
    refs.update({name: sha for name, sha in peeled.items() if name in refs})
    return RemoteRefs(head=head, refs=refs)


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # git renamed or removed a temporary file meanwhile
                continue
    return total


def fetch_ref(git_dir: Path, *, url: str, ref: str, auth: GitAuth | None, max_bytes: int) -> str:
    """Fetch the one ref `ref` (a full name: `refs/tags/v1`, `refs/heads/main`) at depth 1 into the
    scratch repository `git_dir` (see `init_scratch`) as `refs/kiln/fetched`; returns its commit.

    git is stopped when the repository grows past `max_bytes` (`fetch_too_large`): a remote cannot
    fill the disk with a version Kiln would refuse anyway.
    """

    def watch() -> None:
        if _folder_bytes(git_dir / "objects") > max_bytes:
            raise GitFailed(
                f"The repository sent more than {max_bytes} bytes for one version.",
                code="fetch_too_large",
                extra={"limit": max_bytes},
            )

    _run_bounded(
        [
            settings.KILN_GIT_BINARY,
            f"--git-dir={git_dir}",
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            "--depth=1",
            *_local_service(url, "upload-pack"),
            "--",
            url,
            f"+{ref}:refs/kiln/fetched",
        ],
        env=git_env(url=url, auth=auth),
        secrets=(auth.token,) if auth else (),
        max_output=MAX_LISTING_BYTES,
        watch=watch,
    )
    watch()  # what landed after the last look
    return _run(
        [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "rev-parse", "--verify", "refs/kiln/fetched^{commit}"],
        env=git_env(),
        secrets=(),
    ).strip()


def object_type(git_dir: Path, name: str) -> str | None:
    """`commit`, `tree`, `blob`... for an object name such as `<commit>:<path>`; None when absent."""
    proc = subprocess.run(
        [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "cat-file", "-t", name],
        env={**os.environ, **git_env()},
        capture_output=True,
        timeout=settings.KILN_GIT_TIMEOUT,
        check=False,
    )
    return (proc.stdout.decode().strip() or None) if proc.returncode == 0 else None


@dataclass(frozen=True)
class TreeItem:
    path: str
    mode: int
    oid: str
    size: int  # -1 for a submodule (gitlink)


def tree_items(git_dir: Path, treeish: str, *, max_bytes: int) -> list[TreeItem]:
    """Every entry below `treeish` (`<commit>` or `<commit>:<folder>`), recursively, with sizes;
    `tree_too_large` when the listing itself is over `max_bytes`."""
    try:
        raw = _run_bounded(
            [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "ls-tree", "-r", "-l", "-z", treeish],
            env=git_env(),
            secrets=(),
            max_output=max_bytes,
        )
    except GitFailed as exc:
        if exc.code == "git_output_too_large":
            raise GitFailed("The tree is too large to list.", code="tree_too_large", extra=exc.extra) from None
        raise
    items = []
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, _kind, oid, size = meta.decode().split()
        path = raw_path.decode("utf-8", "surrogateescape")
        items.append(TreeItem(path, int(mode, 8), oid, -1 if size == "-" else int(size)))
    return items


def stream_blobs(git_dir: Path, oids: Iterable[str]) -> Iterator[bytes]:
    """The contents of blobs already in `git_dir`, one at a time, in order (one `git cat-file
    --batch`, asked one object at a time, so only one blob is in memory)."""
    proc = subprocess.Popen(
        [settings.KILN_GIT_BINARY, f"--git-dir={git_dir}", "cat-file", "--batch"],
        env={**os.environ, **git_env()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for oid in oids:
            proc.stdin.write(f"{oid}\n".encode())
            proc.stdin.flush()
            header = proc.stdout.readline().decode().split()
            if len(header) != 3 or header[1] != "blob":
                raise GitFailed(
                    f"The object {oid[:12]} is not a blob in the fetched repository.", code="git_read_failed"
                )
            size = int(header[2])
            data = proc.stdout.read(size)
            proc.stdout.read(1)  # the newline after each object
            if len(data) != size:
                raise GitFailed(f"Reading the object {oid[:12]} failed.", code="git_read_failed")
            yield data
        proc.stdin.close()
        proc.wait(timeout=settings.KILN_GIT_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
