"""Every way of starting the web process serves the ASGI application (Django + /mcp)."""

from __future__ import annotations

import re

import yaml

from tests.integration.harness import ROOT

ASGI = "core.asgi:application"
WORKER_CLASS = "uvicorn_worker.UvicornWorker"


def test_procfile_compose_image_and_readme_run_the_asgi_application():
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = (ROOT / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    for where, command in [
        ("Procfile", web),
        ("docker-compose.yml", compose["services"]["web"]["command"]),
        ("Dockerfile", image.rsplit("CMD", 1)[1]),
        ("README", next(line for line in readme.splitlines() if "gunicorn" in line and "# web" in line)),
    ]:
        assert ASGI in command and WORKER_CLASS in command, where
        assert "core.wsgi" not in command, where
    assert "uvicorn core.asgi:application" in (ROOT / "scripts" / "serve.sh").read_text()


def test_the_servers_are_pinned_where_each_deployment_installs_from():
    base = (ROOT / "requirements" / "base.txt").read_text()
    production = (ROOT / "requirements" / "production.txt").read_text()
    assert re.search(r"^mcp==2\.\d+\.\d+$", base, re.M)
    assert re.search(r"^uvicorn==", base, re.M)  # the embedded default serves with it (scripts/serve.sh)
    assert re.search(r"^uvicorn-worker==", production, re.M)
    assert re.search(r"^gunicorn==", production, re.M)
