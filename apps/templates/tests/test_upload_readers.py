"""Template archive uploads against hostile headers and names (issue 21, items 1, 4, 7, 12-14).

Every archive is built here, in memory, without ever holding the bomb it describes: a gzip'd
tar whose one header claims megabytes is produced by compressing a repeated chunk.
`tracemalloc` bounds what the reader allocates, a clock what it spends.
"""

from __future__ import annotations

import io
import struct
import tarfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.templates.models import ProjectTemplate
from apps.templates.services.catalog import (
    MAX_TAR_EXTENDED_CHAIN,
    MAX_TAR_EXTENDED_HEADER,
    ArchiveRejected,
    template_upload,
)
from core.exceptions import ApplicationError
from tests.badinput.bombs import (
    MANIFEST,
    extended_header_bomb,
    gzip,
    pax_header_chain,
    tar_header,
    tar_member,
    template_tail,
)

pytestmark = pytest.mark.django_db


# --- building archives --------------------------------------------------------------------------


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT, errors="surrogateescape") as archive:
        for name, data in [("template.yaml", MANIFEST), *members]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(members: list[tuple[str | bytes, bytes]], *, utf8_flag: bool | None = None) -> bytes:
    """A zip; a bytes name is stored as exactly those bytes (zipfile would re-encode it or cut it
    at a NUL), with the UTF-8 flag only when asked."""
    buffer = io.BytesIO()
    raw_names: dict[bytes, bytes] = {}
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("template.yaml", MANIFEST)
        for index, (name, data) in enumerate(members):
            if isinstance(name, bytes):
                placeholder = f"{index:04d}".encode().ljust(len(name), b"@")
                raw_names[placeholder] = name
                archive.writestr(placeholder.decode(), data)
            else:
                archive.writestr(name, data)
    raw = buffer.getvalue()
    for placeholder, name in raw_names.items():
        raw = raw.replace(placeholder, name)
    if utf8_flag is not None:
        raw = _set_utf8_flag(raw, utf8_flag)
    return raw


def _set_utf8_flag(raw: bytes, on: bool) -> bytes:
    patched = bytearray(raw)
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        index = patched.find(signature)
        while index != -1:
            (flags,) = struct.unpack("<H", patched[index + flag_at : index + flag_at + 2])
            flags = flags | 0x800 if on else flags & ~0x800
            patched[index + flag_at : index + flag_at + 2] = struct.pack("<H", flags)
            index = patched.find(signature, index + 4)
    return bytes(patched)


def _upload(cast, payload: bytes) -> ProjectTemplate:
    return template_upload(archive=io.BytesIO(payload), size=len(payload), user=cast.alice)


def _refused(cast, payload: bytes) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        _upload(cast, payload)
    assert caught.value.status_code == 400
    assert not ProjectTemplate.objects.filter(slug="hostile").exists()
    return caught.value


def _bounded(action: Callable[[], object], *, seconds: float, megabytes: float) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        action()
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < megabytes * 1024 * 1024, f"allocated {peak / 1e6:.1f} MB at peak"


# --- item 1: header bombs ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE])
def test_a_huge_long_name_or_pax_header_is_refused_before_it_is_read(cast, kind):
    """20 MB in one header (~20 KB gzip'd): refused at the header, a few MB and well under a second.

    Before: tarfile read the whole header into memory (the audit's 200 MB LongLink: 2.07 GB,
    15.7 s), and a pax header of that size was accepted."""
    payload = extended_header_bomb(kind, 20 * 1024 * 1024)
    assert len(payload) < 100_000

    def attempt() -> None:
        error = _refused(cast, payload)
        assert error.code == "archive_too_large"
        assert error.extra["limit"] == MAX_TAR_EXTENDED_HEADER

    _bounded(attempt, seconds=2.0, megabytes=8)


def test_extended_headers_count_towards_the_uncompressed_budget(cast, settings):
    settings.KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED = 100_000
    names = [(f"{'d' * 200}/{'n' * 200}/{i:04d}-{'x' * 150}.txt", b"") for i in range(300)]  # ~60 KB of names
    error = _refused(cast, _tar(names))
    assert error.code == "archive_too_large"


