"""What `generate_project --template` names: a local archive, a local folder, a catalog slug.

A registry of source kinds, tried in order. Each kind first *recognises* the text (cheap checks
only: the path exists, the name is well formed), so that a bad argument is refused before any
work; then *resolves* it to a catalog template, registering what it needs through the catalog's
own services (an upload, exactly as `POST /templates/` with an archive does).
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

from apps.templates.models import ProjectTemplate
from apps.templates.services.catalog import template_get, template_upload

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
SKIPPED_FOLDERS = frozenset({".git", ".hg", ".svn", "__pycache__"})  # never part of a template
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


@dataclass(frozen=True)
class Recognised:
    """A `--template` argument understood by one source kind (`text` normalised: an absolute path, a URL)."""

    kind: str
    text: str
    resolve: Callable[[Recognised, Any, dict[str, Any]], ProjectTemplate]


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
        f"--template {text!r} is neither a catalog slug, an existing folder nor a .zip/.tar.gz archive; "
        "`manage.py list_templates` lists the slugs"
    )


OPTIONS_NOT_FOR = {"slug": ("slug",)}
OPTION_USE = {"slug": "a folder or archive --template (the slug to register it as)"}


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "~", "/")) or os.sep in text or (os.altsep or os.sep) in text


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


def _resolve_archive(source: Recognised, user: Any, options: dict[str, Any]) -> ProjectTemplate:
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
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(folder):  # symbolic links to folders are not followed
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
            for name in sorted(files) + [d for d in dirs if (Path(root) / d).is_symlink()]:
                path = Path(root) / name
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder)))
                entries += 1
                unpacked += info.size
                if entries > max_entries or unpacked > max_unpacked:
                    raise CommandError(
                        f"--template: the folder {str(folder)!r} holds more than the upload limits "
                        f"({max_entries} files, {max_unpacked} bytes)"
                    )
                if info.isreg():
                    with open(path, "rb") as data:
                        tar.addfile(info, data)
                else:
                    tar.addfile(info)  # a link or special file: the catalog names and refuses it
                if out.tell() > max_bytes:
                    raise CommandError(
                        f"--template: the folder {str(folder)!r} packs to more than "
                        f"KILN_TEMPLATE_UPLOAD_MAX_BYTES ({max_bytes} bytes)"
                    )


def _resolve_folder(source: Recognised, user: Any, options: dict[str, Any]) -> ProjectTemplate:
    folder = Path(source.text)
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as packed:
        _pack(folder, packed)
        size = packed.tell()
        packed.seek(0)
        return template_upload(archive=packed, size=size, user=user, **_upload_names(options))  # type: ignore[arg-type]


# --- a slug of the catalog (last: anything else that is a well-formed name) -----------------------


@register_source("slug")
def _slug(text: str, options: dict[str, Any]) -> Recognised | None:
    if not _SLUG.match(text):
        return None
    return Recognised("slug", text, _resolve_slug)


def _resolve_slug(source: Recognised, user: Any, options: dict[str, Any]) -> ProjectTemplate:
    return template_get(slug=source.text)
