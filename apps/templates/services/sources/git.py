"""`git`: templates registered from a git repository, one version per version tag.

A repository's versions are its tags that read as versions: PEP 440 with or without a `v`
prefix (`v1.0.0`, `1.1.0`, `2.0.0rc1`), ordered as Copier orders them (`packaging.version`),
labelled by the tag's own name (what Copier records as `_commit`). A repository without such
a tag has one version: the head of `ref` (the default branch when no ref is given), labelled by
its short commit. Kiln keeps the newest KILN_GIT_SOURCE_MAX_VERSIONS of them.

Nothing is cloned. The refs are listed (`git ls-remote`), then each version is fetched on its
own at depth 1 into a per-job scratch repository (no other ref, no tags, no submodules) and the
`subdirectory` folder of its tree is written out blob by blob, within the upload limits (files,
bytes, file size; the fetched pack is bounded too), for the catalog to record with its commit.
The URL and ref follow the rules of git exports (`git_names.check_git_url`, `validate_ref`),
checked before git runs; a private repository is read with a provider connection's token, sent
as an HTTP header through git's environment (never in a URL, a log or `.git/config`).
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from packaging.version import InvalidVersion, Version

from apps.projects.models import ProviderConnection
from apps.projects.services.git_names import check_git_url, validate_ref
from apps.projects.services.gitops import (
    GIT_MODE_GITLINK,
    GIT_MODE_SYMLINK,
    GitAuth,
    GitFailed,
    TreeItem,
    fetch_ref,
    init_scratch,
    list_remote_refs,
    object_type,
    stream_blobs,
    tree_items,
)
from apps.projects.services.secrets import SecretUnreadable, decrypt_secret
from apps.storage.blobs import scratch_folder
from apps.templates.models import ProjectTemplate, TemplateSource
from apps.templates.services import formats, versions
from apps.templates.services.formats.native import SLUG_RE, VERSION_RE, TemplateInvalid, slugify_name
from apps.templates.services.sources import SyncResult, register_source
from apps.templates.services.versions import RecordedVersion
from core.exceptions import ApplicationError, ValidationFailed
from core.safe_paths import SafeWriter, UnsafeInput, UnsafePath, clean_relative_path

logger = logging.getLogger("kiln.templates")

SHORT_COMMIT = 7  # git's own abbreviation, as `git describe --always` (Copier's `_commit`) prints it
LOCATION_KEYS = frozenset({"url", "ref", "subdirectory", "connection"})


class GitSourceFailed(ApplicationError):
    status_code = 400
    default_code = "git_unreachable"


@dataclass(frozen=True)
class GitLocation:
    """Where a git template lives: checked URL, ref ("" = the default branch), folder ("" = top)."""

    url: str
    ref: str = ""
    subdirectory: str = ""


@dataclass(frozen=True)
class RemoteVersion:
    label: str
    ref: str  # the full ref fetched: refs/tags/<label> or refs/heads/<branch>
    commit: str


# --- the request: checked before git runs --------------------------------------------------------


def _field_error(field: str, message: str, code: str = "validation_error") -> ValidationFailed:
    return ValidationFailed(message, code=code, extra={"fields": {field: [message]}})


def clean_location(data: Any) -> GitLocation:
    """The `git` object of a registration body: `{url, ref?, subdirectory?, connection?}`."""
    if not isinstance(data, dict):
        raise _field_error("git", "git must be an object with url, and optionally ref, subdirectory, connection.")
    unknown = sorted(str(key) for key in data if key not in LOCATION_KEYS)
    if unknown:
        raise ValidationFailed(
            f"Unknown fields in git: {', '.join(unknown)}.",
            extra={"fields": {f"git.{key}": ["Unknown field."] for key in unknown}},
        )
    url = data.get("url")
    if not isinstance(url, str) or not url:
        raise _field_error("git.url", "git.url is required: the repository's https URL.")
    check_git_url(url, field="git.url")
    ref = data.get("ref") or ""
    if ref:
        validate_ref(ref, field="git.ref")
    subdirectory = data.get("subdirectory") or ""
    if subdirectory:
        if not isinstance(subdirectory, str) or len(subdirectory) > 500:
            raise _field_error("git.subdirectory", "git.subdirectory must be a relative folder path.")
        try:
            subdirectory = clean_relative_path(subdirectory.strip("/"))
        except UnsafePath as exc:
            raise _field_error("git.subdirectory", f"git.subdirectory is not allowed: {exc.message}") from None
    return GitLocation(url=url, ref=ref, subdirectory=subdirectory)


def git_auth(connection: ProviderConnection | None) -> GitAuth | None:
    """The credentials a connection gives git (Basic, with the user name its provider expects)."""
    if connection is None:
        return None
    from apps.projects.services.repository_exporter import git_username

    try:
        token = decrypt_secret(connection.token_encrypted)
    except SecretUnreadable:
        raise ApplicationError(
            "The connection's stored token cannot be decrypted; add it again.", code="connection_unreadable"
        ) from None
    return GitAuth(git_username(connection.provider), token)


# --- versions: which refs, in which order ----------------------------------------------------------


def parse_version(label: str) -> Version | None:
    """The PEP 440 version a tag reads as (`v1.0.0` and `1.0.0` alike), or None."""
    try:
        return Version(label)
    except InvalidVersion:
        return None


def ordered_labels(labels: Iterable[str]) -> list[str]:
    """Version labels oldest first, as Copier sorts tags (`packaging.version`); labels that are not
    versions (a short commit) come first, in the order given."""
    given = list(labels)
    others = [label for label in given if parse_version(label) is None]
    versions = sorted((label for label in given if parse_version(label) is not None), key=_sort_key)
    return others + versions


def _sort_key(label: str) -> tuple[Version, str]:
    version = parse_version(label)
    assert version is not None
    return version, label


def latest_label(labels: Iterable[str]) -> str | None:
    """Copier's latest: the newest version that is not a pre-release (the newest one if all are)."""
    ordered = ordered_labels(labels)
    releases = [label for label in ordered if (v := parse_version(label)) is not None and not v.is_prerelease]
    if releases:
        return releases[-1]
    return ordered[-1] if ordered else None