def test_a_chain_of_extended_headers_is_refused_not_recursed(cast):
    error = _refused(cast, pax_header_chain(3000))  # tarfile recursed once per header
    assert error.code == "archive_unsafe_entry"
    assert error.extra["limit"] == MAX_TAR_EXTENDED_CHAIN


def test_a_negative_size_is_refused(cast):
    header = bytearray(tar_header("a.txt", 0, tarfile.REGTYPE))
    header[124:136] = b"\xff" * 12  # base-256: -1; tarfile would read backwards / everything
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    error = _refused(cast, gzip([bytes(header), template_tail()]))
    assert error.extra["reason"] == "negative_size"


def test_sparse_members_are_refused(cast):
    old_sparse = tar_header("sparse.bin", 0, tarfile.GNUTYPE_SPARSE, fmt=tarfile.GNU_FORMAT)
    error = _refused(cast, gzip([old_sparse, template_tail()]))
    assert "sparse" in error.message
    # pax-described sparse 1.0: its map is read from the data, of any length
    keys = b"".join(
        f"{len(k) + len(v) + 3 + len(str(len(k) + len(v) + 5))} {k}={v}\n".encode()
        for k, v in (("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.realsize", "10"))
    )
    pax = tar_header("././@PaxHeader", len(keys), tarfile.XHDTYPE) + keys.ljust(tarfile.BLOCKSIZE, b"\0")
    error = _refused(cast, gzip([pax, tar_member("sparse.bin", b"9" * 4096), template_tail()]))
    assert "sparse" in error.message


def test_zip_entry_count_is_read_from_the_central_directory_first(cast, settings):
    settings.KILN_TEMPLATE_UPLOAD_MAX_FILES = 50
    payload = _zip([(f"f{i}.txt", b"") for i in range(2000)])

    def attempt() -> None:
        assert _refused(cast, payload).code == "archive_too_large"

    _bounded(attempt, seconds=2.0, megabytes=1)  # zipfile's 2,000 ZipInfo objects would take more


def test_zip_extra_fields_and_comments_count_towards_the_budget(cast, settings):
    settings.KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED = 200_000
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("template.yaml", MANIFEST)
        for i in range(6):
            info = zipfile.ZipInfo(f"f{i}.txt")
            info.extra = struct.pack("<HH", 0xCAFE, 60_000) + b"e" * 60_000
            info.comment = b"c" * 1000
            archive.writestr(info, b"")
        archive.comment = b"z" * 60_000
    error = _refused(cast, buffer.getvalue())
    assert error.code == "archive_too_large"
    assert "extra fields and comments" in error.message


# --- item 4 and 13: a file where a folder is ----------------------------------------------------------


@pytest.mark.parametrize("order", [["x/y.txt", "x"], ["x", "x/y.txt"], ["X/y.txt", "x"], ["q/f", "Q"]])
@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_a_file_and_a_folder_of_one_name_are_a_duplicate_output_path(cast, settings, order, fmt):
    members = [(name, b"1") for name in order]
    error = _refused(cast, _zip(members) if fmt == "zip" else _tar(members))
    assert error.code == "duplicate_output_path"
    assert error.extra["reason"] == "file_and_folder"
    text = f"{error.message} {error.extra}"
    assert str(settings.KILN_TEMPLATES_DIR) not in text and "/.upload-" not in text


def test_an_empty_folder_entry_named_like_a_file_is_refused(cast):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("template.yaml", MANIFEST)
        archive.writestr("notes", b"a file")
        archive.writestr(zipfile.ZipInfo("Notes/"), b"")
    assert _refused(cast, buffer.getvalue()).code == "duplicate_output_path"


# --- item 12: names equal once normalised ------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [("caf\u00e9.txt", "cafe\u0301.txt"), ("README.md", "readme.md"), ("Stra\u00dfe.txt", "STRASSE.txt")],
    ids=["nfc-nfd", "case", "casefold"],
)
@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_names_equal_after_normalisation_and_case_folding_clash(cast, names, fmt):
    members = [(name, b"x") for name in names]
    error = _refused(cast, _zip(members) if fmt == "zip" else _tar(members))
    assert error.code == "duplicate_output_path"
    assert error.extra["reason"] == "same_name"


