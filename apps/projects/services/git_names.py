"""Validation of everything user-supplied that git or a provider will see.

Nothing a client sends becomes a git option or protocol: names and branches are held
to conservative patterns (a subset of GitHub's and `git check-ref-format`'s rules) and
remote URLs to plain `https://host/path` (plus `http://` and `file://` only where the
settings allow them), with no credentials, no `ext::`-style transports and no leading
dashes anywhere.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from django.conf import settings

from core.exceptions import ValidationFailed
from core.netguard import check_url

REPO_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
NAMESPACE_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$")
URL_PATH_RE = re.compile(r"^/[A-Za-z0-9._~/%+-]*$")
# git's transport-helper syntax `<transport>::<address>` (`ext::sh -c ...`, `fd::17`): a
# helper name before the first `::`, with no `://` ahead of it. IPv6 literals such as
# `https://[::1]/x.git` hold `::` too, inside the host, and are judged as addresses.
TRANSPORT_HELPER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+.-]*::")
BRANCH_PREFIX = "refs/heads/"
VISIBILITIES = ("private", "public", "internal")


def _invalid(code: str, field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, extra={"fields": {field: [message]}})


def validate_repo_name(name: str, *, field: str = "repository.name") -> str:
    if (
        not isinstance(name, str)
        or not REPO_NAME_RE.match(name)
        or name.lower().endswith(".git")
        or name in {".", ".."}
    ):
        raise _invalid(
            "invalid_repo_name",
            field,
            "Repository names use letters, digits, '.', '_' and '-' (at most 100), must not start with '.' or '-' "
            "and must not end in '.git'.",
        )
    return name


def validate_owner(owner: str, *, field: str = "repository.owner") -> str:
    if not isinstance(owner, str) or not OWNER_RE.match(owner):
        raise _invalid("invalid_owner", field, "Organisation names use letters, digits and '-' (at most 39).")
    return owner


def validate_namespace(namespace: str, *, field: str = "repository.namespace") -> str:
    segments = namespace.split("/") if isinstance(namespace, str) else []
    if not segments or len(segments) > 20 or not all(NAMESPACE_SEGMENT_RE.match(s) and ".." not in s for s in segments):
        raise _invalid(
            "invalid_namespace",
            field,
            "Namespaces are group paths like 'acme' or 'acme/platform/tools' (letters, digits, '.', '_', '-').",
        )
    return namespace


def _short_ref_ok(name: object) -> bool:
    """A branch or tag name below `refs/heads/` or `refs/tags/` (a subset of `git check-ref-format`)."""
    return (
        isinstance(name, str)
        and BRANCH_RE.match(name) is not None
        and ".." not in name
        and "//" not in name
        and "@{" not in name
        and not name.endswith(("/", ".", ".lock"))
        and name != "HEAD"
        and not any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))
    )


def validate_branch(branch: str, *, field: str = "branch") -> str:
    """A branch's short name, checked; `refs/heads/x` is normalised to `x`.

    Kiln pushes to `refs/heads/<branch>`, so a full ref name would become
    `refs/heads/refs/heads/x`; any other name under `refs/` (tags, remotes, ...) is refused.
    """
    if isinstance(branch, str) and branch.startswith(BRANCH_PREFIX):
        branch = branch[len(BRANCH_PREFIX) :]
    if isinstance(branch, str) and (branch == "refs" or branch.startswith("refs/")):
        raise _invalid(
            "invalid_branch_name",
            field,
            "Give the branch's short name (e.g. 'main'); names under 'refs/' other than 'refs/heads/<name>' "
            "are not branches.",
        )
    if not _short_ref_ok(branch):
        raise _invalid(
            "invalid_branch_name",
            field,
            "Branch names use letters, digits, '.', '_', '-' and '/' segments; no '..', '@{', leading '.' or '-', "
            "trailing '/', '.lock' or the name HEAD.",
        )
    return branch


REF_PREFIXES = ("refs/heads/", "refs/tags/")


def validate_ref(ref: str, *, field: str = "ref") -> str:
    """A ref to read from a remote: a branch or tag's short name, or `refs/heads/<name>` /
    `refs/tags/<name>`; the name is held to the branch rules (no '..', no leading '-' or '.',
    no '@{', no option or pattern characters), so nothing here reaches git as an option."""
    prefix = next((p for p in REF_PREFIXES if isinstance(ref, str) and ref.startswith(p)), "")
    name: str | None = ref[len(prefix) :] if prefix else ref
    if isinstance(ref, str) and not prefix and (ref == "refs" or ref.startswith("refs/")):
        name = None  # refs/remotes/..., refs/pull/..., refs/../...: not a branch or a tag
    if not _short_ref_ok(name):
        raise _invalid(
            "invalid_ref",
            field,
            "A ref is a branch or tag name (letters, digits, '.', '_', '-' and '/' segments; no '..', '@{', "
            "leading '.' or '-', trailing '/' or '.lock'), optionally as refs/heads/<name> or refs/tags/<name>.",
        )
    return ref


def validate_visibility(value: str, *, field: str = "repository.visibility") -> str:
    if value not in VISIBILITIES:
        raise _invalid("validation_error", field, f"Visibility is one of {', '.join(VISIBILITIES)}.")
    return value


def validate_topics(topics: object, *, field: str = "repository.topics") -> list[str]:
    topic_re = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
    if (
        not isinstance(topics, list)
        or len(topics) > 20
        or not all(isinstance(t, str) and topic_re.match(t) for t in topics)
    ):
        raise _invalid("validation_error", field, "Topics are up to 20 lowercase words of letters, digits and '-'.")
    return list(topics)


# The settings that allow the schemes Kiln refuses by default; a refusal names the way out.
SCHEME_SETTINGS = {
    "file": "KILN_ALLOW_FILE_REMOTES",  # file:// reads the server's own disk: trusted administrators only
    "http": "KILN_ALLOW_PRIVATE_NETWORKS",  # plain http goes with private and loopback addresses
}


def _scheme_refused(scheme: str, allowed: set[str]) -> str:
    message = f"Only {', '.join(sorted(allowed))} remote URLs are allowed here."
    setting = SCHEME_SETTINGS.get(scheme)
    if setting:
        message += f" {scheme}:// remotes are off on this Kiln; an administrator can allow them with {setting}=1."
    return message


def validate_remote_url(url: str, *, field: str = "remote_url") -> str:
    """A clean push URL: https (http/file only where settings allow), no credentials or options."""
    if not isinstance(url, str) or len(url) > 2000 or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise _invalid("remote_url_not_allowed", field, "The remote URL must be a plain URL without spaces.")
    if TRANSPORT_HELPER_RE.match(url) or url.startswith("-"):
        raise _invalid("remote_url_not_allowed", field, "Git transport helpers ('ext::', 'fd::') are not allowed.")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced '[' in the host
        raise _invalid("remote_url_not_allowed", field, "The remote URL is malformed.") from exc
    allowed = {"https"}
    if settings.KILN_ALLOW_PRIVATE_NETWORKS:
        allowed.add("http")
    if settings.KILN_ALLOW_FILE_REMOTES:
        allowed.add("file")
    if parts.scheme not in allowed:
        raise _invalid("remote_url_not_allowed", field, _scheme_refused(parts.scheme, allowed))
    if parts.query or parts.fragment:
        raise _invalid("remote_url_not_allowed", field, "The remote URL must not have a query or fragment.")
    # git percent-decodes the path (`%2e%2e` is `..`, `%2f` is `/`): judge the decoded path
    path = unquote(parts.path, errors="surrogateescape") if "%" in parts.path else parts.path
    if path != parts.path and any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise _invalid("remote_url_not_allowed", field, "The remote URL path has characters that are not allowed.")
    if parts.scheme == "file":
        if parts.netloc or not path.startswith("/") or ".." in path.split("/"):
            raise _invalid("remote_url_not_allowed", field, "file:// remotes need an absolute path without '..'.")
        return url
    if parts.username or parts.password or "@" in parts.netloc:
        raise _invalid(
            "remote_url_not_allowed", field, "Credentials in URLs are not allowed; use a connection's token."
        )
    if not parts.hostname or parts.hostname.startswith("-"):
        raise _invalid("remote_url_not_allowed", field, "The remote URL needs a host.")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise _invalid("remote_url_not_allowed", field, "The remote URL has an invalid port.") from exc
    if not URL_PATH_RE.match(parts.path or "/") or ".." in path.split("/") or "/-" in path:
        raise _invalid("remote_url_not_allowed", field, "The remote URL path has characters that are not allowed.")
    return url


def check_git_url(url: str, *, field: str = "remote_url") -> str:
    """The rules for any URL git will talk to on a user's behalf (git exports, git template
    sources): `validate_remote_url`, then the private-network guard for every scheme but the
    `file://` an administrator allowed. Raises ValidationFailed (`remote_url_not_allowed`,
    `remote_host_not_allowed`) naming `field`."""
    validate_remote_url(url, field=field)
    if urlsplit(url).scheme != "file":
        check_url(url, field=field)
    return url


def validate_base_url(url: str, *, field: str = "base_url") -> str:
    """A provider API root: https (http where private networks are allowed), no credentials."""
    if not isinstance(url, str) or len(url) > 500 or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise _invalid("invalid_base_url", field, "The base URL must be a plain URL.")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced '[' in the host
        raise _invalid("invalid_base_url", field, "The base URL is malformed.") from exc
    allowed = {"https", "http"} if settings.KILN_ALLOW_PRIVATE_NETWORKS else {"https"}
    if parts.scheme not in allowed or not parts.hostname:
        raise _invalid("invalid_base_url", field, f"The base URL must be an {' or '.join(sorted(allowed))} URL.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise _invalid("invalid_base_url", field, "The base URL must not hold credentials, a query or a fragment.")
    try:
        parts.port  # noqa: B018
    except ValueError as exc:
        raise _invalid("invalid_base_url", field, "The base URL has an invalid port.") from exc
    return url.rstrip("/")