def _failure(exc: GitFailed, *, auth: GitAuth | None, what: str) -> ApplicationError:
    """A git failure as the caller's coded error (the token never in it: `_run*` redacted it)."""
    if exc.code == "invalid_token":
        if auth is None:
            return GitSourceFailed(
                f"{what}: the repository asks for credentials. Register it with a connection (git.connection) "
                "whose token can read it.",
                code="invalid_token",
                extra={"reason": "credentials_required"},
            )
        return GitSourceFailed(f"{what}: the repository refused the connection's token.", code="invalid_token")
    if exc.code == "ref_not_found":
        return GitSourceFailed(f"{what}: the repository has no such ref.", code="ref_not_found")
    if exc.code in ("fetch_too_large", "tree_too_large"):
        return GitSourceFailed(f"{what}: {exc.message}", code="template_too_large", extra=exc.extra)
    return GitSourceFailed(f"{what}: {exc.message}", code="git_unreachable")


def _ref_patterns(ref: str) -> list[str]:
    if ref.startswith("refs/"):
        return [ref]
    return [f"refs/heads/{ref}", f"refs/tags/{ref}"]


def remote_versions(location: GitLocation, *, auth: GitAuth | None) -> list[RemoteVersion]:
    """The repository's versions, oldest first (newest KILN_GIT_SOURCE_MAX_VERSIONS kept)."""
    patterns = ["HEAD", "refs/tags/*", *(_ref_patterns(location.ref) if location.ref else [])]
    try:
        listing = list_remote_refs(location.url, patterns=patterns, auth=auth)
    except GitFailed as exc:
        raise _failure(exc, auth=auth, what="Listing the repository's refs failed") from None
    tags = {}
    for name, commit in listing.refs.items():
        label = name.removeprefix("refs/tags/")
        if name.startswith("refs/tags/") and VERSION_RE.match(label) and parse_version(label) is not None:
            tags[label] = RemoteVersion(label=label, ref=name, commit=commit)
    if tags:
        newest = ordered_labels(tags)[-settings.KILN_GIT_SOURCE_MAX_VERSIONS :]
        return [tags[label] for label in newest]
    if location.ref:
        wanted = next((name for name in _ref_patterns(location.ref) if name in listing.refs), None)
        if wanted is None:
            raise GitSourceFailed(
                f"The repository has no branch or tag '{location.ref}'.",
                code="ref_not_found",
                extra={"fields": {"git.ref": ["Not found in the repository."]}, "ref": location.ref},
            )
        commit = listing.refs[wanted]
    else:
        if "HEAD" not in listing.refs:
            raise GitSourceFailed("The repository is empty (no default branch).", code="ref_not_found")
        commit = listing.refs["HEAD"]
        # the default branch by name when the remote says which it is (a remote may not)
        wanted = listing.head if listing.head.startswith("refs/heads/") else "HEAD"
    return [RemoteVersion(label=commit[:SHORT_COMMIT], ref=wanted, commit=commit)]


