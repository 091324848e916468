"""The template catalog: built-in sync, archive upload, the template's files on this machine.

What a template folder means is its format's business (`apps/templates/services/formats/`: the
native format's `template.yaml` rules are in `formats/native.py`). Uploaded archives are checked
member by member before a single byte is written.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import shutil
import stat
import struct
import tarfile
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from apps.templates.models import ProjectTemplate, TemplateFormat, TemplateSource, TemplateVersion
from apps.templates.services import formats
from apps.templates.services.formats.native import (  # the native format's rules live there
    MANIFEST_NAME,
    SLUG_RE,
    VERSION_RE,
    ScannedTemplate,
    TemplateInvalid,
    parse_manifest,
    scan_template,
)
from apps.templates.services.versions import (
    builtin_version_superseded,
    version_latest,
    version_record,
    version_record_described,
    version_template_folder,
)
from core.exceptions import ApplicationError, NotFound, ValidationFailed
from core.safe_paths import (
    DuplicatePath,
    PathSet,
    SafeWriter,
    UnsafePath,
    clean_relative_path,
)

logger = logging.getLogger("kiln.templates")


def template_folder(template: ProjectTemplate | TemplateVersion) -> Path:
    """A version's files as a local folder (a template: its latest version's); see
    `versions.version_template_folder`."""
    if isinstance(template, TemplateVersion):
        return version_template_folder(template)
    return version_template_folder(version_latest(template))


def _upsert(
    scanned: ScannedTemplate, *, source: str, source_path: str, user: Any | None, format: str = TemplateFormat.NATIVE
) -> ProjectTemplate:
    """Record `scanned` as a version of its template (created on its first version); the template.
    Its files stay in the folder `source_path` names (no blob copy: tests' and blueprints' path)."""
    return version_record(
        scanned, source=source, source_path=source_path, user=user, format=format, store_blobs=False
    ).template


def template_sync_builtin() -> list[ProjectTemplate]:
    """Make the catalog match the built-in template folders shipped with Kiln."""
    root = Path(settings.KILN_BUILTIN_TEMPLATES_DIR)
    synced: list[ProjectTemplate] = []
    if not root.is_dir():
        return synced
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        scanned = scan_template(folder)
        if scanned.manifest.slug != folder.name:
            raise TemplateInvalid(f"Built-in template folder '{folder.name}' declares slug '{scanned.manifest.slug}'.")
        existing = ProjectTemplate.objects.filter(slug=scanned.manifest.slug).first()
        if existing is not None and existing.source != TemplateSource.BUILTIN:
            logger.warning("built-in template %s shadows an uploaded template; skipped", scanned.manifest.slug)
            continue
        synced.append(_sync_builtin_folder(scanned, folder.name))
    return synced


def _sync_builtin_folder(scanned: ScannedTemplate, folder: str) -> ProjectTemplate:
    """Record a built-in folder as a version. Files changed under an unchanged label (Kiln's own
    templates edited without a version bump) become the local version `<label>+<checksum[:8]>`,
    so the recorded label keeps its content and older generations still render."""
    try:
        recorded = version_record(scanned, source=TemplateSource.BUILTIN, source_path=folder, store_blobs=False)
    except ValidationFailed as exc:
        if exc.code != "template_version_exists":
            raise
        label = scanned.manifest.version
        local = f"{label[:40]}{'.' if '+' in label else '+'}{scanned.checksum[:8]}"
        scanned.manifest = dataclasses.replace(scanned.manifest, version=local)
        recorded = version_record(scanned, source=TemplateSource.BUILTIN, source_path=folder, store_blobs=False)
    builtin_version_superseded(recorded.template, folder=folder, checksum=scanned.checksum)
    return recorded.template


def template_may_add_version(template: ProjectTemplate, user: Any) -> bool:
    """An upload adds a version to an uploaded template of the caller's own, or any as staff;
    built-in and git templates take their versions from their source only."""
    if template.source != TemplateSource.UPLOAD:
        return False
    return bool(getattr(user, "is_staff", False)) or (
        template.uploaded_by_id is not None and template.uploaded_by_id == getattr(user, "pk", None)
    )


def template_get(*, slug: str) -> ProjectTemplate:
    template = ProjectTemplate.objects.filter(slug=slug, is_active=True).first()
    if template is None:
        raise NotFound(f"No template named '{slug}'.", code="template_not_found", extra={"template": slug})
    return template


# --- Uploads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    name: str
    is_dir: bool
    size: int
    mode: int
    ref: Any


class ArchiveRejected(ValidationFailed):
    default_code = "archive_unsafe_entry"


def _limits() -> tuple[int, int]:
    return settings.KILN_TEMPLATE_UPLOAD_MAX_FILES, settings.KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED


def _check_member_name(name: str, *, is_dir: bool) -> str:
    clean = name.rstrip("/") if is_dir else name
    while clean.startswith("./"):  # `tar czf t.tar.gz -C folder .` writes ./name
        clean = clean[2:]
    if is_dir and clean in ("", "."):  # that archive's own top entry, `./`
        return ""
    try:
        return clean_relative_path(clean)
    except UnsafePath as exc:
        raise ArchiveRejected(
            f"The archive entry '{exc.extra['path']}' is not allowed: {exc.message}",
            extra={"entry": exc.extra["path"], "reason": exc.reason},
        ) from exc


def _budget(members: list[_Member]) -> None:
    max_files, max_bytes = _limits()
    files = [m for m in members if not m.is_dir]
    if len(members) > max_files:
        raise ValidationFailed(
            f"The archive has more than {max_files} entries.", code="archive_too_large", extra={"limit": max_files}
        )
    if sum(m.size for m in files) > max_bytes:
        raise ValidationFailed(
            f"The archive would unpack to more than {max_bytes} bytes.",
            code="archive_too_large",
            extra={"limit": max_bytes},
        )
    for member in files:
        if member.size > settings.MAX_FILE_SIZE:
            raise ValidationFailed(
                f"The archive entry '{member.name}' is larger than {settings.MAX_FILE_SIZE} bytes.",
                code="archive_too_large",
                extra={"entry": member.name, "limit": settings.MAX_FILE_SIZE},
            )


def _too_large(message: str, limit: int, **extra: Any) -> ValidationFailed:
    return ValidationFailed(message, code="archive_too_large", extra={"limit": limit, **extra})


# --- zip: the central directory is walked (counted, its names/extras/comments charged to the
# uncompressed budget) before zipfile builds an object per entry ---------------------------------

_ZIP_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP_CENTRAL = b"PK\x01\x02"


def _zip_precheck(payload: bytes) -> None:
    """Refuse a zip whose central directory lists too many entries or too much metadata.

    zipfile reads the whole central directory and makes a ZipInfo (a few hundred bytes) for
    each 46-byte record before anything can be counted; names, extra fields and comments are
    copied too. Here the records are only walked. A structure that does not parse is left to
    zipfile, which reports it as not readable.
    """
    max_files, max_bytes = _limits()
    eocd = payload.rfind(_ZIP_EOCD, max(0, len(payload) - 22 - 0xFFFF))
    if eocd < 0 or len(payload) < eocd + 22:
        return
    cd_size, comment_len = struct.unpack("<I4xH", payload[eocd + 12 : eocd + 22])
    charged = comment_len
    cd_start = eocd - cd_size
    locator = eocd - 20
    if locator >= 0 and payload[locator : locator + 4] == _ZIP64_LOCATOR:
        (record,) = struct.unpack("<Q", payload[locator + 8 : locator + 16])
        if payload[record : record + 4] == b"PK\x06\x06" and len(payload) >= record + 56:
            (cd_size,) = struct.unpack("<Q", payload[record + 40 : record + 48])
            cd_start = record - cd_size
    if cd_start < 0 or cd_start + cd_size > len(payload):
        return
    position, end, count = cd_start, cd_start + cd_size, 0
    while position + 46 <= end and payload[position : position + 4] == _ZIP_CENTRAL:
        name_len, extra_len, entry_comment_len = struct.unpack("<HHH", payload[position + 28 : position + 34])
        count += 1
        charged += name_len + extra_len + entry_comment_len
        if count > max_files:
            raise _too_large(f"The archive has more than {max_files} entries.", max_files)
        if charged > max_bytes:
            raise _too_large(f"The archive's names, extra fields and comments exceed {max_bytes} bytes.", max_bytes)
        position += 46 + name_len + extra_len + entry_comment_len


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The member's name as written, decoded as UTF-8 (with or without the zip's UTF-8 flag).

    Without the flag zipfile decodes names as cp437, which turns the UTF-8 most tools write
    into mojibake; cp437 maps every byte, so the bytes are recovered exactly. `orig_filename`
    keeps what follows a NUL, which `filename` silently drops.
    """
    name = info.orig_filename
    if info.flag_bits & 0x800 or name.isascii():
        return name
    try:
        return name.encode("cp437").decode("utf-8")
    except UnicodeError:
        shown = name.encode("cp437").decode("utf-8", "backslashreplace")[:300]
        raise ArchiveRejected(
            f"The archive entry '{shown}' has a name that is not valid UTF-8; names must be UTF-8 text.",
            extra={"entry": shown, "reason": "not_utf8"},
        ) from None


