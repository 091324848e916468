"""Peak memory and time of the web process for hostile template uploads (issue 21, item 1).

Starts one gunicorn worker (sync) on a free port against the database of DATABASE_URL
(migrated first), uploads each archive below once to a fresh worker and reads the worker's
peak RSS (VmHWM in /proc) before and after the request:

* longlink: a gzip'd tar whose first header is a GNU `././@LongLink` (type L) of 200 MB
  (about 194 KB compressed), followed by a small valid template;
* pax: the same with a 200 MB pax extended header (type x) holding one comment record.

Run from the repository root: `.venv/bin/python bench/upload_bombs.py [--mb 200]`.
Needs PostgreSQL at DATABASE_URL (a scratch database; a user `bomb-bench` is created).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import uuid
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MANIFEST = b"slug: bomb-bench\nname: Bomb bench\nversion: 1.0.0\n"


def _gzip_stream(parts: list[bytes | tuple[int, bytes]]) -> bytes:
    """gzip the concatenation of `parts`; (count, chunk) repeats a chunk without building it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [compressor.compress(b"")]
    for part in parts:
        if isinstance(part, tuple):
            count, chunk = part
            for _ in range(count):
                out.append(compressor.compress(chunk))
        else:
            out.append(compressor.compress(part))
    out.append(compressor.flush())
    return b"".join(out)


def _header(name: str, size: int, kind: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")


def _tail() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("template.yaml")
        info.size = len(MANIFEST)
        archive.addfile(info, io.BytesIO(MANIFEST))
    return buffer.getvalue()


def bomb(kind: str, megabytes: int) -> bytes:
    """A gzip'd tar with one extended header of `megabytes` MB before a valid template."""
    size = megabytes * 1024 * 1024
    chunk = b"a" * (1 << 20)
    if kind == "longlink":
        head = _header("././@LongLink", size, tarfile.GNUTYPE_LONGNAME)
        body: list[bytes | tuple[int, bytes]] = [head, (megabytes, chunk)]
    else:
        # one pax record "<len> comment=aaaa...\n" filling the whole header
        digits = len(str(size))
        value_len = size - digits - len(" comment=\n")
        record_start = f"{size} comment=".encode()
        head = _header("././@PaxHeader", size, tarfile.XHDTYPE)
        body = [head, record_start, (value_len // len(chunk), chunk), b"a" * (value_len % len(chunk)), b"\n"]
    padding = (-size) % tarfile.BLOCKSIZE
    return _gzip_stream([*body, b"\0" * padding, _tail()])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.settings.test",
        "KILN_TEST_SCRATCH": tempfile.mkdtemp(prefix="kiln-bomb-"),
        "NO_PROXY": "127.0.0.1,localhost",
    }


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


def _token(env: dict[str, str]) -> str:
    code = (
        "from django.contrib.auth import get_user_model;"
        "from apps.accounts.services import user_token_issue;"
        "u, _ = get_user_model().objects.get_or_create(username='bomb-bench');"
        "print(user_token_issue(user=u, name='bench-" + uuid.uuid4().hex[:6] + "')[1])"
    )
    return _manage(env, "shell", "-c", code).strip().splitlines()[-1]


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def _worker_pid(master: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


def _request(url: str, token: str, body: bytes | None = None, filename: str = "bomb.tar.gz") -> tuple[int, str]:
    headers = {"Authorization": f"Token {token}"}
    data = None
    if body is not None:
        boundary = uuid.uuid4().hex
        data = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + body
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def measure(kind: str, payload: bytes, env: dict[str, str], token: str) -> dict[str, object]:
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "core.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--timeout", "600"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        worker = _worker_pid(server.pid)
        base = f"http://127.0.0.1:{port}/api/v1/templates/"
        deadline = time.monotonic() + 60
        while True:  # warm the worker up (imports, first queries) before the baseline
            try:
                _request(base, token)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        before = _hwm_kb(worker)
        started = time.monotonic()
        status, text = _request(base, token, payload)
        elapsed = time.monotonic() - started
        peak = _hwm_kb(worker)
    finally:
        server.terminate()
        server.wait(30)
    try:
        code = json.loads(text).get("code")
    except ValueError:
        code = text[:80]
    return {
        "archive": kind,
        "compressed_kb": round(len(payload) / 1024),
        "status": status,
        "code": code,
        "seconds": round(elapsed, 2),
        "rss_before_mb": round(before / 1024),
        "rss_peak_mb": round(peak / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the extended header in MB")
    args = parser.parse_args()
    env = _env()
    _manage(env, "migrate", "--noinput")
    token = _token(env)
    for kind in ("longlink", "pax"):
        payload = bomb(kind, args.mb)
        print(json.dumps(measure(kind, payload, env, token)))


if __name__ == "__main__":
    main()
