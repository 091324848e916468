"""What `generate_project --template` names: a git repository, a local archive, a local folder, a slug.

A registry of source kinds, tried in order. Each kind first *recognises* the text (cheap checks
only: the path exists, the name is well formed), so that a bad argument is refused before any
work; then *resolves* it to a catalog template, registering what it needs through the catalog's
own services (an upload, exactly as `POST /templates/` with an archive does; a git template, as
`POST /templates/` with `{"git": {...}}` does).

`gh:owner/repo` is `https://github.com/owner/repo.git` and `gl:group/sub/repo` is
`<KILN_GITLAB_URL>/group/sub/repo.git` (`https://gitlab.com` unless that setting points at a
self-managed GitLab), as Copier spells them.
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.management.base import CommandError

from apps.templates.models import ProjectTemplate, TemplateSource
from apps.templates.services.catalog import template_get, template_upload
from apps.templates.services.sources import get_source, template_sync
from core.exceptions import ApplicationError, PermissionDenied

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", "__pycache__"})  # never part of a template
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


@dataclass(frozen=True)
class Recognised:
    """A `--template` argument understood by one source kind (`text` normalised: an absolute path, a URL)."""

    kind: str
    text: str
    resolve: Callable[[Recognised, Any, dict[str, Any], Callable[[str], None]], ProjectTemplate]


Recogniser = Callable[[str, dict[str, Any]], "Recognised | None"]
SOURCES: list[tuple[str, Recogniser]] = []


def register_source(kind: str) -> Callable[[Recogniser], Recogniser]:
    """Add a source kind; kinds are tried in registration order, the first that recognises wins."""

    def add(recognise: Recogniser) -> Recogniser:
        SOURCES.append((kind, recognise))
        return recognise

    return add


def recognise(text: str, options: dict[str, Any]) -> Recognised:
    """The source `text` names, checked without doing any work; CommandError when none fits."""
    text = text.strip()
    if not text:
        raise CommandError("--template is empty: give a slug, a folder, an archive or a git URL")
    for _kind, attempt in SOURCES:
        found = attempt(text, options)
        if found is not None:
            refused = [name for name in OPTIONS_NOT_FOR.get(found.kind, ()) if options.get(name)]
            if refused:
                given = ", ".join(f"--{name.replace('_', '-')}" for name in refused)
                raise CommandError(f"{given} {'goes' if len(refused) == 1 else 'go'} with {OPTION_USE[refused[0]]}")
            return found
    raise CommandError(
        f"--template {text!r} is neither a catalog slug, an existing folder, a .zip/.tar.gz archive "
        "nor a git URL (https://..., gh:owner/repo, gl:group/repo); `manage.py list_templates` lists the slugs"
    )


GIT_OPTIONS = ("vcs_ref", "subdirectory", "git_connection")
OPTIONS_NOT_FOR = {"archive": GIT_OPTIONS, "folder": GIT_OPTIONS, "slug": (*GIT_OPTIONS, "slug")}
OPTION_USE = {
    "vcs_ref": "a git --template",
    "subdirectory": "a git --template",
    "git_connection": "a git --template",
    "slug": "a folder, archive or git --template (the slug to register it as)",
}
GIT_PREFIXES = ("https://", "http://", "file://", "ssh://", "git://", "git@", "git+")
_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*(://|::)")


def _shorthands() -> dict[str, str]:
    return {"gh:": "https://github.com/", "gl:": settings.KILN_GITLAB_URL.rstrip("/") + "/"}


def expand_git_url(text: str) -> str | None:
    """The repository URL `text` names (`gh:`/`gl:` expanded, Copier's `git+` dropped), or None
    when `text` is not a git location."""
    for prefix, base in _shorthands().items():
        if text.startswith(prefix):
            path = text[len(prefix) :].strip("/")
            segments = path.split("/")
            if len(segments) < 2 or not all(segments):
                raise CommandError(f"--template {text!r}: {prefix} takes owner/repository ({prefix}owner/repo)")
            return base + path + ("" if path.endswith(".git") else ".git")
    if text.startswith(GIT_PREFIXES):
        return text.removeprefix("git+")
    if _URL_LIKE.match(text):  # another scheme or a transport helper (ext::): the git rules refuse it, by name
        return text
    return None


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "~", "/")) or os.sep in text or (os.altsep or os.sep) in text


# --- a git repository: registered (or synced) as a git template ------------------------------------


@register_source("git")
def _git(text: str, options: dict[str, Any]) -> Recognised | None:
    url = expand_git_url(text)
    if url is None:
        return None
    from apps.templates.services.sources.git import clean_location  # GitPython only when a git URL is given

    try:
        location = clean_location(_git_body(url, options))  # the git source's own URL, ref and folder rules
    except ApplicationError as exc:
        raise CommandError(f"--template {text!r}: {exc.code}: {exc.message}") from None
    return Recognised("git", location.url, _resolve_git)


def _git_body(url: str, options: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if options.get("vcs_ref"):
        body["ref"] = options["vcs_ref"]
    if options.get("subdirectory"):
        body["subdirectory"] = options["subdirectory"]
    if options.get("git_connection"):
        body["connection"] = options["git_connection"]
    return body


def _resolve_git(source: Recognised, user: Any, options: dict[str, Any], say: Callable[[str], None]) -> ProjectTemplate:
    """The catalog's template for this repository (same URL, ref and folder), synced; else a new one."""
    from apps.templates.services.sources.git import clean_location

    body = _git_body(source.text, options)
    location = clean_location(body)
    existing = ProjectTemplate.objects.filter(
        source=TemplateSource.GIT, git_url=location.url, git_ref=location.ref, git_subdirectory=location.subdirectory
    ).first()
    if existing is not None:
        try:
            result = template_sync(template=existing, actor=user)
        except PermissionDenied as exc:  # someone else's template: generate from the versions it has
            say(f"not synced ({exc.code}): {exc.message}")
        else:
            say(f"synced {existing.slug}: added {', '.join(result.added) or 'nothing'}")
            for skipped in result.skipped:
                say(f"  skipped {skipped['version']}: {skipped['code']}: {skipped['message']}")
        existing.refresh_from_db()
        return existing
    data: dict[str, Any] = {"git": body}
    if options.get("slug"):
        data["slug"] = options["slug"]
    return get_source("git").register(data, user=user)


def _upload_names(options: dict[str, Any]) -> dict[str, str | None]:
    """The slug and version label an upload is recorded as: a Cookiecutter or Copier template has
    neither (--slug, --version give them); a native one names itself in template.yaml (they must agree)."""
    return {"slug": options.get("slug") or None, "version": options.get("version") or None}


# --- an archive: uploaded as it is ------------------------------------------------------------------


@register_source("archive")
def _archive(text: str, options: dict[str, Any]) -> Recognised | None:
    if not text.lower().endswith(ARCHIVE_SUFFIXES):
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise CommandError(f"--template: no such archive {text!r}")
    return Recognised("archive", str(path.resolve()), _resolve_archive)


def _resolve_archive(
    source: Recognised, user: Any, options: dict[str, Any], say: Callable[[str], None]
) -> ProjectTemplate:
    path = Path(source.text)
    with open(path, "rb") as stream:
        return template_upload(archive=stream, size=path.stat().st_size, user=user, **_upload_names(options))


# --- a folder: packed as a tar.gz (bounded by the upload limits), then uploaded --------------------


@register_source("folder")
def _folder(text: str, options: dict[str, Any]) -> Recognised | None:
    path = Path(text).expanduser()
    if path.is_dir() and (_looks_like_path(text) or not ProjectTemplate.objects.filter(slug=text).exists()):
        return Recognised("folder", str(path.resolve()), _resolve_folder)
    if _looks_like_path(text):
        raise CommandError(f"--template: no such folder {text!r}")
    return None


def _pack(folder: Path, out: IO[bytes]) -> None:
    """`tar czf - -C folder .` without version-control folders, refusing early past the upload limits
    (the catalog checks the archive again, completely)."""
    max_bytes = settings.KILN_TEMPLATE_UPLOAD_MAX_BYTES
    max_entries = settings.KILN_TEMPLATE_UPLOAD_MAX_FILES
    max_unpacked = settings.KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED
    entries = unpacked = 0

    def unreadable(exc: OSError) -> None:
        raise exc

    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        # symbolic links to folders are not followed (they are packed as links, which the catalog refuses)
        for root, dirs, files in os.walk(folder, onerror=unreadable):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
            for name in sorted(files) + [d for d in dirs if (Path(root) / d).is_symlink()]:
                path = Path(root) / name
                relative = str(path.relative_to(folder))
                info = tar.gettarinfo(str(path), arcname=relative)
                if info is None:  # a socket: tar has no such member
                    raise CommandError(f"--template: {relative!r} in {str(folder)!r} is a socket, not a file")
                entries += 1
                unpacked += info.size
                if entries > max_entries or unpacked > max_unpacked:
                    raise CommandError(
                        f"--template: the folder {str(folder)!r} holds more than the upload limits "
                        f"({max_entries} files, {max_unpacked} bytes)"
                    )
                if info.isreg():
                    with open(path, "rb") as data:
                        tar.addfile(info, data)  # exactly info.size bytes (a file that shrank meanwhile: OSError)
                else:
                    tar.addfile(info)  # a link or special file: the catalog names and refuses it
                if out.tell() > max_bytes:
                    raise CommandError(
                        f"--template: the folder {str(folder)!r} packs to more than "
                        f"KILN_TEMPLATE_UPLOAD_MAX_BYTES ({max_bytes} bytes)"
                    )


def _resolve_folder(
    source: Recognised, user: Any, options: dict[str, Any], say: Callable[[str], None]
) -> ProjectTemplate:
    folder = Path(source.text)
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as packed:
        try:
            _pack(folder, packed)
        except OSError as exc:
            raise CommandError(
                f"--template: cannot read {exc.filename or str(folder)!r}: {exc.strerror or exc}"
            ) from None
        size = packed.tell()
        packed.seek(0)
        return template_upload(archive=packed, size=size, user=user, **_upload_names(options))  # type: ignore[arg-type]


# --- a slug of the catalog (last: anything else that is a well-formed name) -----------------------


@register_source("slug")
def _slug(text: str, options: dict[str, Any]) -> Recognised | None:
    if not _SLUG.match(text):
        return None
    return Recognised("slug", text, _resolve_slug)


def _resolve_slug(
    source: Recognised, user: Any, options: dict[str, Any], say: Callable[[str], None]
) -> ProjectTemplate:
    return template_get(slug=source.text)
