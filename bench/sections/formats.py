"""Issue 15: Cookiecutter and Copier templates rendered by Kiln and by the real tools, same bytes.

The synthetic template (`bench/synth.py`) in its Copier and Cookiecutter formats is registered in
Kiln as what it is (a `copier` and a `cookiecutter` template, through the format registry) and
generated

* whole process, alternating inside each round after a warm-up round: Kiln's CLI
  (`manage.py generate_project --template bench-copier-nN`, warm: the version's plan and compiled
  code kept from the warm-up) against `copier copy --defaults` on the same folder, and likewise
  for Cookiecutter (`cookiecutter --no-input`);
* through the API (PostgreSQL + Redis + a worker, as the `api` section; not in `--smoke`):
  `POST .../generated/` → `completed` for each format, after a warm-up generation per worker child.

Every output is compared before anything is reported: each whole-process output with the first one
(relative path → sha256 + executable bit; Cookiecutter's project folder is its one child), and each
API generation's `content_sha256` with the manifest hash of the real tool's output (path, mode and
sha256 of every file, as Kiln hashes its manifest). A difference fails the section.
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import synth
from bench.common import (
    PYTHON,
    REPO,
    BenchError,
    Samples,
    TreeDigest,
    clear_dir,
    diff_digests,
    discard,
    kiln_side,
    log,
    ratio,
    settle,
    single_child,
    timed,
    tool,
    tree_digest,
)
from bench.report import SectionResult, Table, Target, fmt_ratio, stat_cells
from bench.sections import BenchContext
from bench.sections.api import PASSWORD, USERNAME, WORKER_CONCURRENCY, _Http, _Stack, _wait, services_missing

FOREIGN = ("copier", "cookiecutter")
GOALS = {"copier": 10.0, "cookiecutter": 5.0}  # tool ÷ Kiln warm, whole process, at N = 1,000


def kiln_label(fmt: str) -> str:
    return f"kiln ({fmt} template) warm"


def manifest_hash(digest: TreeDigest) -> str:
    """Kiln's `content_sha256` of a tree: its manifest (path, mode, sha256), as `manifest_sha256`."""
    hashed = hashlib.sha256(b"kiln-manifest-v1\n")
    for path in sorted(digest):
        sha256, executable = digest[path]
        hashed.update(f"{path}\0{0o755 if executable else 0o644:o}\0{sha256}\n".encode())
    return hashed.hexdigest()


class _WholeProcess:
    """Kiln and the tool on one format's template, round after round."""

    def __init__(self, ctx: BenchContext, n: int, fmt: str) -> None:
        self.ctx = ctx
        self.n = n
        self.fmt = fmt
        self.slug = synth.foreign_slug(n, fmt)
        self.template = synth.template_dir(n, fmt)
        self.work = ctx.paths.run_dir / f"formats-{fmt}-n{n}"
        clear_dir(self.work)
        self.cc_config = self.work / "cookiecutter.yaml"
        self.cc_config.write_text(
            f"cookiecutters_dir: {self.work / 'cc-cookiecutters'}\nreplay_dir: {self.work / 'cc-replay'}\n"
        )
        self.reference: TreeDigest | None = None
        self.env = ctx.env()

    def command(self, name: str, out: Path) -> tuple[list[str], Path | None]:
        if name == kiln_label(self.fmt):
            cmd = [PYTHON, "manage.py", "generate_project", "--template", self.slug, "--output", str(out), "--no-sync"]
            return cmd, out
        if name == "copier":
            return [str(tool("copier")), "copy", "--defaults", "--quiet", str(self.template), str(out)], out
        if name == "cookiecutter":
            cmd = [str(tool("cookiecutter")), "--no-input", "--config-file", str(self.cc_config)]
            return [*cmd, "--output-dir", str(out), str(self.template)], None
        raise ValueError(name)

    def once(self, name: str, label: str) -> float:
        out = self.work / f"out-{label}"
        discard(out)
        cmd, root = self.command(name, out)
        settle()  # the previous tool's writes are flushed before this clock starts
        seconds = timed(cmd, cwd=REPO, env=self.env)
        self.check(name, root or single_child(out))
        discard(out)
        return seconds

    def check(self, name: str, root: Path) -> None:
        digest = tree_digest(root)
        if self.reference is None:
            expected = synth.expected_output_count(self.n)
            if len(digest) != expected:
                raise BenchError(f"{name} wrote {len(digest)} files at N={self.n}, expected {expected}")
            self.reference = digest
            return
        problems = diff_digests(self.reference, digest)
        if problems:
            raise BenchError(f"{name} output differs from the first output at N={self.n}: " + "; ".join(problems))

    def run(self) -> dict[str, Samples]:
        names = [kiln_label(self.fmt), self.fmt]
        samples = {name: Samples(name) for name in names}
        for round_no in range(self.ctx.runs + 1):
            this_round = {name: self.once(name, f"{round_no}-{name.split()[0]}") for name in names}
            if round_no > 0:  # round 0 is the warm-up (Kiln's first generation compiles the version)
                for name, seconds in this_round.items():
                    samples[name].values.append(seconds)
            what = "warm-up" if round_no == 0 else f"round {round_no}/{self.ctx.runs}"
            log(f"formats {self.fmt} N={self.n} {what}: " + ", ".join(f"{k} {v:.2f}s" for k, v in this_round.items()))
        discard(self.work)
        return samples


