"""Fixtures of the update tests: a native template with two versions, a generation of the first
exported to the local forge (or a bare git remote), and the user's own commits on top."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from apps.projects.services.connections import connection_create
from apps.projects.services.exports import repository_export_execute, repository_export_start
from apps.projects.services.generation import generated_project_execute, generated_project_start
from tests.forge import LocalForge
from tests.forge.fixtures import ALICE_TOKEN

LINES = "".join(f"line {i}\n" for i in range(1, 21))

PARAMETERS = {
    "type": "object",
    "properties": {"name": {"type": "string", "default": "shop"}, "port": {"type": "integer", "default": 8000}},
}

V1 = {
    "README.md": "# {{ name }}\n\nA service.\n\n" + LINES,
    "app.py": "NAME = '{{ name }}'\nPORT = {{ port }}\n" + LINES,
    "config.yaml": "name: {{ name }}\nlevel: info\nretries: 3\n",
    "old.txt": "going away\n",
    "run.sh": "#!/bin/sh\nexec python app.py\n",
    "logo.bin": b"\x89PNG\x00v1",
}
V2 = {
    "README.md": "# {{ name }}\n\nA service, now with docs.\n\n" + LINES,
    "app.py": "NAME = '{{ name }}'\nPORT = {{ port }}\nHOST = '0.0.0.0'\n" + LINES,
    "config.yaml": "name: {{ name }}\nlevel: warning\nretries: 3\n",
    "new.txt": "brand new\n",
    "run.sh": ("#!/bin/sh\nexec python app.py\n", 0o755),
    "logo.bin": b"\x89PNG\x00v2",
}
# what the repository's team did after the first export
USER_COMMIT = {
    "app.py": "NAME = 'shop'\nPORT = 8000\n" + LINES.replace("line 18\n", "line 18 (ours)\n"),
    "config.yaml": "name: shop\nlevel: debug\nretries: 3\n",
    "NOTES.md": "our notes\n",
}


def publish(settings: Any, slug: str, version: str, files: dict[str, Any], **manifest: Any) -> Any:
    """Record `files` as the template's version `version` (the template's current version)."""
    from apps.templates.models import TemplateSource
    from apps.templates.services.catalog import _upsert, scan_template

    folder = Path(settings.KILN_TEMPLATES_DIR) / slug / version
    folder.mkdir(parents=True, exist_ok=True)
    body = {"slug": slug, "name": slug.title(), "version": version, "parameters": PARAMETERS, **manifest}
    (folder / "template.yaml").write_text(yaml.safe_dump(body))
    for rel, content in files.items():
        data, mode = content if isinstance(content, tuple) else (content, 0o644)
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        target.chmod(mode)
    return _upsert(scan_template(folder), source=TemplateSource.UPLOAD, source_path=f"{slug}/{version}", user=None)


@dataclass
class Target:
    project: Any
    user: Any
    template: Any
    generated: Any
    export: Any
    forge: LocalForge | None
    full_name: str
    remote: Path | None = None

    def main(self) -> str:
        if self.forge is not None:
            return self.forge.refs(self.full_name)["refs/heads/main"]
        return git_refs(self.remote)["refs/heads/main"]  # type: ignore[arg-type]


def git_refs(bare: Path) -> dict[str, str]:
    out = subprocess.run(
        ["git", f"--git-dir={bare}", "for-each-ref", "--format=%(objectname) %(refname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {ref: sha for sha, ref in (line.split(" ", 1) for line in out.splitlines())}


def generate(project: Any, user: Any, slug: str, parameters: dict[str, Any] | None = None) -> Any:
    row = generated_project_start(
        project=project, template_slug=slug, parameters=parameters or {}, actor=user, enqueue=False
    )
    return generated_project_execute(generated_id=row.pk, owner="test:1:gen").generated


def export_to(generated: Any, user: Any, data: dict[str, Any]) -> Any:
    export = repository_export_start(generated=generated, data=data, actor=user, enqueue=False)
    export, _ = repository_export_execute(export_id=export.pk, owner="test:1:export")
    assert export.status == "completed", export.error
    return export


@pytest.fixture
def exported(cast: Any, settings: Any, github_forge: LocalForge, gitlab_forge: LocalForge) -> Callable[..., Target]:
    """`exported(provider="github"|"gitlab", slug=...)`: version 1.0.0 generated, exported, the user's commit on top,
    and version 2.0.0 published."""

    def make(provider: str = "github", slug: str = "svc", user_commit: bool = True) -> Target:
        forge = github_forge if provider == "github" else gitlab_forge
        publish(settings, slug, "1.0.0", V1)
        generated = generate(cast.project, cast.alice, slug)
        connection = connection_create(
            owner=cast.alice, provider=provider, name=f"{provider}-{slug}", base_url=forge.api_url, token=ALICE_TOKEN
        )
        repository: dict[str, Any] = {"name": slug}
        if provider == "gitlab":
            repository["namespace"] = "acme"
        export = export_to(
            generated, cast.alice, {"provider": provider, "connection": connection.pk, "repository": repository}
        )
        full_name = export.remote_full_name
        if user_commit:
            forge.seed_commit(full_name, files=USER_COMMIT, message="our changes")
        template = publish(settings, slug, "2.0.0", V2)
        return Target(cast.project, cast.alice, template, generated, export, forge, full_name)

    return make


@pytest.fixture
def exported_git(cast: Any, settings: Any, tmp_path: Path) -> Callable[..., Target]:
    """The same, exported to a bare repository over file:// (a plain git remote)."""

    def make(slug: str = "svc") -> Target:
        publish(settings, slug, "1.0.0", V1)
        generated = generate(cast.project, cast.alice, slug)
        bare = tmp_path / f"{slug}.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
        export = export_to(generated, cast.alice, {"provider": "git", "remote_url": f"file://{bare}"})
        template = publish(settings, slug, "2.0.0", V2)
        return Target(cast.project, cast.alice, template, generated, export, None, slug, remote=bare)

    return make