# --- item 7: names that are not UTF-8 -------------------------------------------------------------------


def test_a_tar_member_name_that_is_not_utf8_is_refused(cast):
    error = _refused(cast, _tar([("caf\udce9.txt", b"x")]))  # written as the bytes caf\xe9.txt
    assert error.code == "archive_unsafe_entry"
    assert error.extra["reason"] == "not_utf8"


@pytest.mark.parametrize("flag", [False, True])
def test_a_zip_member_name_that_is_not_utf8_is_refused(cast, flag):
    error = _refused(cast, _zip([(b"caf\xe9.txt", b"x")], utf8_flag=flag))
    assert error.code == "archive_unsafe_entry"
    assert error.extra["reason"] == "not_utf8"


def test_a_utf8_zip_name_without_the_flag_is_read_as_utf8(cast):
    template = _upload(cast, _zip([("caf\u00e9.txt".encode(), b"x")], utf8_flag=False))
    from apps.templates.services.catalog import template_folder

    assert (template_folder(template) / "caf\u00e9.txt").read_bytes() == b"x"


def test_a_nul_in_a_zip_name_is_refused_not_truncated(cast):
    error = _refused(cast, _zip([(b"evil.txt\0.png", b"x")]))
    assert error.extra["reason"] == "control_character"


# --- item 14: C1 and bidi controls --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a\u0085b.txt", "control_character"),
        ("a\u009bb.txt", "control_character"),
        ("invoice\u202etxt.exe", "format_character"),
        ("a\u2066b.txt", "format_character"),
        ("a\u200fb.txt", "format_character"),
    ],
)
def test_c1_and_bidi_controls_in_member_names_are_refused(cast, name, reason):
    for payload in (_zip([(name, b"x")]), _tar([(name, b"x")])):
        error = _refused(cast, payload)
        assert isinstance(error, ArchiveRejected)
        assert error.extra["reason"] == reason
        assert all(ch.isprintable() for ch in error.message)


# --- the API answers the same ---------------------------------------------------------------------------


def test_the_upload_api_answers_a_header_bomb_with_a_coded_400(api, cast):
    payload = extended_header_bomb(tarfile.GNUTYPE_LONGNAME, 5 * 1024 * 1024)
    response = api(cast.alice).post(
        "/api/v1/templates/", {"archive": SimpleUploadedFile("t.tar.gz", payload)}, format="multipart"
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "archive_too_large"


# --- people's globs (exclude, copy_without_render) become one Python regex --------------------------


@pytest.mark.parametrize(
    "globs",
    [["[" * 20_000], [f"*{i}" for i in range(101)]],
    ids=["quadratic-translate", "too-many"],
)
def test_manifest_globs_are_bounded_before_they_are_compiled(globs):
    from apps.templates.services.formats.native import TemplateInvalid, parse_manifest

    manifest = MANIFEST + b"exclude:\n" + b"".join(f"  - '{glob}'\n".encode() for glob in globs)
    started = time.monotonic()
    with pytest.raises(TemplateInvalid) as caught:  # fnmatch.translate('[' * 20000) alone took 24 s
        parse_manifest(manifest)
    assert caught.value.extra == {"key": "exclude", "reason": "too_large"}
    assert time.monotonic() - started < 1.0


def test_cookiecutter_copy_without_render_globs_are_bounded_too(tmp_path):
    import json as _json

    from apps.templates.services.formats import cookiecutter
    from apps.templates.services.formats._engine import FormatInvalid

    folder = tmp_path / "cc"
    (folder / "{{cookiecutter.name}}").mkdir(parents=True)
    (folder / "{{cookiecutter.name}}" / "x.txt").write_text("x")
    config = {"name": "demo", "_copy_without_render": ["[" * 20_000]}
    (folder / "cookiecutter.json").write_text(_json.dumps(config))
    started = time.monotonic()
    with pytest.raises(FormatInvalid) as caught:
        cookiecutter.load_spec(folder)
    assert "_copy_without_render" in caught.value.message
    assert time.monotonic() - started < 1.0
