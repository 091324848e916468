"""The one safe-join: every rule of `clean_relative_path`, and `SafeWriter` never following links."""

from __future__ import annotations

import os

import pytest

from core.safe_paths import DuplicatePath, PathSet, SafeWriter, UnsafePath, clean_relative_path, path_key


@pytest.mark.parametrize(
    "path",
    ["a.txt", "src/pkg/__init__.py", "deep/" * 100 + "x", "é/ü.txt", "a" * 255, "é" * 127, ".github/workflows/ci.yml"],
)
def test_valid_paths_are_returned_unchanged(path):
    assert clean_relative_path(path) == path


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty"),
        ("a\x00b", "control_character"),
        ("a\nb", "control_character"),
        ("a\x7fb", "control_character"),
        ("a\\b", "backslash"),
        ("/etc/passwd", "absolute"),
        ("C:evil", "absolute"),
        ("x" * 1025, "too_long"),
        ("../x", "traversal"),
        ("a/../../x", "traversal"),
        ("a//b", "empty_segment"),
        ("./a", "empty_segment"),
        ("a/", "empty_segment"),
        (".git/config", "reserved"),
        ("sub/.GIT/hooks/post-checkout", "reserved"),
        ("name.", "trailing_dot_or_space"),
        ("dir /x", "trailing_dot_or_space"),
        ("a" * 256, "too_long"),
        ("é" * 128, "too_long"),  # 256 bytes in UTF-8
        ("a\u0085b", "control_character"),  # C1: NEL
        ("\u009b31m", "control_character"),  # C1: CSI
        ("invoice\u202etxt.exe", "format_character"),  # bidi override
        ("a\u2066b", "format_character"),  # bidi isolates U+2066-2069
        ("a\u2069b", "format_character"),
        ("a\u200eb", "format_character"),  # LRM / RLM
        ("a\u200fb", "format_character"),
        ("READ\u200bME.md", "format_character"),  # zero-width space
        ("caf\udce9.txt", "not_utf8"),  # a name that was b"caf\xe9.txt"
        ("x\ud800", "not_utf8"),
    ],
)
def test_unsafe_paths_are_refused_with_a_reason(path, reason):
    with pytest.raises(UnsafePath) as caught:
        clean_relative_path(path)
    assert caught.value.reason == reason
    shown = caught.value.extra["path"]
    assert all(ch.isprintable() for ch in shown)  # control characters are escaped in messages


def test_safe_writer_writes_modes_and_refuses_links(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    writer = SafeWriter(root)
    writer.write("bin/run.sh", b"#!/bin/sh\n", 0o755)
    writer.write("bin/data.txt", b"x", 0o644)
    assert (root / "bin/run.sh").read_bytes() == b"#!/bin/sh\n"
    assert os.stat(root / "bin/run.sh").st_mode & 0o111
    assert not os.stat(root / "bin/data.txt").st_mode & 0o111

    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "linked").symlink_to(outside)
    with pytest.raises(UnsafePath):
        SafeWriter(root).write("linked/x.txt", b"x", 0o644)
    (root / "file-link").symlink_to(outside / "target.txt")
    with pytest.raises(UnsafePath) as caught:  # O_EXCL | O_NOFOLLOW: never written through
        SafeWriter(root).write("file-link", b"x", 0o644)
    assert caught.value.reason == "exists"
    assert list(outside.iterdir()) == []


def test_path_set_compares_names_normalised_and_finds_files_where_folders_are():
    paths = PathSet()
    for path in ("x/y.txt", "Docs/a.md", "caf\u00e9.txt"):
        paths.add(path)
    clashes = {
        "x/y.txt": "duplicate",
        "X/Y.TXT": "same_name",
        "cafe\u0301.txt": "same_name",  # NFD of an NFC name
        "CAF\u00c9.txt": "same_name",
        "x": "file_and_folder",  # a file where a folder is
        "docs": "file_and_folder",
        "Docs/a.md/b": "file_and_folder",  # a folder where a file is
    }
    for path, reason in clashes.items():
        with pytest.raises(DuplicatePath) as caught:
            paths.add(path)
        assert caught.value.reason == reason, path
        assert caught.value.code == "duplicate_output_path"
    paths.add("x/z.txt")
    paths.add("docs/b.md")  # the same folder, spelled differently: one folder, no clash
    assert path_key("Stra\u00dfe") == path_key("STRASSE")


def test_safe_writer_errors_name_relative_paths_only(tmp_path):
    root = tmp_path / "staging-root"
    root.mkdir()
    writer = SafeWriter(root)
    writer.write("x/y.txt", b"1", 0o644)
    with pytest.raises(DuplicatePath) as caught:
        writer.write("x", b"2", 0o644)  # was a FileExistsError (a 500) naming the absolute path
    assert (caught.value.extra["path"], caught.value.extra["other"]) == ("x", "x/y.txt")
    (root / "plain").write_text("a file this writer did not make")
    with pytest.raises(UnsafePath) as caught_file:
        SafeWriter(root).write("plain/inner.txt", b"3", 0o644)
    assert caught_file.value.reason == "not_a_directory"
    for error in (caught.value, caught_file.value):
        assert str(tmp_path) not in f"{error.message} {error.extra}"