# --- one version: fetched shallow, its folder written out within the upload limits ------------------


@dataclass(frozen=True)
class FetchedVersion:
    folder: Path  # the template's folder (the subdirectory of the version's tree)
    commit: str


@contextmanager
def fetched_version(location: GitLocation, version: RemoteVersion, *, auth: GitAuth | None) -> Iterator[FetchedVersion]:
    """Fetch `version` alone at depth 1 into a scratch folder and write its template folder there;
    the folder is removed when the block ends."""
    what = f"Fetching {version.label}"
    with scratch_folder(f"git-source-{version.label}") as work:
        git_dir = work / "repo.git"
        init_scratch(git_dir)
        try:
            commit = fetch_ref(
                git_dir,
                url=location.url,
                ref=version.ref,
                auth=auth,
                max_bytes=settings.KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED,
            )
            folder = work / "template"
            folder.mkdir()
            _write_tree(git_dir, commit, location.subdirectory, folder, label=version.label)
        except GitFailed as exc:
            raise _failure(exc, auth=auth, what=what) from None
        yield FetchedVersion(folder=folder, commit=commit)


def _too_large(message: str, limit: int, **extra: Any) -> GitSourceFailed:
    return GitSourceFailed(message, code="template_too_large", extra={"limit": limit, **extra})


def _write_tree(git_dir: Path, commit: str, subdirectory: str, dest: Path, *, label: str) -> None:
    treeish = f"{commit}:{subdirectory}" if subdirectory else commit
    if subdirectory and object_type(git_dir, treeish) != "tree":
        raise TemplateInvalid(
            f"Version {label} has no folder '{subdirectory}'.",
            extra={"path": subdirectory, "version": label, "fields": {"git.subdirectory": ["Not in the repository."]}},
        )
    max_files = settings.KILN_TEMPLATE_UPLOAD_MAX_FILES
    max_bytes = settings.KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED
    items = tree_items(git_dir, treeish, max_bytes=(max_files + 1) * 1200)
    if len(items) > max_files:
        raise _too_large(f"Version {label} has more than {max_files} files.", max_files, version=label)
    if any(item.mode == GIT_MODE_SYMLINK for item in items):
        items = _LinkResolver(git_dir, commit, subdirectory, label=label).expand(items)
    total = 0
    for item in items:
        if item.mode == GIT_MODE_GITLINK:
            raise TemplateInvalid(
                f"The template contains a submodule '{item.path}'; Kiln reads one repository, not its submodules.",
                extra={"path": item.path, "version": label, "reason": "submodule"},
            )
        if item.size > settings.MAX_FILE_SIZE:
            raise _too_large(
                f"The template file '{item.path}' is larger than {settings.MAX_FILE_SIZE} bytes.",
                settings.MAX_FILE_SIZE,
                path=item.path,
                version=label,
            )
        total += item.size
        if total > max_bytes:
            raise _too_large(f"Version {label} is larger than {max_bytes} bytes.", max_bytes, version=label)
    writer = SafeWriter(dest)
    for item, data in zip(items, stream_blobs(git_dir, [item.oid for item in items]), strict=True):
        try:
            writer.write(item.path, data, 0o755 if item.mode & 0o111 else 0o644)
        except UnsafeInput as exc:
            raise TemplateInvalid(
                f"Template file name not allowed: {exc.message}",
                code=exc.code,
                extra={**exc.extra, "version": label},
            ) from None


