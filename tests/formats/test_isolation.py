"""Template code runs only in the isolation runner, and cannot reach anything of Kiln's from there.

Each test runs a small script as a template's code would run (a Cookiecutter hook, a Copier task)
and checks what it could not do: read Kiln's environment (a canary variable), the database (its
TCP port and its socket), the data folder or other generations, the network (a listener on
loopback receives nothing), or write anywhere but its own project; and that a hook which runs too
long, uses too much, or leaves something Kiln does not keep fails cleanly with a coded error.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from apps.templates.services import isolation
from apps.templates.services.formats._engine import Output
from apps.templates.services.isolation import CodeFailed, Command, IsolationUnavailable, Limits

CANARY = "kiln-canary-d0e5f1b2c3a4"


def _limits(**overrides: Any) -> Limits:
    base = Limits.from_settings()
    values = {field: getattr(base, field) for field in base.__dataclass_fields__}
    values.update(overrides)
    return Limits(**values)


def _run(script: str, files: dict[str, str] | None = None, **kwargs: Any) -> Output:
    tree = Output()
    for path, text in (files or {}).items():
        tree.add(path, text.encode(), 0o644, source=path)
    return isolation.run(
        commands=[Command(argv=["/usr/bin/python3", "/run/kiln/hooks/check.py"])],
        files=tree,
        project="demo",
        template=None,
        scripts={"hooks/check.py": (script.encode(), 0o755)},
        stage="post_gen_project",
        **kwargs,
    )


def _text(output: Output, path: str) -> str:
    return output.files[path][0].decode()


def test_hooks_see_no_kiln_environment_and_no_kiln_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_FERNET_KEY", CANARY)
    monkeypatch.setenv("KILN_TEST_CANARY", CANARY)
    output = _run(
        """