def _zip_members(handle: zipfile.ZipFile) -> list[_Member]:
    max_files, max_bytes = _limits()
    members: list[_Member] = []
    charged = len(handle.comment)
    for index, info in enumerate(handle.infolist()):
        if index > max_files:
            break
        charged += len(info.extra) + len(info.comment) + len(info.orig_filename)
        if charged > max_bytes:
            raise _too_large(f"The archive's names, extra fields and comments exceed {max_bytes} bytes.", max_bytes)
        raw_name = _zip_name(info)
        unix_mode = info.external_attr >> 16
        is_dir = raw_name.endswith("/")
        file_type = stat.S_IFMT(unix_mode)
        if file_type and not (stat.S_ISREG(unix_mode) or stat.S_ISDIR(unix_mode)):
            kind = "a symbolic link" if stat.S_ISLNK(unix_mode) else "a special file"
            raise ArchiveRejected(
                f"The archive entry '{raw_name[:300]}' is {kind}; only regular files and folders are allowed.",
                extra={"entry": raw_name[:300], "reason": "link" if stat.S_ISLNK(unix_mode) else "special"},
            )
        if info.flag_bits & 0x1:
            raise ArchiveRejected(
                f"The archive entry '{raw_name[:300]}' is encrypted.", extra={"entry": raw_name[:300]}
            )
        name = _check_member_name(raw_name, is_dir=is_dir)
        mode = 0o755 if unix_mode & stat.S_IXUSR else 0o644
        members.append(_Member(name=name, is_dir=is_dir, size=info.file_size, mode=mode, ref=info))
    return members