MAX_LINK_HOPS = 8  # links followed from one link (a link to a link ...), and folder links nested


class _LinkResolver:
    """Symbolic links of a template folder become regular copies of what they point at, as Copier
    renders them by default (`_preserve_symlinks: false` follows links): a link to a file is that
    file, a link to a folder is that folder's files. The target is looked up in the version's own
    tree (anywhere in the repository, not only below the subdirectory); a link that points outside
    the repository, at an absolute path, at nothing, or round in a loop is refused naming it."""

    def __init__(self, git_dir: Path, commit: str, subdirectory: str, *, label: str) -> None:
        self.git_dir = git_dir
        self.prefix = f"{subdirectory}/" if subdirectory else ""
        self.label = label
        self.max_files = settings.KILN_TEMPLATE_UPLOAD_MAX_FILES
        listing = tree_items(git_dir, commit, max_bytes=(4 * self.max_files + 1) * 1200)
        self.tree = {item.path: item for item in listing}
        self.count = 0

    def expand(self, items: list[TreeItem]) -> list[TreeItem]:
        out: list[TreeItem] = []
        for item in items:
            if item.mode == GIT_MODE_SYMLINK:
                out.extend(self._follow(item.path, self.prefix + item.path, hops=0))
            else:
                self._counted(1)
                out.append(item)
        return out

    def _counted(self, n: int) -> None:
        self.count += n
        if self.count > self.max_files:
            raise _too_large(
                f"Version {self.label} has more than {self.max_files} files once its links are followed.",
                self.max_files,
                version=self.label,
            )

    def _refused(self, rel: str, why: str, reason: str) -> TemplateInvalid:
        return TemplateInvalid(
            f"The template's symbolic link '{rel}' {why}; only links to files or folders of the same "
            "repository are followed.",
            code="symlink_not_allowed",
            extra={"path": rel, "version": self.label, "reason": reason},
        )

    def _follow(self, rel: str, link: str, *, hops: int) -> list[TreeItem]:
        """What the link at repository path `link` gives at template path `rel`."""
        if hops >= MAX_LINK_HOPS:
            raise self._refused(rel, f"is followed through more than {MAX_LINK_HOPS} links (a loop?)", "loop")
        [raw] = list(stream_blobs(self.git_dir, [self.tree[link].oid]))
        target = raw.decode("utf-8", "surrogateescape")
        if not target or target.startswith("/") or "\0" in target:
            raise self._refused(rel, f"points at the absolute path '{target[:200]}'", "absolute")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
        if resolved in (".", "..") or resolved.startswith("../"):
            raise self._refused(rel, "points outside the repository", "outside")
        entry = self.tree.get(resolved)
        if entry is not None:
            if entry.mode == GIT_MODE_SYMLINK:
                return self._follow(rel, resolved, hops=hops + 1)
            self._counted(1)
            return [TreeItem(rel, entry.mode, entry.oid, entry.size)]
        inside = [item for path, item in self.tree.items() if path.startswith(f"{resolved}/")]
        if not inside:
            raise self._refused(rel, f"points at '{target[:200]}', which is not in the repository", "dangling")
        out: list[TreeItem] = []
        for item in inside:
            below = f"{rel}/{item.path[len(resolved) + 1 :]}"
            if item.mode == GIT_MODE_SYMLINK:
                out.extend(self._follow(below, item.path, hops=hops + 1))
            else:
                self._counted(1)
                out.append(TreeItem(below, item.mode, item.oid, item.size))
        return out