def _through_api(ctx: BenchContext, n: int, references: dict[str, str]) -> tuple[Table | None, list[str]]:
    """POST → completed for each format's template; each generation's manifest checked against the tool's."""
    missing = services_missing()
    if missing:
        return None, ["API part skipped: not reachable: " + "; ".join(missing)]
    with ExitStack() as cleanup:
        stack = _Stack(ctx)
        cleanup.callback(stack.close)
        stack.create_database()
        log(f"formats api: migrating {stack.database}")
        setup = kiln_side(
            "api-setup",
            "--username",
            USERNAME,
            "--password",
            PASSWORD,
            *(synth.source_path(n, fmt) for fmt in FOREIGN),
            env=stack.env,
        )
        stack.start_worker()
        http = stack.start_server()
        status, body = http.call("POST", "/api/v1/auth/token/", {"username": USERNAME, "password": PASSWORD})
        if status != 200:
            raise BenchError(f"token request failed: HTTP {status} {body}")
        http.token = body["token"]
        project = int(setup["project_id"])
        table = Table(
            f"Generation of the N={n} Copier and Cookiecutter templates through the API "
            f"(PostgreSQL + Redis + 1 worker, -c {WORKER_CONCURRENCY}), seconds",
            ["template", "median", "min", "max"],
        )
        for fmt in FOREIGN:
            slug = synth.foreign_slug(n, fmt)
            samples = Samples(f"{fmt}: POST → completed")
            for round_no in range(WORKER_CONCURRENCY + ctx.api_runs):
                elapsed, done = _generate(http, project, slug)
                if done["content_sha256"] != references[fmt]:
                    raise BenchError(
                        f"the API generation of {slug} differs from {fmt}'s own output "
                        f"(content_sha256 {done['content_sha256']} != {references[fmt]})"
                    )
                if round_no >= WORKER_CONCURRENCY:  # the first ones warm each worker child
                    samples.values.append(elapsed)
                log(f"formats api {fmt} {'warm-up' if round_no < WORKER_CONCURRENCY else 'run'}: {elapsed:.3f}s")
            table.rows.append([samples.name, *stat_cells(samples)])
        table.notes.append(
            "each generation's content_sha256 equals the manifest hash (path, mode, sha256 of every file) of "
            "the real tool's output"
        )
    return table, []


def _generate(http: _Http, project: int, slug: str) -> tuple[float, dict[str, Any]]:
    import time

    started = time.perf_counter()
    status, body = http.call("POST", f"/api/v1/projects/{project}/generated/", {"template": slug, "parameters": {}})
    if status != 202:
        raise BenchError(f"POST generated ({slug}) failed: HTTP {status} {body}")
    return _wait(http, f"/api/v1/projects/{project}/generated/{body['id']}/", started, 300)


def run_formats(ctx: BenchContext) -> SectionResult:
    section = SectionResult("formats", "Cookiecutter and Copier templates on Kiln (issue 15)")
    present = [fmt for fmt in FOREIGN if tool(fmt)]
    for fmt in sorted(set(FOREIGN) - set(present)):
        section.notes.append(f"skipped {fmt}: not installed (pip install -r requirements/bench.txt)")
    ref = ctx.reference_size
    references: dict[str, str] = {}
    by_size: dict[int, dict[str, dict[str, Samples]]] = {}
    for n in ctx.sizes:
        by_size[n] = {}
        for fmt in present:
            bench = _WholeProcess(ctx, n, fmt)
            samples = by_size[n][fmt] = bench.run()
            if n == ref and bench.reference is not None:
                references[fmt] = manifest_hash(bench.reference)
            table = Table(
                f"Whole-process generation of the {fmt} template, N={n} ({synth.expected_output_count(n)} files "
                "written), seconds",
                ["tool", "median", "min", "max", f"{fmt} ÷ kiln"],
            )
            kiln = samples[kiln_label(fmt)].median
            for name, values in samples.items():
                table.rows.append([name, *stat_cells(values), fmt_ratio(ratio(samples[fmt].median, kiln))])
            table.notes.append(
                f"outputs identical in every round (path → sha256 + executable bit): {', '.join(samples)}"
            )
            section.tables.append(table)
    for fmt in FOREIGN:
        label = f"formats N={ref}: {fmt} ÷ kiln ({fmt} template), warm, same bytes"
        if fmt not in by_size[ref]:
            section.targets.append(Target(label, f"≥ {GOALS[fmt]:g}x", "tool not installed", None))
            continue
        samples = by_size[ref][fmt]
        value = ratio(samples[fmt].median, samples[kiln_label(fmt)].median)
        section.targets.append(
            Target(label, ctx.at_reference(f"≥ {GOALS[fmt]:g}x"), fmt_ratio(value), value >= GOALS[fmt])
        )
    if ctx.smoke:  # CI: the whole-process part shows the section runs; the service path has its tests
        section.notes.append("API part not run in --smoke (tests/formats/test_registry.py covers the service path)")
    elif len(references) == len(FOREIGN):
        api_table, notes = _through_api(ctx, ref, references)
        section.notes.extend(notes)
        if api_table is not None:
            section.tables.append(api_table)
    return section
