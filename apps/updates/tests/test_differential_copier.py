"""Differential: Kiln's update of a Copier-format project against the real `copier update`.

For each scenario of `copier_fixtures` the real copier 9.19.1 (one subprocess for all of them,
`real_copier.py`) generates the project from version 1.0.0, the user's commits are replayed on
it, and `copier update --defaults --conflict inline` brings it to 2.0.0. Kiln starts from the
same commit, through its own services end to end: the template's versions recorded as Kiln
Copier-format versions of a git template, the repository either generated and exported by Kiln
(the team's commits replayed on it) or adopted (its answers file names the template by URL and
the version by `_commit`), the update job run to 2.0.0 as a branch
(*base*: the adopted version rendered with the recorded answers; *theirs*: the new version
with those answers plus the changed ones; *ours*: the repository's HEAD fetched with git).
The branch's tree must equal Copier's result byte for byte, answers file, executable bits and
conflict markers included.
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
from django.conf import settings as django_settings

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


# Generated and exported by Kiln, the team's commits replayed on Kiln's repository; the other
# scenarios start from the repository Copier made, adopted.
EXPORTED_BY_KILN = {"svc-history"}


def adopted(scenario: Scenario, real: RealUpdate, bare: Path, cast: Any) -> Any:
    """The repository Copier made (its HEAD before the update) pushed to `bare` and adopted: its
    answers file names the template (by URL) and the version; Kiln renders that version."""
    from apps.updates.services.adoptions import adoption_execute, adoption_start

    subprocess.run(
        ["git", "push", "-q", f"file://{bare}", f"{real.ours}:refs/heads/main"],
        cwd=real.project,
        check=True,
        capture_output=True,
    )
    adoption = adoption_start(
        project=cast.project, data={"provider": "git", "remote_url": f"file://{bare}"}, actor=cast.alice, enqueue=False
    )
    adoption = adoption_execute(adoption_id=adoption.pk, owner="test:1:adopt")
    assert adoption.status == "completed", adoption.error
    assert (adoption.template.slug, adoption.version) == (scenario.id, next(iter(scenario.versions)))
    return adoption.generated


def exported_by_kiln(scenario: Scenario, bare: Path, work: Path, cast: Any) -> Any:
    """Version 1.0.0 generated by Kiln with the scenario's answers, exported to `bare`, then the
    team's commits made on a clone and pushed."""
    from apps.projects.services.generation import generated_project_execute, generated_project_start
    from apps.updates.tests.conftest import export_to
    from apps.updates.tests.real_copier import apply_commit, git

    row = generated_project_start(
        project=cast.project,
        template_slug=scenario.id,
        parameters=dict(scenario.answers),
        actor=cast.alice,
        enqueue=False,
        version=next(iter(scenario.versions)),
    )
    generated = generated_project_execute(generated_id=row.pk, owner="test:1:gen").generated
    assert generated.status == "completed", generated.error
    export_to(generated, cast.alice, {"provider": "git", "remote_url": f"file://{bare}"})
    clone = work / "clone"
    git(["clone", "-q", f"file://{bare}", str(clone)], work)
    for commit in scenario.commits:
        apply_commit(clone, {"message": commit.message, "files": dict(commit.files), "modes": dict(commit.modes)})
    git(["push", "-q", "origin", "HEAD:main"], clone)
    return generated


def kiln_update(scenario: Scenario, real: RealUpdate, work: Path, cast: Any) -> dict[str, tuple[bytes, bool]]:
    """Kiln's result tree for the scenario, the way a platform team would get it: the template's
    two versions recorded as Copier-format Kiln versions of a git template (URL = the template
    repository, as its `_src_path` says), the repository exported by Kiln or adopted, then the
    update job to `to_version` in `branch` mode; the branch's tree is the result."""
    from apps.templates.models import TemplateSource
    from apps.templates.services import formats
    from apps.templates.services.versions import version_record_described
    from apps.updates.services.trees import git_tree
    from apps.updates.services.updates import update_execute, update_start

    for label, files in scenario.versions.items():
        folder = Path(django_settings.KILN_TEMPLATES_DIR) / scenario.id / label
        write_files(folder, files)
        recorded = version_record_described(
            folder=folder,
            described=formats.describe(folder),
            slug=scenario.id,
            label=label,
            source=TemplateSource.GIT,
            source_path=f"{scenario.id}/{label}",
            template_fields={"git_url": str(real.template)},
            store_blobs=False,
        )
        assert recorded.version.format == "copier"
    bare = work / "target.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    if scenario.id in EXPORTED_BY_KILN:
        generated = exported_by_kiln(scenario, bare, work, cast)
    else:
        generated = adopted(scenario, real, bare, cast)
    update, _ = update_start(
        generated=generated,
        data={"mode": "branch", "to_version": scenario.to_version, "parameters": dict(scenario.new_answers)},
        actor=cast.alice,
        enqueue=False,
    )
    update = update_execute(update_id=update.pk, owner="test:1:update")
    assert update.status == "completed", update.error
    head = update.commit_sha if update.outcome != "nothing_to_update" else real.ours
    result = git_tree(bare, head)
    data = result.read(result.entries)
    return {path: (data[path], entry.mode == 0o100755) for path, entry in result.entries.items()}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
@pytest.mark.django_db
def test_kiln_update_equals_copier_update(
    scenario: Scenario, real_updates: dict[str, RealUpdate], tmp_path: Path, cast: Any
) -> None:
    real = real_updates[scenario.id]
    expected = read_worktree(real.project)
    got = kiln_update(scenario, real, tmp_path, cast)
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
    assert lib["Makefile"][0] == b"test:\n\tpytest\n"  # excluded on updates by a templated _exclude
    assert lib["geo/local.py"][0] == b"SETTING = 'ours'\n"  # a templated _skip_if_exists