# --- the registered source: register a repository, sync its new versions ---------------------------


def _connection(user: Any, connection_id: Any) -> ProviderConnection | None:
    """One of the caller's own provider connections (any provider: its token is sent to the repository's host)."""
    if connection_id in (None, ""):
        return None
    connection = ProviderConnection.objects.filter(pk=connection_id, owner_id=getattr(user, "pk", None)).first()
    if connection is None:
        raise ValidationFailed(
            "No such connection among yours.",
            code="connection_not_found",
            extra={"fields": {"git.connection": ["Unknown."]}},
        )
    return connection


def _default_slug(location: GitLocation) -> str:
    """The subdirectory's name, else the repository's (without `.git`)."""
    name = location.subdirectory.rsplit("/", 1)[-1] if location.subdirectory else ""
    if not name:
        name = urlsplit(location.url).path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    return slugify_name(name)


def _check_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise _field_error("slug", "slug must be lowercase letters, digits and dashes (at most 100).")
    if ProjectTemplate.objects.filter(slug=slug).exists():
        raise ValidationFailed(
            f"A template named '{slug}' already exists; choose another slug.",
            code="template_exists",
            extra={"slug": slug, "fields": {"slug": ["Taken."]}},
        )
    return slug


def location_of(template: ProjectTemplate) -> GitLocation:
    """A registered template's location, checked again (settings or DNS may have changed since)."""
    return clean_location({"url": template.git_url, "ref": template.git_ref, "subdirectory": template.git_subdirectory})


def _record(
    slug: str | Callable[[formats.Description], str],
    location: GitLocation,
    version: RemoteVersion,
    *,
    auth: GitAuth | None,
    user: Any,
    may_add: Callable[[ProjectTemplate], bool],
    template_fields: dict[str, Any] | None = None,
) -> RecordedVersion:
    """Fetch one version and hand its folder to the catalog, labelled by the tag (or short commit).
    `slug` may be decided from the version's description (a native template names itself)."""
    with fetched_version(location, version, auth=auth) as fetched:
        try:
            described = formats.describe(fetched.folder)  # the format found at the folder's top
        except ApplicationError as exc:  # the error names the file; the version is named here
            exc.message = f"Version {version.label}: {exc.message}"
            exc.extra = {**exc.extra, "version": version.label}
            raise
        return versions.version_record_described(
            folder=fetched.folder,
            described=described,
            slug=slug if isinstance(slug, str) else slug(described),
            label=version.label,
            source=TemplateSource.GIT,
            user=user,
            commit=fetched.commit,
            orderable=version.ref.startswith("refs/tags/"),  # a short commit is ordered by when it was seen
            template_fields=template_fields,
            may_add=may_add,  # decided under the template's row lock
        )


