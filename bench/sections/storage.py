"""Issue 18: the blob store on both backends — generation and zip export throughput, and dedupe.

Each backend gets a Kiln of its own (its own SQLite database, blob index and folders): `filesystem`
(blobs under GENERATED_PROJECTS_DIR) and `s3` on a bucket of moto's S3 server, a real `moto_server`
process on loopback (the tests' server, `tests/s3/server.py`), reached over HTTP by boto3. In each,
`bench.kiln_side storage` runs in-process (eager jobs, as a worker runs them):

* generations of the built-in `django-rest-service` with different parameters each time (most files
  are the same for every project: the realistic case, and the target's workload);
* generations of the synthetic N-file template with new parameters (every text file changes: every
  blob is new, the worst case for a remote store) and with the same parameters again (every blob known);
* zip exports of those synthetic generations (every file read back from the store, the archive stored);
* bytes kept for `--dedupe` generations of `django-rest-service` with different parameters: the sizes of
  the distinct blobs they use against the sum of their files' sizes.

Targets: S3 generation of the realistic workload within 2x of the filesystem's; dedupe ≤ 15 %.
"""

from __future__ import annotations

import sys
import uuid

from bench import synth
from bench.common import REPO, KilnPaths, Samples, kiln_env, kiln_side, log, ratio
from bench.report import SectionResult, Table, Target, fmt_ratio, stat_cells
from bench.sections import BenchContext

BACKENDS = ("filesystem", "s3")
REAL = "generate django-rest-service"
GENERATION_GOAL = 2.0
DEDUPE_GOAL = 0.15


def run_storage(ctx: BenchContext) -> SectionResult:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.s3.server import MotoServer

    section = SectionResult("storage", "Blob storage: filesystem and S3 (issue 18)")
    n = ctx.reference_size
    slug = synth.slug_for(n)
    dedupe = 10 if ctx.runs == 1 else 50
    server = MotoServer(log=ctx.paths.run_dir / "moto.log").start()
    results = {}
    try:
        bucket = server.create_bucket(f"kiln-bench-{uuid.uuid4().hex[:8]}")
        for backend in BACKENDS:
            paths = KilnPaths(run_dir=ctx.paths.run_dir / f"storage-{backend}", templates_dir=ctx.paths.templates_dir)
            extra = server.environment(bucket) if backend == "s3" else {"KILN_STORAGE_BACKEND": "filesystem"}
            env = kiln_env(paths, **extra)
            log(f"storage: {backend}: setting up a Kiln of its own")
            kiln_side("setup", synth.native_source_path(n), env=env)
            log(f"storage: {backend}: {ctx.runs} runs of each, {dedupe} generations for dedupe")
            results[backend] = kiln_side(
                "storage", "--slug", slug, "--runs", str(ctx.runs), "--dedupe", str(dedupe), env=env, timeout=1800
            )
    finally:
        server.stop()

    names = list(results["filesystem"]["samples"])
    table = Table(
        f"Blob storage, per operation (synthetic template N={n}: "
        f"{results['filesystem']['files'][slug]} files), seconds",
        ["operation", "backend", "median", "min", "max", "s3 ÷ filesystem"],
    )
    for name in names:
        fs = Samples(name, results["filesystem"]["samples"][name])
        s3 = Samples(name, results["s3"]["samples"][name])
        table.rows.append([name, "filesystem", *stat_cells(fs), ""])
        table.rows.append(["", "s3 (moto_server)", *stat_cells(s3), fmt_ratio(ratio(s3.median, fs.median))])
    table.notes.append(
        "in-process, eager jobs; each backend on its own database and blob index; S3 is moto's server on "
        "loopback (one Python process, so each request costs ~3 ms of its CPU on this machine)"
    )
    section.tables.append(table)

    dedupe_table = Table(
        f"Bytes kept for {dedupe} generations of django-rest-service with different parameters",
        [
            "backend",
            "files",
            "sum of file sizes",
            "distinct blobs",
            "their content",
            "content ÷ sum",
            "bytes stored",
            "stored ÷ sum",
        ],
    )
    shares = {}
    for backend in BACKENDS:
        d = results[backend]["dedupe"]
        total = d["logical_bytes"] or float("nan")
        shares[backend] = d["stored_bytes"] / total
        dedupe_table.rows.append(
            [
                backend,
                f"{d['files']:,}",
                f"{d['logical_bytes']:,} B",
                f"{d['distinct_blobs']:,} ({d['compressed_blobs']:,} compressed)",
                f"{d['distinct_bytes']:,} B",
                f"{d['distinct_bytes'] / total:.1%}",
                f"{d['stored_bytes']:,} B",
                f"{shares[backend]:.1%}",
            ]
        )
    dedupe_table.notes.append(
        "content: each distinct file once (content addressing alone); stored: what the storage holds for them, "
        "zlib-compressed where that saves at least 1/16 (apps.storage.blobs.encode_blob)"
    )
    section.tables.append(dedupe_table)

    fs, s3 = (Samples(REAL, results[b]["samples"][REAL]) for b in BACKENDS)
    value = ratio(s3.median, fs.median)
    section.targets.append(
        Target(
            "storage: S3 ÷ filesystem, generation (different parameters)",
            f"≤ {GENERATION_GOAL:g}x",
            fmt_ratio(value),
            value <= GENERATION_GOAL,
        )
    )
    section.targets.append(
        Target(
            f"storage: bytes stored ÷ sum of {dedupe} generations",
            f"≤ {DEDUPE_GOAL:.0%}",
            f"{shares['s3']:.1%}",
            shares["s3"] <= DEDUPE_GOAL,
        )
    )
    return section
