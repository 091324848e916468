"""The one safe-join: every rule of `clean_relative_path`, and `SafeWriter` never following links."""

from __future__ import annotations

import os

import pytest

from core.safe_paths import SafeWriter, UnsafePath, clean_relative_path


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