import os
from pathlib import Path
seen = [repr(dict(os.environ))]
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            seen.append(Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace"))
            seen.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace"))
        except OSError:
            pass
Path("seen.txt").write_text("\\n".join(seen))
Path("pids.txt").write_text(" ".join(p for p in os.listdir("/proc") if p.isdigit()))
Path("uid.txt").write_text(str(os.getuid()))
"""
    )
    seen = _text(output, "seen.txt")
    assert CANARY not in seen
    assert "DJANGO" not in seen and "DATABASE_URL" not in seen
    assert "celery" not in seen and "pytest" not in seen  # Kiln's processes are not in the sandbox's pid namespace
    assert len(_text(output, "pids.txt").split()) <= 4
    if os.geteuid() == 0:
        assert int(_text(output, "uid.txt")) >= django_settings.KILN_ISOLATION_UID_BASE


def test_hooks_cannot_reach_the_database_the_data_folder_or_other_generations(settings: Any, tmp_path: Path) -> None:
    other = Path(settings.GENERATED_PROJECTS_DIR) / "1" / "7"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text(CANARY)
    key_file = Path(django_settings.KILN_SECRET_KEY_FILE)
    places = [
        str(other),
        str(other / "secret.txt"),
        str(settings.KILN_TEMPLATES_DIR),
        str(key_file.parent),
        str(key_file),
        str(django_settings.BASE_DIR),
        "/var/run/postgresql",
        "/run/postgresql",
    ]
    output = _run(
        f"""
import json, os, socket
from pathlib import Path
found = {{}}
for place in {places!r}:
    found[place] = os.path.exists(place)
db = {{}}
for target in [("127.0.0.1", 5432), ("127.0.0.1", 6379)]:
    try:
        socket.create_connection(target, timeout=2).close()
        db[str(target)] = "connected"
    except OSError as exc:
        db[str(target)] = type(exc).__name__
Path("found.json").write_text(json.dumps({{"paths": found, "db": db}}))
"""
    )
    import json

    report = json.loads(_text(output, "found.json"))
    assert not any(report["paths"].values()), report["paths"]
    assert "connected" not in report["db"].values(), report["db"]


def test_hooks_have_no_network(listener: Any) -> None:
    port = int(listener.base.rsplit(":", 1)[1])
    output = _run(
        f"""
import socket
from pathlib import Path
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    result = "connected"
except OSError as exc:
    result = type(exc).__name__
try:
    socket.getaddrinfo("example.com", 443)
    dns = "resolved"
except OSError as exc:
    dns = type(exc).__name__
Path("net.txt").write_text(result + " " + dns)
"""
    )
    assert "connected" not in _text(output, "net.txt") and "resolved" not in _text(output, "net.txt")
    assert listener.hits == []


def test_a_hook_that_tries_the_network_and_fails_fails_the_run(listener: Any) -> None:
    port = int(listener.base.rsplit(":", 1)[1])
    with pytest.raises(CodeFailed) as caught:
        _run(f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/x', timeout=3)\n")
    assert caught.value.code == "hook_failed"
    assert "urlopen" in caught.value.extra["output"] or "URLError" in caught.value.extra["output"]
    assert listener.hits == []


def test_writes_outside_the_project_do_not_land_anywhere(tmp_path: Path) -> None:
    output = _run(
        """
import os
from pathlib import Path
results = {}
for target in ["/template/x", "/input/x", "/usr/x", "/etc/passwd", "/run/kiln/job.json", "/proc/x"]:
    try:
        Path(target).write_text("escape")
        results[target] = "written"
    except OSError as exc:
        results[target] = type(exc).__name__
Path("../escape.txt").write_text("outside the project folder")
Path("/tmp/scratch.txt").write_text("tmp is private and discarded")
Path("results.txt").write_text(repr(results))
""",
        files={"kept.txt": "kept\n"},
    )
    assert sorted(output.files) == ["kept.txt", "results.txt"]
    assert "written" not in _text(output, "results.txt")


def test_a_hook_that_runs_too_long_is_stopped() -> None:
    started = time.monotonic()
    with pytest.raises(CodeFailed) as caught:
        _run("import time\ntime.sleep(60)\n", limits=_limits(seconds=1.5))
    assert caught.value.code == "hook_timeout"
    assert time.monotonic() - started < 15


def test_process_memory_and_output_limits() -> None:
    output = _run(
        """
import os, subprocess
from pathlib import Path
started = 0
procs = []
try:
    for _ in range(200):
        procs.append(subprocess.Popen(["sleep", "5"]))
        started += 1
except OSError:
    pass
for p in procs:
    p.kill()
try:
    block = bytearray(900 * 1024 * 1024)
    memory = "allocated"
except MemoryError:
    memory = "MemoryError"
try:
    with open("big.bin", "wb") as handle:
        handle.write(b"x" * (6 * 1024 * 1024))
    size = "written"
except OSError as exc:
    size = type(exc).__name__
    os.remove("big.bin")
Path("limits.txt").write_text(f"{started} {memory} {size}")
""",
        limits=_limits(processes=20, memory_bytes=256 * 1024 * 1024, output_bytes=4 * 1024 * 1024),
    )
    started, memory, size = _text(output, "limits.txt").split()
    if os.geteuid() == 0:
        assert int(started) < 20
    assert memory == "MemoryError"
    assert size == "OSError"  # the project's tmpfs is full: no space left
    assert "big.bin" not in output.files


def test_links_left_by_a_hook_are_refused() -> None:
    with pytest.raises(CodeFailed) as caught:
        _run("import os\nos.symlink('/etc/passwd', 'link')\n")
    assert caught.value.code == "hook_output_invalid"
    assert caught.value.extra["path"] == "link"


def test_failing_hook_output_is_redacted_and_capped() -> None:
    token = "ghp_" + "A" * 36
    with pytest.raises(CodeFailed) as caught:
        _run(
            f"print('{token} and the secret answer kiln-answer-canary')\nprint('x' * 100000)\nraise SystemExit(2)\n",
            secrets=["kiln-answer-canary"],
        )
    error = caught.value
    assert error.code == "hook_failed" and error.extra["exit_status"] == 2
    assert token not in error.message and "kiln-answer-canary" not in error.message
    assert "[redacted]" in error.extra["output"]
    assert len(error.extra["output"]) <= django_settings.KILN_ISOLATION_LOG_BYTES


def test_without_bubblewrap_code_is_refused_not_run(settings: Any) -> None:
    settings.KILN_ISOLATION_BWRAP = "/nonexistent/bwrap"
    isolation.reset_probe()
    try:
        with pytest.raises(IsolationUnavailable) as caught:
            _run("open('ran.txt', 'w').write('ran')\n")
        assert caught.value.code == "isolation_unavailable"
        assert "bubblewrap" in caught.value.message
    finally:
        isolation.reset_probe()


def test_a_repository_made_by_a_task_is_left_out() -> None:
    output = isolation.run(
        commands=[
            Command(argv=["/bin/sh", "-c", "git init -q && git add -A && git commit -qm init && echo ok > after.txt"])
        ],
        files=_tree({"kept.txt": "kept\n"}),
        project="demo",
        template=None,
        stage="_tasks",
    )
    assert sorted(output.files) == ["after.txt", "kept.txt"]


def _tree(files: dict[str, str]) -> Output:
    tree = Output()
    for path, text in files.items():
        tree.add(path, text.encode(), 0o644, source=path)
    return tree