@register_source
class GitSource:
    kind = TemplateSource.GIT
    body_key: str | None = "git"
    syncs = True

    def register(self, data: Any, *, user: Any) -> ProjectTemplate:
        """Check the location, list the versions, then record the template with every one of them
        (all or nothing: a version that is not a valid template fails the registration, naming it)."""
        location = clean_location(data.get("git"))
        connection = _connection(user, data["git"].get("connection"))
        if data.get("slug"):
            _check_slug(data["slug"])
        auth = git_auth(connection)
        found = remote_versions(location, auth=auth)  # nothing is stored when the repository cannot be read
        fields = {
            "git_url": location.url,
            "git_ref": location.ref,
            "git_subdirectory": location.subdirectory,
            "git_connection": connection,
        }
        mine: set[int] = set()  # the template this registration created: its later versions go to it

        def may_add(template: ProjectTemplate) -> bool:
            return template.pk in mine  # a template of that slug made meanwhile by someone else is not ours

        slug = data.get("slug") or ""

        def naming(described: formats.Description) -> str:
            """The one a native template declares, else the folder's or the repository's name."""
            nonlocal slug
            slug = _check_slug(described.slug or _default_slug(location))
            return slug

        try:
            with transaction.atomic():
                for version in reversed(found):  # newest first: the newest version names the template
                    recorded = _record(
                        slug or naming,
                        location,
                        version,
                        auth=auth,
                        user=user,
                        may_add=may_add,
                        template_fields=fields,
                    )
                    template = recorded.template
                    slug = template.slug
                    mine.add(template.pk)
                template.last_synced_at = timezone.now()
                template.save(update_fields=["last_synced_at", "updated_at"])
        except IntegrityError:  # registered by someone else meanwhile
            raise ValidationFailed(
                f"A template named '{slug}' already exists; choose another slug.",
                code="template_exists",
                extra={"slug": slug, "fields": {"slug": ["Taken."]}},
            ) from None
        logger.info("git template %s registered from %s: %s", slug, location.url, [v.label for v in found])
        return template

    def sync(self, template: ProjectTemplate, *, user: Any) -> SyncResult:
        """Record the repository's versions the catalog does not have; one that is not a valid
        template is skipped (reported, tried again next time), the others are recorded."""
        location = location_of(template)
        auth = git_auth(template.git_connection)
        found = remote_versions(location, auth=auth)
        known = set(template.versions.values_list("version", flat=True))
        result = SyncResult()
        for version in found:
            if version.label in known:
                continue
            try:
                with transaction.atomic():
                    _record(
                        template.slug,
                        location,
                        version,
                        auth=auth,
                        user=user,
                        may_add=lambda row: row.pk == template.pk and row.source == TemplateSource.GIT,
                    )
            except ApplicationError as exc:
                if exc.code in ("git_unreachable", "invalid_token"):
                    raise
                logger.warning("git template %s: version %s skipped: %s", template.slug, version.label, exc.code)
                result.skipped.append({"version": version.label, "code": exc.code, "message": exc.message})
                continue
            result.added.append(version.label)
        template.last_synced_at = timezone.now()
        template.save(update_fields=["last_synced_at", "updated_at"])
        return result

    def describe(self, template: ProjectTemplate) -> dict[str, Any] | None:
        return {
            "url": template.git_url,
            "ref": template.git_ref,
            "subdirectory": template.git_subdirectory,
            "connection": template.git_connection_id,
            "last_synced_at": template.last_synced_at,
        }


def registered(location: GitLocation) -> ProjectTemplate | None:
    """The active git template registered from this repository folder (URL and subdirectory), if any:
    a caller that meets a known repository syncs it (`sources.template_sync`) rather than registering."""
    return (
        ProjectTemplate.objects.filter(
            source=TemplateSource.GIT,
            is_active=True,
            git_url=location.url,
            git_subdirectory=location.subdirectory,
            git_ref=location.ref,
        )
        .order_by("pk")
        .first()
    )


def sync_all(*, budget: float | None = None) -> dict[str, Any]:
    """Beat: sync every active git template, least recently synced first; a failing one is
    logged and the others go on. No template is started after `budget` seconds (default: half the
    task's soft time limit): the ones left are the first of the next run."""
    budget = settings.CELERY_TASK_SOFT_TIME_LIMIT / 2 if budget is None else budget
    deadline = time.monotonic() + budget
    report: dict[str, Any] = {}
    templates = ProjectTemplate.objects.filter(source=TemplateSource.GIT, is_active=True).select_related(
        "git_connection"
    )
    for template in templates.order_by(F("last_synced_at").asc(nulls_first=True), "slug"):
        if time.monotonic() > deadline:
            report[template.slug] = {"deferred": True}
            continue
        try:
            result = GitSource().sync(template, user=template.uploaded_by)
        except ApplicationError as exc:
            logger.warning("git template %s: sync failed: %s %s", template.slug, exc.code, exc.message)
            report[template.slug] = {"error": exc.code}
            continue
        report[template.slug] = {"added": result.added, "skipped": [s["version"] for s in result.skipped]}
    return report
