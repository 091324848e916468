"""Item 3: Kiln's exports against the tools, on the files of one generation.

Kiln runs in-process, as a worker runs it (`bench.kiln_side exports`): `gitops.build_commit` (the
recorded files, one query, into `git fast-import`) and `gitops.push_commit` (ls-remote, push,
ls-remote) separately, then whole export jobs through `repository_export_start` (validate, record,
run eagerly, finish) for git, zip and tar.gz. The tools are whole CLI processes on the same files:
`git init && git add -A && git commit`, `git push`, `zip -qr`, `tar czf`. All alternate per round.
"""

from __future__ import annotations

from bench import synth
from bench.common import Samples, kiln_side, log, ratio
from bench.report import SectionResult, Table, Target, fmt_ratio, stat_cells
from bench.sections import BenchContext

# (operation, Kiln sample, CLI sample, target ratio Kiln/CLI)
PAIRS = (
    ("git build + commit", "kiln git build+commit", "git init && git add -A && git commit", 2.0),
    ("push to a local bare repo", "kiln git push", "git push", 2.0),
    ("git export job (build + push)", "kiln git export job", "git init+add+commit+push", 2.0),
    ("zip", "kiln zip export job", "zip -qr", 1.5),
    ("tar.gz", "kiln tar.gz export job", "tar czf", 1.5),
)

# Diagnosis rows shown under a pair (not targets): the archive writer alone, without the job around it.
DETAIL = {"kiln zip export job": "kiln zip writer only", "kiln tar.gz export job": "kiln tar.gz writer only"}


def run_exports(ctx: BenchContext) -> SectionResult:
    section = SectionResult("export", "Exports (item 3)")
    section.notes.append(
        "Kiln in-process (as a worker runs it, DB rows included for jobs); the tools as whole CLI processes; "
        "'writer only' is ZipProvider.write / TarGzProvider.write without the job around it"
    )
    by_size: dict[int, dict[str, Samples]] = {}
    for n in ctx.sizes:
        log(f"exports N={n}: {ctx.runs} rounds after a warm-up")
        scratch = ctx.paths.run_dir / f"exports-n{n}"
        result = kiln_side(
            "exports", "--slug", synth.slug_for(n), "--runs", str(ctx.runs), "--scratch", str(scratch), env=ctx.env()
        )
        samples = {name: Samples(name, values) for name, values in result["samples"].items()}
        by_size[n] = samples
        table = Table(
            f"Exports, N={n} template files ({result['files']} generated files), seconds",
            ["operation", "tool", "median", "min", "max", "Kiln ÷ CLI"],
        )
        for operation, kiln, cli, _goal in PAIRS:
            if kiln not in samples:
                continue
            baseline = samples.get(cli)
            for name in (kiln, DETAIL.get(kiln, "")):
                if name in samples:
                    value = ratio(samples[name].median, baseline.median) if baseline else float("nan")
                    table.rows.append(
                        [operation if name == kiln else "", name, *stat_cells(samples[name]), fmt_ratio(value)]
                    )
            table.rows.append(["", cli, *(stat_cells(baseline) if baseline else ["not installed", "", ""]), ""])
        sizes = result.get("archive_bytes", {})
        if sizes:
            table.notes.append("archive sizes: " + ", ".join(f"{k} {v:,} B" for k, v in sorted(sizes.items())))
        section.tables.append(table)

    ref = ctx.reference_size
    samples = by_size[ref]
    for operation, kiln, cli, goal in PAIRS:
        label = f"export N={ref}: {operation}, Kiln ÷ {cli}"
        if kiln not in samples or cli not in samples:
            section.targets.append(Target(label, f"≤ {goal:g}x", "not measured", None))
            continue
        value = ratio(samples[kiln].median, samples[cli].median)
        section.targets.append(Target(label, ctx.at_reference(f"≤ {goal:g}x"), fmt_ratio(value), value <= goal))
    return section
