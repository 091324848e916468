"""Issue 16 item 6: the same template update by Kiln and by `copier update`, same resulting tree.

A Copier-format template (`copier.yml`, one question, the answers file) of N files (1,000 at the
reference size) is a git repository tagged `1.0.0` and `2.0.0`; version 2.0.0 changes one line in
10 % of the files. The project is `copier copy --vcs-ref 1.0.0` of it, committed, then the team's
commit changes 20 files: 17 the template leaves alone and 3 the template changes, on the same line
(three conflicts both tools write inline). Before any round (not timed):

* Kiln: both versions recorded as Copier-format versions of a git template whose URL is the
  template repository (what the answers file's `_src_path` says), the project pushed to a bare
  repository and adopted (`POST /projects/{p}/adoptions/`'s service: the answers file names the
  template and version, Kiln renders that version with the recorded answers).

Timed, whole process, alternating inside each round after a warm-up round:

* Kiln: `python -m bench.kiln_side update` (a Django process: start the update through the
  service, run the job in `branch` mode: render 2.0.0 as a generation, fetch the repository,
  merge, commit, push the branch `kiln/update/...`); before each round the previous round's
  update rows, its generation and the branch are removed (so nothing is reused);
* Copier: `copier update --defaults --conflict inline --vcs-ref 2.0.0` in a fresh copy of the
  project (its working tree is the result).

Every round's results are compared before anything is reported: the tree of Kiln's branch (git
archive) with Copier's working tree (without .git), path → sha256 + executable bit; a difference
fails the section.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    REPO,
    RESULT_PREFIX,
    WORK,
    BenchError,
    Samples,
    TreeDigest,
    clear_dir,
    diff_digests,
    discard,
    kiln_side,
    log,
    ratio,
    run,
    settle,
    timed,
    tool,
    tree_digest,
)
from bench.report import SectionResult, Table, Target, fmt_ratio, stat_cells
from bench.sections import REFERENCE_SIZE, BenchContext

MIN_FILES = 10 * 20  # 10 % changed by the template must hold the team's 3 overlapping files, 17 others
GOAL = 10.0  # copier update ÷ Kiln, whole process, at N = 1,000
USER_CHANGED = 20
OVERLAPPING = 3
LINES = 40
TEMPLATE_LINE = 10  # the line version 2.0.0 changes
USER_LINE = 30  # the line the team changes in files the template leaves alone
KILN = "kiln update (branch pushed)"
COPIER = "copier update"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def _module(i: int, *, v2: bool) -> str:
    lines = [f'"""Module {i} of {{{{ project_name }}}}."""', ""]
    for k in range(1, LINES + 1):
        value = f"{k} * {i}"
        if v2 and k == TEMPLATE_LINE and i % 10 == 0:
            value += " + 1  # changed in 2.0.0"
        lines.append(f"VALUE_{k} = {value}")
    return "\n".join(lines) + "\n"


def template_files(n: int, *, v2: bool) -> dict[str, str]:
    """The template at version 1.0.0 or 2.0.0: n files, 10 % of the modules changed in 2.0.0."""
    files = {
        "copier.yml": "project_name:\n  type: str\n  default: demo\n  help: The project's name\n",
        "{{ _copier_conf.answers_file }}.jinja": (
            "# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY\n{{ _copier_answers|to_nice_yaml }}"
        ),
        "README.md.jinja": "# {{ project_name }}\n\nGenerated.\n",
    }
    for i in range(n - len(files) + 1):  # copier.yml is not rendered: n - 1 files in the project, + answers
        files[f"pkg/m{i:04d}.py.jinja"] = _module(i, v2=v2)
    return files


def user_changes(n: int) -> dict[str, tuple[int, str]]:
    """The team's 20 changed files: path → (line, new text); 3 of them on the line 2.0.0 changes."""
    modules = n - 2
    changed_by_template = [i for i in range(modules) if i % 10 == 0]
    others = [i for i in range(modules) if i % 10 != 0]
    chosen: dict[str, tuple[int, str]] = {}
    step = max(1, len(changed_by_template) // OVERLAPPING)
    for i in changed_by_template[::step][:OVERLAPPING]:
        chosen[f"pkg/m{i:04d}.py"] = (TEMPLATE_LINE, f"VALUE_{TEMPLATE_LINE} = {i}  # ours")
    step = max(1, len(others) // (USER_CHANGED - OVERLAPPING))
    for i in others[::step][: USER_CHANGED - OVERLAPPING]:
        chosen[f"pkg/m{i:04d}.py"] = (USER_LINE, f"VALUE_{USER_LINE} = {i}  # ours")
    if len(chosen) != USER_CHANGED:
        raise BenchError(f"the update bench needs at least {10 * USER_CHANGED} files (N={n})")
    return chosen


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _git(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _result(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            found: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return found
    raise BenchError(f"kiln_side update printed no result:\n{stdout[-2000:]}")


def worktree_digest(root: Path) -> TreeDigest:
    """`tree_digest` of a working tree without its .git."""
    digest = tree_digest(root)
    return {rel: value for rel, value in digest.items() if not rel.startswith(".git/")}


def git_tree_digest(git_dir: Path, ref: str, scratch: Path) -> TreeDigest:
    """The digest of a commit's tree (git archive, unpacked)."""
    archive = scratch / "tree.tar"
    _git([f"--git-dir={git_dir}", "archive", "--format=tar", "-o", str(archive), ref], cwd=scratch)
    out = scratch / "tree"
    discard(out)
    out.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="tar")
    archive.unlink()
    digest = tree_digest(out)
    discard(out)
    return digest


class _Update:
    def __init__(self, ctx: BenchContext, n: int) -> None:
        self.ctx = ctx
        self.n = n
        self.work = ctx.paths.run_dir / f"updates-n{n}"
        clear_dir(self.work)
        self.template = self.work / "template"  # the git repository copier reads (tags 1.0.0, 2.0.0)
        self.project = self.work / "project"  # copier copy of 1.0.0 + the team's commit
        self.bare = self.work / "target.git"  # the same repository, as Kiln's export target
        self.slug = f"bench-update-n{n}"
        self.versions_dir = f"updates/n{n}"
        self.env = ctx.env()
        self.copier_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "KILN", "DATABASE"))},
            **GIT_ENV,
            "HOME": str(self.work / "home"),
        }
        self.generated = 0
        self.branch = ""
        self.conflicts: list[str] = []

    def prepare(self) -> None:
        copier = tool("copier")
        assert copier is not None
        (self.work / "home").mkdir()
        self.template.mkdir()
        _git(["init", "-q", "-b", "main"], self.template)
        for label, v2 in (("1.0.0", False), ("2.0.0", True)):
            files = template_files(self.n, v2=v2)
            kiln_folder = Path(self.ctx.paths.templates_dir) / self.versions_dir / label
            if kiln_folder.exists():
                shutil.rmtree(kiln_folder)
            _write(kiln_folder, files)
            for child in self.template.iterdir():
                if child.name != ".git":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
            _write(self.template, files)
            _git(["add", "-A"], self.template)
            _git(["commit", "-q", "-m", f"version {label}"], self.template)
            _git(["tag", label], self.template)
        subprocess.run(
            [copier, "copy", "--defaults", "--quiet", "--vcs-ref", "1.0.0", str(self.template), str(self.project)],
            env=self.copier_env,
            check=True,
            capture_output=True,
        )
        _git(["init", "-q", "-b", "main"], self.project)
        _git(["add", "-A"], self.project)
        _git(["commit", "-q", "-m", "generated with copier"], self.project)
        for rel, (line, text) in user_changes(self.n).items():
            path = self.project / rel
            lines = path.read_text(encoding="utf-8").split("\n")
            lines[line + 1] = text  # the docstring and a blank line come first
            path.write_text("\n".join(lines), encoding="utf-8")
        _git(["commit", "-q", "-am", "the team's changes"], self.project)
        _git(["init", "-q", "--bare", "-b", "main", str(self.bare)], self.work)
        _git(["push", "-q", str(self.bare), "main"], self.project)
        result = kiln_side(
            "update-setup",
            "--slug",
            self.slug,
            "--versions",
            self.versions_dir,
            "--git-url",
            str(self.template),
            "--remote",
            f"file://{self.bare}",
            env=self.env,
        )
        self.generated = int(result["generated"])
        log(f"updates N={self.n}: template, project and adoption ready (generation {self.generated})")

    def kiln(self, *extra: str) -> TreeDigest:
        if self.branch:  # the previous round's update, its generation and branch: nothing is reused
            kiln_side("update-reset", "--generated", str(self.generated), env=self.env)
            _git([f"--git-dir={self.bare}", "update-ref", "-d", f"refs/heads/{self.branch}"], cwd=self.work)
        settle()
        cmd = [PYTHON, "-m", "bench.kiln_side", "update", "--generated", str(self.generated), "--to", "2.0.0", *extra]
        started = time.perf_counter()
        proc = run(cmd, cwd=REPO, env=self.env)
        seconds = time.perf_counter() - started
        result = _result(proc.stdout)
        if result["status"] != "completed" or result["outcome"] != "pushed":
            raise BenchError(f"Kiln's update ended {result['status']} / {result['outcome']}: {result['error']}")
        self.branch = result["branch"]
        self.conflicts = result["conflicts"]
        self.last_seconds = seconds
        return git_tree_digest(self.bare, self.branch, self.work)

    def copier(self) -> TreeDigest:
        copier = tool("copier")
        assert copier is not None
        out = self.work / "copier-out"
        discard(out)
        shutil.copytree(self.project, out, symlinks=True)
        settle()
        cmd = [copier, "update", "--defaults", "--quiet", "--conflict", "inline", "--vcs-ref", "2.0.0"]
        self.last_seconds = timed(cmd, cwd=out, env=self.copier_env)
        digest = worktree_digest(out)
        discard(out)
        return digest

    def run(self) -> dict[str, Samples]:
        samples = {KILN: Samples(KILN), COPIER: Samples(COPIER)}
        first = 1 if self.ctx.smoke else 0  # --smoke: one round, no warm-up (Kiln cold)
        for round_no in range(first, self.ctx.runs + 1):
            kiln_tree = self.kiln()
            kiln_seconds = self.last_seconds
            copier_tree = self.copier()
            copier_seconds = self.last_seconds
            problems = diff_digests(copier_tree, kiln_tree)
            if problems:
                raise BenchError(
                    f"Kiln's updated tree differs from copier update's at N={self.n}: " + "; ".join(problems)
                )
            if round_no > 0:
                samples[KILN].values.append(kiln_seconds)
                samples[COPIER].values.append(copier_seconds)
            what = "warm-up" if round_no == 0 else f"round {round_no}/{self.ctx.runs}"
            log(f"updates N={self.n} {what}: kiln {kiln_seconds:.2f}s, copier {copier_seconds:.2f}s, same tree")
        return samples


