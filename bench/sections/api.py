"""Item 5: the API — list-endpoint query counts, and POST → completed through a real worker.

Needs PostgreSQL (127.0.0.1:5432, trust auth, user postgres) and Redis (127.0.0.1:6379); when either
does not answer the section is skipped. Everything runs in a throwaway database `kiln_bench_<random>`
that is dropped at the end, on Redis database 13 with a queue of its own; the worker and the web
server are started here and always stopped here (their process groups, by id).

* Query counts (`bench.api_queries`): every list endpoint discovered from the URL resolver and the
  OpenAPI schema, with more rows than the largest page, at page sizes 10 and 100 — equal or N+1.
* End-to-end: `POST /api/v1/projects/{id}/generated/` of the 100-file template, then GET every 10 ms
  until `completed`, against the service alone (warm in-process render + write of the same template).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack
from typing import IO, Any

from bench import synth
from bench.common import PYTHON, REPO, BenchError, Samples, kiln_side, log, remove
from bench.report import SectionResult, Table, Target, fmt_ratio, fmt_seconds, stat_cells
from bench.sections import BenchContext

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_URL = "redis://127.0.0.1:6379/13"
E2E_SIZE = 100
PAGE_SIZES = (10, 100)
USERNAME, PASSWORD = "bench-api", "bench-api-password-1"
POLL_SECONDS = 0.01
WORKER_CONCURRENCY = 2


def _pg_connect(dbname: str = "postgres") -> Any:
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=3)
    conn.autocommit = True
    return conn


def services_missing() -> list[str]:
    missing = []
    try:
        _pg_connect().close()
    except Exception as exc:
        missing.append(f"PostgreSQL at {PG_HOST}:{PG_PORT} ({type(exc).__name__})")
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
    except Exception as exc:
        missing.append(f"Redis at {REDIS_URL} ({type(exc).__name__})")
    return missing


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Http:
    """A tiny JSON client that never goes through a proxy."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.token = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Token {self.token}")
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()[:500].decode(errors="replace")


