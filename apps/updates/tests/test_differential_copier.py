"""Differential: Kiln's update of a Copier-format project against the real `copier update`.

For each scenario of `copier_fixtures` the real copier 9.19.1 (one subprocess for all of them,
`real_copier.py`) generates the project from version 1.0.0, the user's commits are replayed on
it, and `copier update --defaults --conflict inline` brings it to 2.0.0. Kiln starts from the
same commit: *base* and *theirs* are its own Copier engine's renders of the two versions
(answers as the first generation recorded them, plus the changed ones), *ours* is the
project's HEAD read with git, and the merge engine computes the update. The updated trees
must be equal byte for byte, executable bits and conflict markers included.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apps.updates.tests.copier_fixtures import SCENARIOS, Scenario, build_template_repo, write_files

REAL_COPIER = Path(__file__).resolve().parent / "real_copier.py"


@dataclass
class RealUpdate:
    template: Path
    project: Path
    ours: str
    seconds: float


def read_worktree(root: Path) -> dict[str, tuple[bytes, bool]]:
    tree: dict[str, tuple[bytes, bool]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (Path(folder) == root and d == ".git")]
        for name in files:
            path = Path(folder) / name
            st = path.lstat()
            assert stat.S_ISREG(st.st_mode), path
            tree[path.relative_to(root).as_posix()] = (path.read_bytes(), bool(st.st_mode & stat.S_IXUSR))
    return tree


@pytest.fixture(scope="module")
def real_updates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RealUpdate]:
    work = tmp_path_factory.mktemp("copier-update")
    home = work / "home"
    home.mkdir()
    jobs, templates = [], {}
    for scenario in SCENARIOS:
        template = build_template_repo(scenario.versions, work / "templates" / scenario.id, home)
        templates[scenario.id] = template
        jobs.append(
            {
                "id": scenario.id,
                "template": str(template),
                "project": str(work / "projects" / scenario.id),
                "answers": dict(scenario.answers),
                "from_version": next(iter(scenario.versions)),
                "to_version": scenario.to_version,
                "new_answers": dict(scenario.new_answers),
                "commits": [
                    {"message": c.message, "files": dict(c.files), "modes": dict(c.modes)} for c in scenario.commits
                ],
            }
        )
    jobs_file = work / "jobs.json"
    jobs_file.write_text(json.dumps(jobs), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "KILN", "DATABASE"))}
    proc = subprocess.run(
        [sys.executable, str(REAL_COPIER), str(jobs_file)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=work,
        env=env,
        check=False,
    )
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            data = json.loads(line)
            assert data["ok"], data["error"]
            job = next(j for j in jobs if j["id"] == data["id"])
            results[data["id"]] = RealUpdate(templates[data["id"]], Path(job["project"]), data["ours"], data["seconds"])
    assert set(results) == {s.id for s in SCENARIOS}, proc.stderr[-3000:]
    return results


def kiln_update(scenario: Scenario, real: RealUpdate, work: Path) -> dict[str, tuple[bytes, bool]]:
    """Kiln's result tree for the scenario (see the module docstring)."""
    from apps.templates.services.formats import copier
    from apps.templates.services.formats._engine import SourceInfo
    from apps.updates.services.merge import MergeLimits, merge_trees
    from apps.updates.services.policies import copier_policy
    from apps.updates.services.trees import apply_changes, git_tree, memory_tree

    labels = list(scenario.versions)
    renders: dict[str, Any] = {}
    remembered: dict[str, Any] = {}
    for label in (labels[0], scenario.to_version):
        folder = work / "versions" / label
        write_files(folder, scenario.versions[label])
        prepared = copier.prepare(folder)
        source = SourceInfo(
            url=str(real.template),
            commit=label,
            repo_dir=str(real.template),
            output_dir=str(real.project.parent),
            folder_name=real.project.name,
        )
        answers = dict(scenario.answers) if label == labels[0] else {**remembered, **scenario.new_answers}
        files: dict[str, tuple[bytes, int]] = {}

        class Sink:
            def add(self, path: str, data: bytes, mode: int, sha256: str, _files: dict[str, Any] = files) -> None:
                _files[path] = (data, mode)

        copier.render(prepared, answers, Sink(), source=source)
        if label == labels[0]:
            resolved = copier.validate(prepared, answers, source)
            remembered = {k: v for k, v in resolved.remember.items() if not k.startswith("_")}
        renders[label] = (files, prepared.spec)
    base_files, _ = renders[labels[0]]
    theirs_files, new_spec = renders[scenario.to_version]
    ours = git_tree(real.project / ".git", real.ours)
    result = merge_trees(
        base=memory_tree(base_files),
        theirs=memory_tree(theirs_files),
        ours=ours,
        policy=copier_policy(new_spec),
        limits=MergeLimits(max_files=10_000, max_merge_bytes=1 << 20, file_seconds=10, total_seconds=60),
        scratch=work / "scratch",
    )
    return {path: (data, bool(mode & 0o100)) for path, (data, mode) in apply_changes(ours, result.changes).items()}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_kiln_update_equals_copier_update(
    scenario: Scenario, real_updates: dict[str, RealUpdate], tmp_path: Path
) -> None:
    real = real_updates[scenario.id]
    expected = read_worktree(real.project)
    got = kiln_update(scenario, real, tmp_path)
    problems = []
    for path in sorted(set(expected) | set(got)):
        if path not in got:
            problems.append(f"missing in Kiln's result: {path}")
        elif path not in expected:
            problems.append(f"only in Kiln's result: {path}")
        else:
            (a, ax), (b, bx) = expected[path], got[path]
            if a != b:
                problems.append(f"{path}: contents differ\n  copier: {a[:600]!r}\n  kiln:   {b[:600]!r}")
            if ax != bx:
                problems.append(f"{path}: executable bit differs (copier {ax}, kiln {bx})")
    assert not problems, "\n".join(problems)


def test_the_scenarios_exercise_every_merge_path(real_updates: dict[str, RealUpdate]) -> None:
    """The fixtures are not trivially equal: copier itself left conflicts, merges and deletions."""
    history = read_worktree(real_updates["svc-history"].project)
    assert b"<<<<<<< before updating" in history["src/shop/app.py"][0]
    assert b"<<<<<<< before updating" in history["CHANGELOG.md"][0]  # added by both differently
    assert history["pyproject.toml"][0].count(b"click>=8.1.7") == 1  # merged cleanly with 0.2.0
    assert b'version = "0.2.0"' in history["pyproject.toml"][0]
    assert "Dockerfile" not in history and "docs/old-guide.md" not in history
    assert history["scripts/lint.sh"][1] is True and history["scripts/run.sh"][1] is False
    assert history[".env"][0] == b"APP_NAME=shop\nDEBUG=1\nSECRET=local\n"
    lib = read_worktree(real_updates["lib-new-answers"].project)
    assert b"return 'geo!'" in lib["geo/core.py"][0] and b"'stopped'" in lib["geo/core.py"][0]
    assert b"Geometry helpers" in lib["setup.cfg"][0]
    assert lib["notes.txt"][0].endswith(b"And ours.\n")
    assert b"<<<<<<< before updating" in lib["tox.ini"][0]
