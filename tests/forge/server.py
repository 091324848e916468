"""`LocalForge`: a real HTTP server on 127.0.0.1 that plays GitHub or GitLab.

It serves the REST subset Kiln's exporter uses (see `github_api.py` / `gitlab_api.py`)
and git smart-HTTP through `git http-backend` (`git_http.py`) in front of real bare
repositories under `root`. Because it is plain HTTP on a loopback port, a client in
another process (a Celery worker) can use it exactly like the test process can.

State lives in memory under one RLock; each request runs on its own daemon thread.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import selectors
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.forge import git_http, github_api, github_pulls, gitlab_api, gitlab_merge_requests, reviews
from tests.forge.model import (
    FORGE_IDENT,
    Delay,
    Fault,
    Namespace,
    Recorded,
    Repo,
    Request,
    Response,
    User,
    fast_import_commit,
    read_refs,
    run_git,
    text_response,
    utcnow,
)

FLAVORS = ("github", "gitlab")
# Modules that add routes to the GitHub / GitLab routers when imported.
ROUTE_MODULES = (github_pulls, gitlab_merge_requests)
GIT_USERNAMES = {"github": "x-access-token", "gitlab": "oauth2"}


class LocalForge:
    """A local GitHub or GitLab. Use as a context manager or call `start()` / `stop()`."""

    def __init__(self, flavor: str, root: Path | str) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
        self.flavor = flavor
        self.root = Path(root)
        self.git_root = self.root / "repositories"
        self.home = self.root / "home"
        self.git_root.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self._api = github_api if flavor == "github" else gitlab_api
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._users: dict[str, User] = {}
        self._tokens: dict[str, str] = {}
        self._namespaces: dict[str, Namespace] = {}
        self._repos: dict[int, Repo] = {}
        self._faults: list[Fault] = []
        self._delays: list[Delay] = []
        self._usage: dict[str, int] = {}
        self._request_seq = itertools.count(1)
        #: API requests, in arrival order.
        self.requests: list[Recorded] = []
        #: git smart-HTTP requests: (status, method, path?query, basic-auth username or None).
        self.git_requests: list[tuple[int, str, str, str | None]] = []
        #: Tracebacks of exceptions inside the forge (a fixture bug, not a client error).
        self.errors: list[str] = []
        #: How many request bodies arrived with Transfer-Encoding: chunked.
        self.chunked_requests = 0
        #: GitHub flavour: where to follow the docs strictly or which documented variant to play.
        self.github_knobs = github_api.Knobs()
        #: GitLab flavour: the same, for GitLab's documented behaviours (see `gitlab_api.Knobs`).
        self.gitlab_knobs = gitlab_api.Knobs()
        self.started_at = time.time()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalForge:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server(self)
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name=f"LocalForge-{self.flavor}-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        assert self._wake_w is not None and self._wake_r is not None
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if thread is not None:
            thread.join(timeout=5)
        httpd.close_connections()
        httpd.server_close()
        self._wake_r.close()
        self._wake_w.close()
        self._httpd = self._thread = None

    def __enter__(self) -> LocalForge:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._httpd is not None and self._wake_r is not None
        httpd = self._httpd
        with selectors.DefaultSelector() as selector:
            selector.register(httpd, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is httpd and not self._stopping.is_set():
                        httpd._handle_request_noblock()  # type: ignore[attr-defined]  # serve_forever's step

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the forge is not started")
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """PyGithub's `base_url=` (GitHub) or python-gitlab's `url=` (GitLab)."""
        return f"{self.base_url}/api/v3" if self.flavor == "github" else self.base_url

    @property
    def git_username(self) -> str:
        return GIT_USERNAMES[self.flavor]

    def clone_url(self, full_name: str) -> str:
        return f"{self.base_url}/{full_name}.git"

    def git_auth_env(self, token: str, username: str | None = None) -> dict[str, str]:
        """`GIT_CONFIG_*` variables that send Basic auth to this forge only (no URL, no disk)."""
        import base64

        basic = base64.b64encode(f"{username or self.git_username}:{token}".encode()).decode()
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"http.{self.base_url}/.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }

    # ------------------------------------------------------------------ setup API

    def add_user(
        self, login: str, token: str | None = None, *, name: str | None = None, email: str | None = None
    ) -> User:
        with self._lock:
            key = login.lower()
            if key in self._users:
                user = self._users[key]
            else:
                if key in self._namespaces:
                    raise ValueError(f"namespace {login!r} already exists")
                uid = next(self._ids)
                ns_id = uid if self.flavor == "github" else next(self._ids)
                now = utcnow()
                user = User(uid, login, name or login, email or f"{login}@users.forge.invalid", now, ns_id)
                self._users[key] = user
                self._namespaces[key] = Namespace(ns_id, login, user.name, "user", None, {key}, "public", now)
            if token is not None:
                self._tokens[token] = key
            return user

    def add_token(self, login: str, token: str) -> None:
        with self._lock:
            if login.lower() not in self._users:
                raise KeyError(login)
            self._tokens[token] = login.lower()

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def add_org(
        self, login: str, members: Iterable[str] = (), *, name: str | None = None, description: str = ""
    ) -> Namespace:
        """A GitHub organisation (GitHub flavour only)."""
        if self.flavor != "github":
            raise ValueError("add_org is for the github flavour; use add_group for gitlab")
        if "/" in login:
            raise ValueError("organisation logins have no '/'")
        return self._add_namespace(login, "org", members, name=name, visibility="public", description=description)

    def add_group(
        self, full_path: str, members: Iterable[str] = (), *, name: str | None = None, visibility: str = "private"
    ) -> Namespace:
        """A GitLab group; parents of a nested path (`acme/platform/tools`) are created as needed."""
        if self.flavor != "gitlab":
            raise ValueError("add_group is for the gitlab flavour; use add_org for github")
        parts = full_path.strip("/").split("/")
        with self._lock:
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent.lower() not in self._namespaces:
                    self._add_namespace(parent, "group", (), name=None, visibility=visibility)
            return self._add_namespace("/".join(parts), "group", members, name=name, visibility=visibility)

    def _add_namespace(
        self,
        full_path: str,
        kind: str,
        members: Iterable[str],
        *,
        name: str | None,
        visibility: str,
        description: str = "",
    ) -> Namespace:
        with self._lock:
            key = full_path.lower()
            logins = {m.lower() for m in members}
            for login in logins:
                if login not in self._users:
                    raise KeyError(f"unknown user {login!r}: add_user first")
            existing = self._namespaces.get(key)
            if existing is not None:
                if existing.kind != kind:
                    raise ValueError(f"{full_path!r} already exists as a {existing.kind}")
                existing.members |= logins
                return existing
            parent = self._namespaces.get(key.rsplit("/", 1)[0]) if "/" in key else None
            ns = Namespace(
                id=next(self._ids),
                full_path=full_path,
                name=name or full_path.rsplit("/", 1)[-1],
                kind=kind,
                parent_id=parent.id if parent else None,
                members=logins,
                visibility=visibility,
                created_at=utcnow(),
                description=description,
            )
            self._namespaces[key] = ns
            return ns

    def create_repo_directly(
        self,
        full_name: str,
        owner_login: str,
        description: str | None = None,
        kiln_marker: str | None = None,
        *,
        private: bool = False,
        topics: Iterable[str] = (),
        seed: bool = False,
    ) -> Repo:
        """A pre-existing ("foreign") repository, made without an API call.

        `full_name` is `<namespace>/<name>`; `owner_login` is the user who created it. A
        `kiln_marker` is appended to the description (that is where an export marker would
        live); `seed=True` gives it an initial commit so it is not empty.
        """
        ns_path, _, name = full_name.rpartition("/")
        with self._lock:
            ns = self._namespaces.get(ns_path.lower())
            if ns is None:
                raise KeyError(f"no user, organisation or group {ns_path!r}")
            if owner_login.lower() not in self._users:
                raise KeyError(f"unknown user {owner_login!r}")
            if self.find_repo(full_name) is not None:
                raise ValueError(f"{full_name} already exists")
            text = " ".join(part for part in (description, kiln_marker) if part) or None
            repo = self.create_repo(
                ns,
                name=name,
                path=name,
                creator=owner_login.lower(),
                description=text,
                visibility="private" if private else "public",
                default_branch="main" if self.flavor == "github" else None,
                params={},
            )
            repo.kiln_marker = kiln_marker
            repo.topics = list(topics)
        if seed:
            self.seed_commit(repo.full_name)
        return repo

    def seed_commit(
        self,
        full_name: str,
        branch: str = "main",
        files: dict[str, bytes | str] | None = None,
        message: str = "Initial commit",
    ) -> str:
        """Commit `files` (default: a README) onto `branch` of the bare repo; returns the sha."""
        repo = self._require_repo(full_name)
        content = {k: v.encode() if isinstance(v, str) else v for k, v in (files or {}).items()}
        if not content:
            content = {"README.md": f"# {repo.name}\n".encode()}
        parent = self.refs(full_name).get(f"refs/heads/{branch}")
        sha = fast_import_commit(
            repo.bare_path, self.home, branch=branch, files=content, message=message, parent=parent, when=utcnow()
        )
        self.after_push(repo)
        return sha

    def tag(self, full_name: str, name: str, sha: str | None = None, *, message: str | None = None) -> str:
        """Tag `sha` (default: the head of the default branch) as `name`, lightweight or, with a
        `message`, annotated (a tag object, which ls-remote peels with `^{}`); returns the commit."""
        repo = self._require_repo(full_name)
        target = sha or self.refs(full_name)[f"refs/heads/{repo.default_branch or 'main'}"]
        args = ["tag", name, target]
        if message is not None:
            name_part, _, mail = FORGE_IDENT.partition(" <")
            ident = ["-c", f"user.name={name_part}", "-c", f"user.email={mail.rstrip('>')}"]
            args = [*ident, "tag", "-a", "-m", message, name, target]
        run_git(args, home=self.home, git_dir=repo.bare_path)
        return target

    # ------------------------------------------------------------------ fault injection

    def inject(
        self,
        method: str | None,
        path_regex: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        *,
        run_handler: bool = False,
    ) -> Fault:
        """Answer the next `times` matching requests (None: all) with `status`/`body`/`headers`.

        Matched with `re.search` on the raw path (no query) before any routing or auth, for
        API and git paths alike. `body`: dict/list → JSON, str → text/plain, None → the
        flavour's empty body. With `run_handler=True` the request is still carried out (a
        repository really gets created) and only the answer is replaced: the "ambiguous
        outcome" of a 502 or timeout after the server did the work.
        """
        fault = Fault(
            method=method.upper() if method and method != "*" else None,
            pattern=re.compile(path_regex),
            status=status,
            body=body,
            headers=dict(headers or {}),
            times=times,
            run_handler=run_handler,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def delay(self, method: str | None, path_regex: str, seconds: float, times: int | None = 1) -> Delay:
        """Hold the next `times` matching requests for `seconds` before handling them normally."""
        entry = Delay(method.upper() if method and method != "*" else None, re.compile(path_regex), seconds, times)
        with self._lock:
            self._delays.append(entry)
        return entry

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def _take(self, entries: list[Any], method: str, path: str) -> Any:
        with self._lock:
            for entry in entries:
                if entry.method not in (None, method) or not entry.pattern.search(path):
                    continue
                if entry.times is not None and entry.hits >= entry.times:
                    continue
                entry.hits += 1
                return entry
        return None

    # ------------------------------------------------------------------ inspection

    @property
    def repos(self) -> dict[str, Repo]:
        """Snapshot: full name → repository, for everything that currently exists."""
        with self._lock:
            return {repo.full_name: repo for repo in self._repos.values()}

    def find_requests(self, method: str | None = None, path_regex: str | None = None) -> list[Recorded]:
        pattern = re.compile(path_regex) if path_regex else None
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (pattern is None or pattern.search(r.path))
            ]

    def changes(self, full_name: str) -> list[reviews.Change]:
        """The pull requests (GitHub) or merge requests (GitLab) of a repository, oldest first."""
        with self._lock:
            return list(self._require_repo(full_name).changes)

    def merge_change(self, full_name: str, number: int, *, by: str = "alice") -> str:
        """Merge pull/merge request `number` as a reviewer would; returns the merge commit sha."""
        repo = self._require_repo(full_name)
        change = reviews.find(repo, number)
        if change is None:
            raise KeyError(f"{full_name} has no change {number}")
        return reviews.merge(self, change, by=by)

    def repo_path(self, full_name: str) -> Path:
        return self._require_repo(full_name).bare_path

    def refs(self, full_name: str) -> dict[str, str]:
        """`{refname: sha}` straight from the bare repository (`git for-each-ref`)."""
        return read_refs(self.repo_path(full_name), self.home)

    # ------------------------------------------------------------------ state used by the API layers

    @property
    def lock(self) -> threading.RLock:
        """Held by the API layers around check-then-create sequences."""
        return self._lock

    def user_for_token(self, token: str | None) -> User | None:
        if not token:
            return None
        with self._lock:
            login = self._tokens.get(token)
            return self._users.get(login) if login else None

    def user(self, login: str) -> User | None:
        with self._lock:
            return self._users.get(login.lower())

    def namespace_by_path(self, full_path: str) -> Namespace | None:
        with self._lock:
            return self._namespaces.get(full_path.strip("/").lower())

    def namespace_by_id(self, ident: int) -> Namespace | None:
        with self._lock:
            return next((ns for ns in self._namespaces.values() if ns.id == ident), None)

    def namespaces(self) -> list[Namespace]:
        with self._lock:
            return sorted(self._namespaces.values(), key=lambda ns: ns.id)

    def user_namespace(self, user: User) -> Namespace:
        with self._lock:
            return self._namespaces[user.login.lower()]

    def owner_user(self, ns: Namespace) -> User | None:
        return self.user(ns.full_path) if ns.kind == "user" else None

    def is_member(self, user: User | None, ns: Namespace) -> bool:
        """Direct or inherited (parent group) membership; a user is a member of their own namespace."""
        if user is None:
            return False
        login = user.login.lower()
        with self._lock:
            current: Namespace | None = ns
            while current is not None:
                if login in current.members:
                    return True
                current = self._namespaces.get(current.parent_path.lower()) if current.parent_path else None
            return False

    def belongs_to(self, user: User | None, ns: Namespace) -> bool:
        """Member of `ns` (directly or inherited) or of a group below it (which makes `ns` visible)."""
        if self.is_member(user, ns):
            return True
        if user is None:
            return False
        with self._lock:
            prefix = ns.full_path.lower() + "/"
            return any(
                other.full_path.lower().startswith(prefix) and user.login.lower() in other.members
                for other in self._namespaces.values()
            )

    def can_see_namespace(self, user: User | None, ns: Namespace) -> bool:
        if ns.kind != "group" or ns.visibility == "public":
            return True
        if ns.visibility == "internal" and user is not None:
            return True
        return self.belongs_to(user, ns)

    def can_read(self, user: User | None, repo: Repo) -> bool:
        if repo.visibility == "public":
            return True
        if repo.visibility == "internal" and user is not None:
            return True
        return self.can_write(user, repo)

    def can_write(self, user: User | None, repo: Repo) -> bool:
        if user is None:
            return False
        return self.is_member(user, repo.namespace) or repo.creator == user.login.lower()

    def find_repo(self, full_name: str) -> Repo | None:
        key = full_name.strip("/").lower()
        with self._lock:
            return next((r for r in self._repos.values() if r.full_name.lower() == key), None)

    def repo_by_id(self, ident: int) -> Repo | None:
        with self._lock:
            return self._repos.get(ident)

    def repos_in(self, ns: Namespace) -> list[Repo]:
        with self._lock:
            return sorted((r for r in self._repos.values() if r.namespace is ns), key=lambda r: r.id)

    def _require_repo(self, full_name: str) -> Repo:
        repo = self.find_repo(full_name)
        if repo is None:
            raise KeyError(f"no repository {full_name!r}")
        return repo

    def create_repo(
        self,
        ns: Namespace,
        *,
        name: str,
        path: str,
        creator: str,
        description: str | None,
        visibility: str,
        default_branch: str | None,
        params: dict[str, Any],
    ) -> Repo:
        """Record the repository and `git init --bare` it (callers check clashes first)."""
        with self._lock:
            now = utcnow()
            bare = self.git_root / f"{ns.full_path}/{path}.git"
            if bare.exists():
                shutil.rmtree(bare)
            bare.parent.mkdir(parents=True, exist_ok=True)
            run_git(
                ["init", "--quiet", "--bare", "--initial-branch", default_branch or "main", str(bare)], home=self.home
            )
            repo = Repo(
                id=next(self._ids),
                namespace=ns,
                name=name,
                path=path,
                description=description,
                visibility=visibility,
                creator=creator,
                created_at=now,
                updated_at=now,
                pushed_at=now,
                default_branch=default_branch,
                bare_path=bare,
                create_params=dict(params),
            )
            self._repos[repo.id] = repo
            return repo

    def delete_repo(self, repo: Repo) -> None:
        with self._lock:
            self._repos.pop(repo.id, None)
            shutil.rmtree(repo.bare_path, ignore_errors=True)

    def rename_repo(self, repo: Repo, name: str, path: str) -> None:
        with self._lock:
            target = self.git_root / f"{repo.namespace.full_path}/{path}.git"
            if target != repo.bare_path:
                repo.bare_path.rename(target)
                repo.bare_path = target
            repo.name, repo.path = name, path
            repo.updated_at = utcnow()

    def heads(self, repo: Repo) -> dict[str, str]:
        refs = read_refs(repo.bare_path, self.home)
        return {ref[len("refs/heads/") :]: sha for ref, sha in refs.items() if ref.startswith("refs/heads/")}

    def sync_default_branch(self, repo: Repo) -> dict[str, str]:
        """Make the default branch follow what was pushed, as both forges do; returns the heads.

        An empty repo keeps its setting (GitHub: "main"; GitLab: none). Once branches
        exist and the configured one is not among them, the default becomes `main`, else
        `master`, else the first branch by name; the bare repo's HEAD follows.
        """
        heads = self.heads(repo)
        with self._lock:
            follow = self.flavor != "gitlab" or self.gitlab_knobs.first_push_sets_default
            if follow and heads and repo.default_branch not in heads:
                pick = "main" if "main" in heads else "master" if "master" in heads else sorted(heads)[0]
                self.set_default_branch(repo, pick)
        return heads

    def set_default_branch(self, repo: Repo, branch: str) -> None:
        with self._lock:
            repo.default_branch = branch
            run_git(["symbolic-ref", "HEAD", f"refs/heads/{branch}"], home=self.home, git_dir=repo.bare_path)

    def after_push(self, repo: Repo) -> None:
        self.sync_default_branch(repo)
        with self._lock:
            repo.pushed_at = utcnow()

    def new_id(self) -> int:
        """A fresh forge-wide id (users, namespaces, repositories, merge requests share one sequence)."""
        with self._lock:
            return next(self._ids)

    def count_request(self, key: str) -> int:
        """Rate-limit bookkeeping: one more request for `key` (a login or "anonymous")."""
        with self._lock:
            self._usage[key] = self._usage.get(key, 0) + 1
            return self._usage[key]

    def usage(self, key: str) -> int:
        with self._lock:
            return self._usage.get(key, 0)

    # ------------------------------------------------------------------ request handling

    def _handle(self, handler: _Handler) -> None:
        method = handler.command.upper()
        target = urlsplit(handler.path)
        path, query_string = target.path or "/", target.query
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            body, chunked = _read_body(handler)
        except ValueError as exc:
            handler.close_connection = True
            self._write(handler, method, text_response(400, f"Bad request body: {exc}\n"))
            return
        if chunked:
            with self._lock:
                self.chunked_requests += 1
        req = Request(method, path, parse_qs(query_string, keep_blank_values=True), headers, body, query_string)
        is_git = git_http.is_git_path(path)

        delay = self._take(self._delays, method, path)
        if delay is not None:
            self._stopping.wait(delay.seconds)
            if self._stopping.is_set():
                handler.close_connection = True
                return

        fault = self._take(self._faults, method, path)
        resp: Response | None = None
        git_user = git_http.basic_username(headers.get("authorization"))
        if fault is None or fault.run_handler:
            try:
                resp = git_http.handle(self, req) if is_git else self._api.handle(self, req)
            except Exception:
                tb = traceback.format_exc()
                with self._lock:
                    self.errors.append(tb)
                resp = text_response(500, "local forge error\n")
        if fault is not None:
            resp = self._fault_response(fault, req, is_git)
        assert resp is not None

        if is_git:
            display = path + (f"?{query_string}" if query_string else "")
            with self._lock:
                self.git_requests.append((resp.status, method, display, git_user))
        else:
            recorded = Recorded(
                method=method,
                path=path,
                query=req.flat_query,
                headers=headers,
                json=_parse_request_body(headers, body),
                status=resp.status,
                response=resp.payload,
            )
            with self._lock:
                self.requests.append(recorded)
        self._write(handler, method, resp)

    def _fault_response(self, fault: Fault, req: Request, is_git: bool) -> Response:
        headers = list(fault.headers.items())
        if isinstance(fault.body, dict | list):
            body = json.dumps(fault.body).encode()
            ctype = self._api.CONTENT_TYPE
            payload: Any = fault.body
        elif isinstance(fault.body, str):
            body, ctype, payload = fault.body.encode(), "text/plain; charset=utf-8", fault.body
        elif isinstance(fault.body, bytes):
            body, ctype, payload = fault.body, "application/octet-stream", fault.body
        else:
            body, ctype, payload = b"", self._api.CONTENT_TYPE, None
        resp = Response(fault.status, body, headers, payload)
        resp.add_default("Content-Type", ctype)
        if not is_git:
            self._api.decorate(self, req, resp, None)
        return resp

    def _write(self, handler: _Handler, method: str, resp: Response) -> None:
        try:
            handler.send_response(resp.status)
            for name, value in resp.headers:
                if name.lower() != "content-length":
                    handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(resp.body)))
            handler.end_headers()
            if method != "HEAD" and resp.body:
                handler.wfile.write(resp.body)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            handler.close_connection = True


def _read_body(handler: BaseHTTPRequestHandler) -> tuple[bytes, bool]:
    """The request body; chunked bodies are de-chunked here (http.server does not)."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        while True:
            line = handler.rfile.readline(65537)
            if not line:
                raise ValueError("truncated chunked body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ValueError("bad chunk size") from None
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks), True
            chunk = handler.rfile.read(size)
            if len(chunk) != size:
                raise ValueError("truncated chunk")
            chunks.append(chunk)
            handler.rfile.readline(3)
    length = handler.headers.get("Content-Length")
    if not length:
        return b"", False
    try:
        size = int(length)
    except ValueError:
        raise ValueError("bad Content-Length") from None
    data = handler.rfile.read(size) if size > 0 else b""
    if len(data) != size:
        raise ValueError("truncated body")
    return data, False


def _parse_request_body(headers: dict[str, str], body: bytes) -> Any:
    if not body:
        return None
    ctype = headers.get("content-type", "").lower()
    if "application/x-www-form-urlencoded" in ctype:
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: (v[0] if len(v) == 1 else v) for k, v in form.items()}
    try:
        return json.loads(body)
    except ValueError:
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120
    server: _Server

    def version_string(self) -> str:
        return self.server.forge._api.SERVER_HEADER

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        self.server.forge._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, forge: LocalForge) -> None:
        self.forge = forge
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host name (a DNS lookup); not needed.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop idle keep-alive connections so their handler threads end with the forge."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
