"""The merge engine, case by case (apps/updates/services/merge.py).

Each test states base (the last render), theirs (the new render) and ours (the repository
now), and checks the path's outcome and exactly what would be written on top of ours.
Conflicted text is compared with what `git merge-file` itself writes for the same three
inputs and labels (run here directly), so the markers are git's, labelled as Copier labels them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from apps.projects.services.gitops import GIT_MODE_EXECUTABLE, GIT_MODE_FILE, FileChange, blob_id
from apps.updates.services.merge import (
    LABELS,
    MergeLimits,
    MergePolicy,
    MergeResult,
    Outcome,
    UpdateTooLarge,
    matches,
    merge_trees,
)
from apps.updates.tests.trees import Content, tree

LIMITS = MergeLimits(max_files=1000, max_merge_bytes=1 << 20, file_seconds=10, total_seconds=60)

LINES = "".join(f"line {i}\n" for i in range(1, 21))


def edit(text: str, number: int, new: str) -> str:
    return text.replace(f"line {number}\n", f"{new}\n")


def run(
    tmp_path: Path,
    base: dict[str, Content],
    theirs: dict[str, Content],
    ours: dict[str, Content],
    policy: MergePolicy | None = None,
    limits: MergeLimits = LIMITS,
) -> MergeResult:
    return merge_trees(
        base=tree(base),
        theirs=tree(theirs),
        ours=tree(ours),
        policy=policy or MergePolicy(),
        limits=limits,
        scratch=tmp_path / "scratch",
    )


def outcome(result: MergeResult, path: str) -> Outcome:
    return next(f.outcome for f in result.files if f.path == path)


def git_merge_file(tmp_path: Path, ours: str, base: str, theirs: str) -> bytes:
    folder = tmp_path / "reference"
    folder.mkdir(exist_ok=True)
    for name, text in (("o", ours), ("b", base), ("t", theirs)):
        (folder / name).write_text(text)
    args = ["git", "merge-file", "-p"]
    for label in LABELS:
        args += ["-L", label]
    proc = subprocess.run([*args, "o", "b", "t"], cwd=folder, capture_output=True, check=False)
    assert 0 <= proc.returncode < 128
    return proc.stdout


def test_template_only_change_is_taken(tmp_path: Path) -> None:
    new = edit(LINES, 3, "line three")
    result = run(tmp_path, {"a.txt": LINES}, {"a.txt": new}, {"a.txt": LINES})
    assert outcome(result, "a.txt") == Outcome.UPDATED
    assert result.changes == {"a.txt": FileChange(mode=GIT_MODE_FILE, data=new.encode())}


def test_repository_only_change_is_kept(tmp_path: Path) -> None:
    mine = edit(LINES, 3, "my line")
    result = run(tmp_path, {"a.txt": LINES}, {"a.txt": LINES}, {"a.txt": mine})
    assert outcome(result, "a.txt") == Outcome.KEPT
    assert result.changes == {}


def test_both_changed_different_hunks_merge_cleanly(tmp_path: Path) -> None:
    theirs = edit(LINES, 2, "template line")
    ours = edit(LINES, 18, "my line")
    result = run(tmp_path, {"a.txt": LINES}, {"a.txt": theirs}, {"a.txt": ours})
    assert outcome(result, "a.txt") == Outcome.MERGED
    expected = edit(edit(LINES, 2, "template line"), 18, "my line")
    assert result.changes["a.txt"] == FileChange(mode=GIT_MODE_FILE, data=expected.encode())
    assert result.conflicts == []


def test_both_changed_same_hunk_is_a_conflict_with_copier_labels(tmp_path: Path) -> None:
    theirs = edit(LINES, 10, "template ten")
    ours = edit(LINES, 10, "my ten")
    result = run(tmp_path, {"a.txt": LINES}, {"a.txt": theirs}, {"a.txt": ours})
    assert outcome(result, "a.txt") == Outcome.CONFLICT
    written = result.changes["a.txt"]
    assert written is not None and written.data is not None
    assert written.data == git_merge_file(tmp_path, ours, LINES, theirs)
    text = written.data.decode()
    assert "<<<<<<< before updating\nmy ten\n=======\ntemplate ten\n>>>>>>> after updating\n" in text
    assert result.conflicts == ["a.txt"]


def test_same_change_on_both_sides_is_unchanged(tmp_path: Path) -> None:
    same = edit(LINES, 5, "five")
    result = run(tmp_path, {"a.txt": LINES}, {"a.txt": same}, {"a.txt": same})
    assert outcome(result, "a.txt") == Outcome.UNCHANGED
    assert result.changes == {}


def test_file_deleted_in_repository_stays_deleted_when_template_changes_it(tmp_path: Path) -> None:
    result = run(tmp_path, {"a.txt": LINES, "b": "b\n"}, {"a.txt": edit(LINES, 1, "x"), "b": "b\n"}, {"b": "b\n"})
    assert outcome(result, "a.txt") == Outcome.KEPT_DELETED
    assert "a.txt" not in result.changes


def test_file_deleted_in_repository_and_unchanged_by_template(tmp_path: Path) -> None:
    result = run(tmp_path, {"a.txt": LINES}, {"a.txt": LINES}, {})
    assert outcome(result, "a.txt") == Outcome.KEPT_DELETED
    assert result.changes == {}


def test_file_dropped_by_template_is_deleted_when_untouched(tmp_path: Path) -> None:
    result = run(tmp_path, {"old.txt": "x\n", "b": "b\n"}, {"b": "b\n"}, {"old.txt": "x\n", "b": "b\n"})
    assert outcome(result, "old.txt") == Outcome.DELETED
    assert result.changes == {"old.txt": None}


def test_file_dropped_by_template_but_changed_in_repository_is_a_conflict_and_kept(tmp_path: Path) -> None:
    result = run(tmp_path, {"old.txt": "x\n"}, {}, {"old.txt": "x\nmine\n"})
    assert outcome(result, "old.txt") == Outcome.CONFLICT
    assert result.changes == {}  # the repository's file stays as it is
    assert "deleted by the template" in result.files[0].reason


def test_file_added_by_both_differently_conflicts_against_an_empty_base(tmp_path: Path) -> None:
    result = run(tmp_path, {}, {"new.cfg": "template = 1\n"}, {"new.cfg": "mine = 2\n"})
    assert outcome(result, "new.cfg") == Outcome.CONFLICT
    written = result.changes["new.cfg"]
    assert written is not None
    assert written.data == git_merge_file(tmp_path, "mine = 2\n", "", "template = 1\n")
    assert written.data == b"<<<<<<< before updating\nmine = 2\n=======\ntemplate = 1\n>>>>>>> after updating\n"


def test_file_added_by_both_identically_is_unchanged(tmp_path: Path) -> None:
    result = run(tmp_path, {}, {"new.cfg": "same\n"}, {"new.cfg": "same\n"})
    assert outcome(result, "new.cfg") == Outcome.UNCHANGED


def test_file_added_by_template_only(tmp_path: Path) -> None:
    result = run(tmp_path, {}, {"new.cfg": "x\n"}, {"mine.txt": "m\n"})
    assert outcome(result, "new.cfg") == Outcome.ADDED
    assert result.changes == {"new.cfg": FileChange(mode=GIT_MODE_FILE, data=b"x\n")}
    assert [f.path for f in result.files] == ["new.cfg"]  # the repository's own files are not reported


def test_binary_changed_on_both_sides_is_a_conflict_and_the_repository_version_is_kept(tmp_path: Path) -> None:
    base, theirs, ours = b"\x89PNG\0base", b"\x89PNG\0theirs", b"\x89PNG\0ours"
    result = run(tmp_path, {"logo.png": base}, {"logo.png": theirs}, {"logo.png": ours})
    assert outcome(result, "logo.png") == Outcome.CONFLICT
    assert result.changes == {}
    assert "binary" in result.files[0].reason


def test_binary_changed_by_template_only_is_taken(tmp_path: Path) -> None:
    result = run(tmp_path, {"logo.png": b"\0a"}, {"logo.png": b"\0b"}, {"logo.png": b"\0a"})
    assert outcome(result, "logo.png") == Outcome.UPDATED
    assert result.changes["logo.png"] == FileChange(mode=GIT_MODE_FILE, data=b"\0b")


def test_mode_change_by_template_is_taken(tmp_path: Path) -> None:
    result = run(tmp_path, {"run.sh": "echo\n"}, {"run.sh": ("echo\n", 0o755)}, {"run.sh": "echo\n"})
    assert outcome(result, "run.sh") == Outcome.UPDATED
    assert result.changes["run.sh"] == FileChange(mode=GIT_MODE_EXECUTABLE, data=b"echo\n")


def test_mode_change_by_template_merges_with_a_content_change_in_the_repository(tmp_path: Path) -> None:
    result = run(tmp_path, {"run.sh": "echo\n"}, {"run.sh": ("echo\n", 0o755)}, {"run.sh": "echo mine\n"})
    assert outcome(result, "run.sh") == Outcome.MERGED
    # the repository's bytes (by blob id: the branch has them) with the template's executable bit
    assert result.changes["run.sh"] == FileChange(mode=GIT_MODE_EXECUTABLE, oid=blob_id(b"echo mine\n"))


def test_mode_change_in_repository_is_kept_while_template_content_is_taken(tmp_path: Path) -> None:
    result = run(tmp_path, {"run.sh": "echo\n"}, {"run.sh": "echo new\n"}, {"run.sh": ("echo\n", 0o755)})
    assert outcome(result, "run.sh") == Outcome.MERGED
    assert result.changes["run.sh"] == FileChange(mode=GIT_MODE_EXECUTABLE, data=b"echo new\n")


def test_declared_excludes_leave_the_repository_file_alone(tmp_path: Path) -> None:
    policy = MergePolicy(exclude=("docs/",))
    result = run(
        tmp_path,
        {"docs/a.md": "a\n", "x": "1\n"},
        {"x": "2\n"},  # the new version no longer ships docs/ and excludes it
        {"docs/a.md": "a\n", "x": "1\n"},
        policy,
    )
    assert [f.path for f in result.files] == ["x"]
    assert result.changes == {"x": FileChange(mode=GIT_MODE_FILE, data=b"2\n")}


def test_skip_if_exists_is_created_when_missing_and_never_changed(tmp_path: Path) -> None:
    policy = MergePolicy(skip_if_exists=("config/*.env",))
    result = run(
        tmp_path,
        {"config/a.env": "A=1\n", "config/b.env": "B=1\n"},
        {"config/a.env": "A=2\n", "config/b.env": "B=2\n"},
        {"config/a.env": "A=1\n"},  # b.env deleted by the user: recreated, as Copier does
        policy,
    )
    assert outcome(result, "config/a.env") == Outcome.KEPT
    assert outcome(result, "config/b.env") == Outcome.ADDED
    assert result.changes == {"config/b.env": FileChange(mode=GIT_MODE_FILE, data=b"B=2\n")}


def test_template_owned_answers_file_takes_the_new_render(tmp_path: Path) -> None:
    policy = MergePolicy(template_owned=(".copier-answers.yml",))
    result = run(
        tmp_path,
        {".copier-answers.yml": "_commit: v1\n"},
        {".copier-answers.yml": "_commit: v2\n"},
        {".copier-answers.yml": "_commit: v1\nhand: edit\n"},
        policy,
    )
    assert outcome(result, ".copier-answers.yml") == Outcome.UPDATED
    assert result.changes[".copier-answers.yml"] == FileChange(mode=GIT_MODE_FILE, data=b"_commit: v2\n")


def test_a_file_where_the_repository_has_a_folder_is_a_conflict(tmp_path: Path) -> None:
    result = run(tmp_path, {}, {"src": "file\n"}, {"src/main.py": "print()\n"})
    assert outcome(result, "src") == Outcome.CONFLICT
    assert result.changes == {}


def test_report_lists_conflicts_first(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        {"a": LINES, "b": "b\n", "c": "c\n"},
        {"a": edit(LINES, 1, "t"), "b": "b2\n", "c": "c\n", "d": "d\n"},
        {"a": edit(LINES, 1, "o"), "b": "b\n", "c": "c\n"},
    )
    assert [(f.path, str(f.outcome)) for f in result.report()] == [
        ("a", "conflict"),
        ("b", "updated"),
        ("d", "added"),
        ("c", "unchanged"),
    ]
    assert result.counts() == {"conflict": 1, "updated": 1, "unchanged": 1, "added": 1}


def test_too_many_files_is_refused(tmp_path: Path) -> None:
    small = MergeLimits(max_files=3, max_merge_bytes=100, file_seconds=5, total_seconds=5)
    with pytest.raises(UpdateTooLarge) as refused:
        run(tmp_path, {"a": "1", "b": "1"}, {"a": "2", "c": "1"}, {"d": "1"}, limits=small)
    assert refused.value.code == "update_too_large" and refused.value.status_code == 422


def test_a_file_too_large_to_merge_is_a_conflict_and_kept(tmp_path: Path) -> None:
    small = MergeLimits(max_files=10, max_merge_bytes=50, file_seconds=5, total_seconds=5)
    big = "x\n" * 40
    result = run(tmp_path, {"a": big}, {"a": big + "t\n"}, {"a": "o\n" + big}, limits=small)
    assert outcome(result, "a") == Outcome.CONFLICT and result.changes == {}


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.pyc", "a/b/c.pyc", True),
        ("docs/", "docs/x/y.md", True),
        ("docs/*", "docs/x.md", True),
        ("docs", "docs/x.md", True),
        ("docs/", "docs.md", False),
        (".env", "sub/.env", True),
        ("config/*.env", "config/a.env", True),
        ("config/*.env", "other/config/a.env", True),
        ("README.md", "READMEXmd", False),
    ],
)
def test_glob_matching(pattern: str, path: str, expected: bool) -> None:
    assert matches((pattern,), path) is expected