def run_updates(ctx: BenchContext) -> SectionResult:
    section = SectionResult("updates", "Template updates: Kiln vs copier update (issue 16)")
    if not tool("copier"):
        section.notes.append("skipped: copier is not installed (pip install -r requirements/bench.txt)")
        section.targets.append(Target("updates: copier update ÷ kiln", f"≥ {GOAL:g}x", "copier not installed", None))
        return section
    n = max(ctx.reference_size, MIN_FILES)  # --smoke / --quick: the smallest project with 20 + 3 changes
    bench = _Update(ctx, n)
    bench.prepare()
    samples = bench.run()
    changed = len([i for i in range(n - 2) if i % 10 == 0])
    table = Table(
        f"The same update of a {n}-file Copier-format project (template 1.0.0 → 2.0.0 changes {changed} files; "
        f"the team changed {USER_CHANGED}, {OVERLAPPING} of them where the template did), whole process, seconds",
        ["tool", "median", "min", "max", "copier ÷ kiln"],
    )
    kiln = samples[KILN].median
    for name, values in samples.items():
        table.rows.append([name, *stat_cells(values), fmt_ratio(ratio(samples[COPIER].median, kiln))])
    table.notes.append(
        "every round: the tree of Kiln's pushed branch equals copier's updated working tree (path → sha256 + "
        f"executable bit), the answers file and the {len(bench.conflicts)} inline conflicts included "
        f"({', '.join(bench.conflicts)})"
    )
    table.notes.append(
        "Kiln: one Django process (python -m bench.kiln_side update): update_start + update_execute in branch mode "
        "(render 2.0.0, fetch, merge, commit, push over file://), SQLite; copier: copier update in a fresh copy"
    )
    if ctx.smoke:
        table.notes.append(
            "--smoke: one round without a warm-up round (Kiln's first render of 2.0.0 compiles it: cold)"
        )
    section.tables.append(table)
    if ctx.profile:
        text_out = WORK / "profiles" / f"kiln-update-n{n}.txt"
        bench.kiln("--text-out", str(text_out))
        section.notes.append(
            f"--profile: one more Kiln update under pyinstrument ({bench.last_seconds:.2f} s with the profiler): "
            f"{text_out.relative_to(REPO) if text_out.is_relative_to(REPO) else text_out}"
        )
    value = ratio(samples[COPIER].median, kiln)
    section.targets.append(
        Target(
            f"updates N={n}: copier update ÷ kiln, whole process, same tree",
            f"≥ {GOAL:g}x" + ("" if n == REFERENCE_SIZE else f" (at N={n}, not 1,000)"),
            fmt_ratio(value),
            value >= GOAL,
        )
    )
    discard(bench.work)
    shutil.rmtree(Path(ctx.paths.templates_dir) / bench.versions_dir, ignore_errors=True)
    return section