# --- tar: every header is sized before tarfile reads it -----------------------------------------

# GNU long names/links and pax headers hold a name, a link target and a few keys; tarfile reads
# each one whole into memory (and a chain of them recursively), so they are capped and charged
# to the uncompressed budget before it does.
MAX_TAR_EXTENDED_HEADER = 64 * 1024
MAX_TAR_EXTENDED_CHAIN = 8
# all of them together (tarfile keeps each member's pax keys): ~1.6 KB per entry at the default
# 5,000 entries, where a 1,024-character name takes at most 4 KB
MAX_TAR_EXTENDED_TOTAL = 8 * 1024 * 1024
_TAR_EXTENDED = frozenset(
    {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
)


class _TarBudget:
    def __init__(self, max_bytes: int, max_headers: int) -> None:
        self.max_bytes = max_bytes
        self.max_headers = max_headers
        self.charged = 0
        self.headers = 0
        self.chain = 0
        self.extended = 0

    def charge(self, size: int) -> None:
        self.charged += size
        if self.charged > self.max_bytes:
            raise _too_large(f"The archive would unpack to more than {self.max_bytes} bytes.", self.max_bytes)


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that checks a header's declared size before tarfile acts on it."""

    def _proc_member(self, archive: Any) -> Any:
        budget: _TarBudget = archive.kiln_budget
        budget.headers += 1
        if budget.headers > budget.max_headers:
            raise _too_large(f"The archive has more than {budget.max_headers} headers.", budget.max_headers)
        if self.size < 0:
            raise ArchiveRejected("An archive header declares a negative size.", extra={"reason": "negative_size"})
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise self._sparse()
        budget.charge(tarfile.BLOCKSIZE)
        if self.type in _TAR_EXTENDED:
            budget.chain += 1
            if self.size > MAX_TAR_EXTENDED_HEADER:
                raise ArchiveRejected(
                    f"The archive has an extended (long name or pax) header of {self.size} bytes; "
                    f"at most {MAX_TAR_EXTENDED_HEADER} bytes are allowed.",
                    code="archive_too_large",
                    extra={"limit": MAX_TAR_EXTENDED_HEADER, "reason": "extended_header"},
                )
            if budget.chain > MAX_TAR_EXTENDED_CHAIN:
                raise ArchiveRejected(
                    f"The archive has more than {MAX_TAR_EXTENDED_CHAIN} extended headers in a row.",
                    extra={"limit": MAX_TAR_EXTENDED_CHAIN, "reason": "extended_header_chain"},
                )
            budget.extended += self.size
            if budget.extended > MAX_TAR_EXTENDED_TOTAL:
                raise _too_large(
                    f"The archive's long names and pax headers exceed {MAX_TAR_EXTENDED_TOTAL} bytes.",
                    MAX_TAR_EXTENDED_TOTAL,
                )
            budget.charge(self.size)
        else:
            budget.chain = 0
        return super()._proc_member(archive)  # type: ignore[misc]  # private in the stubs

    @staticmethod
    def _sparse() -> ArchiveRejected:
        return ArchiveRejected(
            "The archive contains a sparse file; only regular files and folders are allowed.",
            extra={"reason": "special"},
        )

    # pax-described GNU sparse files (0.0, 0.1, 1.0): 1.0 reads a map of any length from the data
    def _proc_gnusparse_00(self, *args: Any) -> Any:
        raise self._sparse()

    def _proc_gnusparse_01(self, *args: Any) -> Any:
        raise self._sparse()

    def _proc_gnusparse_10(self, *args: Any) -> Any:
        raise self._sparse()


class _BoundedTarFile(tarfile.TarFile):
    tarinfo = _BoundedTarInfo

    def __init__(self, *args: Any, kiln_budget: _TarBudget, **kwargs: Any) -> None:
        self.kiln_budget = kiln_budget  # read by the first header, inside TarFile.__init__
        super().__init__(*args, **kwargs)


def _tar_members(handle: tarfile.TarFile) -> list[_Member]:
    max_files, _ = _limits()
    budget: _TarBudget = handle.kiln_budget  # type: ignore[attr-defined]
    members: list[_Member] = []
    while True:
        info = handle.next()
        if info is None:
            break
        if len(members) > max_files:
            break
        if info.size > settings.MAX_FILE_SIZE:
            raise _too_large(
                f"The archive entry '{info.name[:300]}' is larger than {settings.MAX_FILE_SIZE} bytes.",
                settings.MAX_FILE_SIZE,
                entry=info.name[:300],
            )
        budget.charge(info.size)  # before tarfile skips (or reads) the data
        if not (info.isreg() or info.isdir()):
            kind = "a link" if (info.issym() or info.islnk()) else "a device or special file"
            raise ArchiveRejected(
                f"The archive entry '{info.name[:300]}' is {kind}; only regular files and folders are allowed.",
                extra={"entry": info.name[:300], "reason": "link" if (info.issym() or info.islnk()) else "special"},
            )
        name = _check_member_name(info.name, is_dir=info.isdir())
        mode = 0o755 if info.mode & stat.S_IXUSR else 0o644
        members.append(_Member(name=name, is_dir=info.isdir(), size=info.size, mode=mode, ref=info))
    return members


def _strip_single_top(members: list[_Member]) -> tuple[list[_Member], str]:
    """The template's files: the archive's top level, or its one top folder, holds the file that
    names a format (template.yaml, copier.yml/copier.yaml, cookiecutter.json: `formats`)."""
    members = [m for m in members if m.name]  # the archive's `./` entry
    names = {m.name for m in members}
    config_files = formats.config_files()
    if any(name in names for name in config_files):
        return members, ""
    tops = {m.name.split("/", 1)[0] for m in members}
    if len(tops) == 1:
        top = tops.pop()
        if any(f"{top}/{name}" in names for name in config_files):
            inner = [
                _Member(name=m.name[len(top) + 1 :], is_dir=m.is_dir, size=m.size, mode=m.mode, ref=m.ref)
                for m in members
                if m.name != top
            ]
            return inner, top
    raise ValidationFailed(
        f"The archive has no {', '.join(config_files[:-1])} or {config_files[-1]} at its top level (or inside one "
        "top-level folder).",
        code="template_invalid",
        extra={"looked_for": list(config_files)},
    )


def _read_limited(stream: IO[bytes], declared: int, name: str) -> bytes:
    data = stream.read(declared + 1)
    if len(data) != declared:
        raise ArchiveRejected(f"The archive entry '{name}' does not match its declared size.", extra={"entry": name})
    return data


def template_upload(
    *, archive: IO[bytes], size: int, user: Any, slug: str | None = None, version: str | None = None
) -> ProjectTemplate:
    """Check an uploaded zip/tar.gz completely, then store it as a template version.

    A native template names itself (template.yaml's slug and version); a Cookiecutter or Copier
    template has no such names, so the caller gives them (`slug`, `version`)."""
    if size > settings.KILN_TEMPLATE_UPLOAD_MAX_BYTES:
        raise ValidationFailed(
            f"The archive is larger than {settings.KILN_TEMPLATE_UPLOAD_MAX_BYTES} bytes.",
            code="archive_too_large",
            extra={"limit": settings.KILN_TEMPLATE_UPLOAD_MAX_BYTES},
        )
    payload = archive.read(settings.KILN_TEMPLATE_UPLOAD_MAX_BYTES + 1)
    if len(payload) > settings.KILN_TEMPLATE_UPLOAD_MAX_BYTES:
        raise ValidationFailed("The archive is too large.", code="archive_too_large")
    opened, members = _open_archive(payload)
    try:
        _budget(members)
        members, _top = _strip_single_top(members)
        _check_clashes(members)
        return _store_upload(opened, members, user, slug=slug, version=version)
    finally:
        opened.close()


def _check_clashes(members: list[_Member]) -> None:
    """Two entries that are one file on a case-insensitive or normalising file system, or a file
    where a folder is: refused before anything is written (`duplicate_output_path`)."""
    paths = PathSet()
    try:
        for member in members:
            if member.name and not member.is_dir:
                paths.add(member.name)
        for member in members:
            if member.name and member.is_dir:
                paths.add_folder(member.name)
    except DuplicatePath as exc:
        raise ArchiveRejected(
            f"The archive cannot be stored: {exc.message}",
            code="duplicate_output_path",
            extra={"entry": exc.extra["path"], "other": exc.extra["other"], "reason": exc.reason},
        ) from None


def _open_archive(payload: bytes) -> tuple[zipfile.ZipFile | tarfile.TarFile, list[_Member]]:
    buffer = io.BytesIO(payload)
    opened: zipfile.ZipFile | tarfile.TarFile | None = None
    try:
        if zipfile.is_zipfile(buffer):
            _zip_precheck(payload)
            buffer.seek(0)
            try:
                opened = zipfile.ZipFile(buffer)
            except UnicodeDecodeError:  # a name flagged as UTF-8 that is not
                raise ArchiveRejected(
                    "An archive entry has a name that is not valid UTF-8; names must be UTF-8 text.",
                    extra={"reason": "not_utf8"},
                ) from None
            return opened, _zip_members(opened)
        buffer.seek(0)
        max_files, max_bytes = _limits()
        budget = _TarBudget(max_bytes, max_headers=4 * (max_files + 1))
        tar: tarfile.TarFile = _BoundedTarFile.open(  # type: ignore[call-overload]  # kiln_budget: our own
            fileobj=buffer, mode="r:*", kiln_budget=budget, encoding="utf-8", errors="surrogateescape"
        )
        opened = tar
        return opened, _tar_members(tar)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if opened is not None:
            opened.close()
        raise ValidationFailed("The upload is not a readable zip or tar.gz archive.", code="archive_invalid") from exc
    except ApplicationError:
        if opened is not None:
            opened.close()
        raise


def _store_upload(
    opened: zipfile.ZipFile | tarfile.TarFile,
    members: list[_Member],
    user: Any,
    *,
    slug: str | None = None,
    version: str | None = None,
) -> ProjectTemplate:
    storage = Path(settings.KILN_TEMPLATES_DIR)
    storage.mkdir(parents=True, exist_ok=True)
    staging = storage / f".upload-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        writer = SafeWriter(staging)
        for member in members:
            if member.is_dir or not member.name:
                continue
            if isinstance(opened, zipfile.ZipFile):
                try:
                    with opened.open(member.ref) as stream:
                        data = _read_limited(stream, member.size, member.name)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                    raise ValidationFailed(
                        f"The archive entry '{member.name}' is corrupt or uses an unsupported compression.",
                        code="archive_invalid",
                        extra={"entry": member.name},
                    ) from exc
            else:
                extracted = opened.extractfile(member.ref)
                if extracted is None:
                    raise ArchiveRejected(
                        f"The archive entry '{member.name}' cannot be read.", extra={"entry": member.name}
                    )
                data = _read_limited(extracted, member.size, member.name)
            writer.write(member.name, data, member.mode)
        fmt = formats.detect(staging)
        if fmt.id != "native":
            return _store_described(staging, fmt.id, user, slug=slug, label=version)
        _names_match_manifest(staging, slug=slug, version=version)
        scanned = scan_template(staging)
        slug = scanned.manifest.slug
        existing = ProjectTemplate.objects.filter(slug=slug).first()
        if existing is not None and not template_may_add_version(existing, user):
            raise ValidationFailed(
                f"A template named '{slug}' already exists. Choose another slug in {MANIFEST_NAME}.",
                code="template_exists",
                extra={"slug": slug},
            )
        from apps.templates.services.upload_checks import check_uploaded_template

        check_uploaded_template(scanned)  # parameters described, every Jinja file compiles (400 naming file, line)
        relative = f"{slug}/{scanned.checksum[:16]}"
        final = storage / relative
        final.parent.mkdir(parents=True, exist_ok=True)
        if not final.exists():
            os.rename(staging, final)
        stored = scan_template(final)
        return version_record(
            stored,
            source=TemplateSource.UPLOAD,
            source_path=relative,
            user=user,
            may_add=lambda template: template_may_add_version(template, user),  # again, under the row lock
        ).template
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _names_match_manifest(folder: Path, *, slug: str | None, version: str | None) -> None:
    """A native template names itself; a `slug` / `version` sent beside it must agree."""
    manifest = parse_manifest((folder / MANIFEST_NAME).read_bytes())
    for key, given, own in (("slug", slug, manifest.slug), ("version", version, manifest.version)):
        if given and given != own:
            raise ValidationFailed(
                f"'{key}' is {given!r} but the template's {MANIFEST_NAME} says {own!r}; a native template names "
                f"itself (leave '{key}' out or make them agree).",
                extra={"fields": {key: [f"{MANIFEST_NAME} says {own!r}."]}},
            )


def _store_described(
    staging: Path, format_id: str, user: Any, *, slug: str | None, label: str | None
) -> ProjectTemplate:
    """A Cookiecutter or Copier upload: described by its format, recorded as `slug` version `label`."""
    errors: dict[str, list[str]] = {}
    if not slug:
        errors["slug"] = [f"A {format_id} template does not name itself: send the template's slug."]
    elif not SLUG_RE.match(slug):
        errors["slug"] = ["Lowercase letters, digits and dashes (1-100), starting and ending with a letter or digit."]
    if not label:
        errors["version"] = [f"A {format_id} template has no version of its own: send a version label (e.g. 1.0.0)."]
    elif not VERSION_RE.match(label):
        errors["version"] = ["A version label such as 1.2.3 or 2024.06-rc1 (letters, digits, '.', '+', '_', '-')."]
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(f"Invalid upload: {first}: {errors[first][0]}", extra={"fields": errors})
    assert slug and label
    described = formats.describe(staging, format_id)
    existing = ProjectTemplate.objects.filter(slug=slug).first()
    if existing is not None and not template_may_add_version(existing, user):
        raise ValidationFailed(
            f"A template named '{slug}' already exists. Choose another slug.",
            code="template_exists",
            extra={"slug": slug},
        )
    storage = Path(settings.KILN_TEMPLATES_DIR)
    relative = f"{slug}/{described.checksum[:16]}"
    final = storage / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    if not final.exists():
        os.rename(staging, final)
    return version_record_described(
        folder=final,
        described=formats.describe(final, format_id),
        slug=slug,
        label=label,
        source=TemplateSource.UPLOAD,
        source_path=relative,
        user=user,
        may_add=lambda template: template_may_add_version(template, user),  # again, under the row lock
    ).template