class _Stack:
    """The throwaway database and the processes of one API run, always cleaned up."""

    def __init__(self, ctx: BenchContext) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.ctx = ctx
        self.database = f"kiln_bench_{suffix}"
        self.queue = f"kiln-bench-{suffix}"
        self.port = _free_port()
        self.logs = ctx.paths.run_dir / "api-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.files: list[IO[bytes]] = []
        self.created_db = False
        self.env = ctx.env(
            DATABASE_URL=f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.database}",
            CELERY_BROKER_URL=REDIS_URL,
            KILN_CELERY_QUEUE=self.queue,
            GENERATED_PROJECTS_DIR=str(ctx.paths.run_dir / "api-generated"),
            KILN_TEMPLATE_CACHE_DIR=str(ctx.paths.run_dir / "api-template-cache"),
            KILN_THROTTLE_USER="100000/min",
            KILN_THROTTLE_ANON="100000/min",
            KILN_THROTTLE_LOGIN="100000/min",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )

    def create_database(self) -> None:
        conn = _pg_connect()
        try:
            conn.cursor().execute(f'CREATE DATABASE "{self.database}"')
            self.created_db = True
        finally:
            conn.close()

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log_file = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in close()
        self.files.append(log_file)
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append(proc)
        return proc

    def start_worker(self) -> None:
        self.start(
            "worker",
            [
                *(PYTHON, "-m", "celery", "-A", "core", "worker", "-Q", self.queue, "-c", str(WORKER_CONCURRENCY)),
                *("-l", "WARNING"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{self.queue}@%h"),
            ],
        )

    def start_server(self) -> _Http:
        proc = self.start("web", [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"])
        http = _Http(f"http://127.0.0.1:{self.port}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"the web server exited {proc.returncode}; see {self.logs / 'web.log'}")
            try:
                status, _ = http.call("GET", "/healthz")
                if status < 500:
                    return http
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(f"the web server did not answer in 60 s; see {self.logs / 'web.log'}")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the group of a process this bench started
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for handle in self.files:
            handle.close()
        if self.created_db:
            conn = _pg_connect()
            try:
                conn.cursor().execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            finally:
                conn.close()
        try:
            import redis

            client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
            keys = [key for key in client.scan_iter(match=f"*{self.queue}*")]
            if keys:
                client.delete(*keys)
        except Exception as exc:  # cleanup of our own keys only; never fail the run on it
            log(f"could not remove the bench's Redis keys: {exc}")
        remove(self.ctx.paths.run_dir / "api-generated")


def _query_table(result: dict[str, Any]) -> tuple[Table, list[str]]:
    table = Table(
        f"Queries per list request (fixture: {result['rows']} rows per list)",
        ["endpoint", *(f"page_size={s}" for s in PAGE_SIZES), "rows returned", "equal"],
    )
    unequal: list[str] = []
    for row in result["endpoints"]:
        if row.get("error"):
            table.rows.append([row["path"], "-", "-", "-", row["error"]])
            unequal.append(f"{row['path']} (not measured)")
            continue
        counts = [row["counts"][str(s)] for s in PAGE_SIZES]
        queries = [c["queries"] for c in counts]
        equal = len(set(queries)) == 1
        bad_status = [c["status"] for c in counts if c["status"] != 200]
        returned = "/".join(str(c["results"]) for c in counts)
        verdict = "yes" if equal else "NO (N+1)"
        if bad_status:
            verdict = f"HTTP {bad_status[0]}"
        if not equal or bad_status:
            unequal.append(row["path"])
        table.rows.append([row["path"], *map(str, queries), returned, verdict])
    sources = sorted({s.split(":", 1)[0] for row in result["endpoints"] for s in row["sources"]})
    table.notes.append(
        f"endpoints discovered from: {', '.join(sources)} (URL resolver `*-list` routes, OpenAPI schema)"
    )
    for name, error in result.get("fixture_errors", {}).items():
        table.notes.append(f"fixture '{name}' could not be built: {error}")
    return table, unequal


def _start(http: _Http, project_id: int) -> tuple[float, str]:
    started = time.perf_counter()
    status, body = http.call(
        "POST", f"/api/v1/projects/{project_id}/generated/", {"template": synth.slug_for(E2E_SIZE), "parameters": {}}
    )
    if status != 202:
        raise BenchError(f"POST generated failed: HTTP {status} {body}")
    return started, f"/api/v1/projects/{project_id}/generated/{body['id']}/"


def _wait(http: _Http, path: str, started: float, timeout: float) -> tuple[float, dict[str, Any]]:
    while True:
        status, body = http.call("GET", path)
        if status == 200 and body["status"] in ("completed", "failed", "cancelled"):
            break
        if time.perf_counter() > started + timeout:
            raise BenchError(f"generation {path} still {body.get('status') if isinstance(body, dict) else body}")
        time.sleep(POLL_SECONDS)
    elapsed = time.perf_counter() - started
    if body["status"] != "completed":
        raise BenchError(f"generation ended {body['status']}: {body.get('error')}")
    return elapsed, body


def _end_to_end(http: _Http, project_id: int, runs: int) -> tuple[Samples, Samples, Samples]:
    """POST → completed, worker job time (started→finished) and pending time (created→started)."""
    status, body = http.call("POST", "/api/v1/auth/token/", {"username": USERNAME, "password": PASSWORD})
    if status != 200:
        raise BenchError(f"token request failed: HTTP {status} {body}")
    http.token = body["token"]
    # Warm-up: one generation per worker child at once (-c 2), so each child has prepared the template.
    pending_jobs = [_start(http, project_id) for _ in range(WORKER_CONCURRENCY)]
    for started, path in pending_jobs:
        elapsed, _ = _wait(http, path, started, 120)
        log(f"api e2e warm-up: {elapsed:.3f}s")
    total, job, pending = Samples("POST → completed"), Samples("worker job"), Samples("queued")
    for round_no in range(1, runs + 1):
        started, path = _start(http, project_id)
        elapsed, body = _wait(http, path, started, 60)
        log(f"api e2e round {round_no}/{runs}: {elapsed:.3f}s")
        total.values.append(elapsed)
        times = _job_times(body)
        if times:
            pending.values.append(times[0])
            job.values.append(times[1])
    return total, job, pending


def _job_times(body: dict[str, Any]) -> tuple[float, float] | None:
    from datetime import datetime

    try:
        created = datetime.fromisoformat(body["created_at"])
        started = datetime.fromisoformat(body["started_at"])
        finished = datetime.fromisoformat(body["finished_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return (started - created).total_seconds(), (finished - started).total_seconds()


def run_api(ctx: BenchContext) -> SectionResult:
    section = SectionResult("api", "API (item 5)")
    missing = services_missing()
    if missing:
        section.status = "skipped"
        section.notes.append("skipped: not reachable: " + "; ".join(missing))
        section.targets.append(Target("API: list query counts equal at page sizes 10 and 100", "equal", "-", None))
        section.targets.append(Target("API: POST → completed", "≤ 1.5 x service + 0.5 s", "-", None))
        return section
    with ExitStack() as cleanup:
        stack = _Stack(ctx)
        cleanup.callback(stack.close)
        stack.create_database()
        log(f"api: migrating {stack.database}")
        setup = kiln_side(
            "api-setup",
            "--username",
            USERNAME,
            "--password",
            PASSWORD,
            synth.native_source_path(E2E_SIZE),
            env=stack.env,
        )
        log("api: counting queries of the list endpoints")
        counts = kiln_side(
            "querycounts", "--rows", "105", "--page-sizes", ",".join(map(str, PAGE_SIZES)), env=stack.env
        )
        table, unequal = _query_table(counts)
        section.tables.append(table)
        section.targets.append(
            Target(
                "API: list query counts equal at page sizes 10 and 100",
                "equal for every endpoint",
                "all equal" if not unequal else "differ: " + ", ".join(unequal),
                not unequal,
            )
        )
        log("api: starting a worker and the web server")
        stack.start_worker()
        http = stack.start_server()
        total, job, pending = _end_to_end(http, int(setup["project_id"]), ctx.api_runs)
        service_result = kiln_side(
            "service-time",
            "--slug",
            synth.slug_for(E2E_SIZE),
            "--runs",
            str(ctx.api_runs),
            "--scratch",
            str(ctx.paths.run_dir / "api-service"),
            env=stack.env,
        )
        service = Samples("service alone (render + write, in-process, warm)", service_result["render_write_s"])
    timing = Table(
        f"Generation of the {E2E_SIZE}-file template through the API (PostgreSQL + Redis + 1 worker, "
        f"-c {WORKER_CONCURRENCY}), seconds",
        ["measure", "median", "min", "max"],
    )
    for samples in (total, pending, job, service):
        timing.rows.append([samples.name, *stat_cells(samples)])
    limit = 1.5 * service.median + 0.5
    timing.notes.append(
        f"POST → completed polls GET every {POLL_SECONDS * 1000:.0f} ms; 'queued' is created_at → started_at and "
        "'worker job' started_at → finished_at of the row"
    )
    section.tables.append(timing)
    section.targets.append(
        Target(
            "API: POST → completed, 100 files",
            f"≤ 1.5 x service + 0.5 s = {fmt_seconds(limit)}",
            f"{fmt_seconds(total.median)} ({fmt_ratio(total.median / service.median)} service)",
            total.median <= limit,
        )
    )
    return section
