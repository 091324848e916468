"""`manage.py generate_project`: Kiln's main job from the shell (the README's first command)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.projects.models import GeneratedProject, ProjectFile
from tests.trees import materialised

pytestmark = pytest.mark.django_db(transaction=True)  # the job is enqueued on commit

REPO = Path(__file__).resolve().parents[3]
FILES = {
    "README.md": "# {{ name }}\n",
    "src/{{ name }}/__init__.py": "NAME = {{ name | tojson }}\n",
    "bin/run.sh": ("#!/bin/sh\necho {{ name }}\n", 0o755),
    "logo.bin": b"\x89PNG\x00\x01",
}
PARAMS = {"type": "object", "properties": {"name": {"type": "string", "default": "demo"}}}


@pytest.fixture
def cli_dir(tmp_path):
    """Where the outputs go (tmp_path also holds the test settings' folders)."""
    path = tmp_path / "cli"
    path.mkdir()
    return path


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("generate_project", *args, stdout=out)
    return out.getvalue()


def tree(root: Path) -> dict[str, tuple[str, bool]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), bool(p.stat().st_mode & 0o100))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_output_holds_exactly_the_recorded_files(make_template, cli_dir):
    template = make_template(FILES, parameters=PARAMS)
    output = cli_dir / "out"
    text = run("--template", template.slug, "--set", "name=kiln", "--output", str(output), "--no-sync")
    generated = GeneratedProject.objects.get()
    assert generated.status == "completed"
    assert f"generated #{generated.pk} from {template.slug}" in text and f"written to {output}" in text
    rows = {f.path: (f.sha256, bool(f.mode & 0o100)) for f in ProjectFile.objects.filter(generated=generated)}
    assert tree(output) == rows
    assert set(rows) == {"README.md", "src/kiln/__init__.py", "bin/run.sh", "logo.bin"}
    assert rows["bin/run.sh"][1] and not rows["README.md"][1]
    assert tree(output) == tree(materialised(generated))  # the stored files stay
    assert [p.name for p in cli_dir.iterdir()] == ["out"]  # no staging folder left behind


def test_a_non_empty_output_is_refused_before_anything_runs(make_template, cli_dir):
    template = make_template(FILES, parameters=PARAMS)
    output = cli_dir / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    with pytest.raises(CommandError, match="exists and is not empty"):
        run("--template", template.slug, "--output", str(output), "--no-sync")
    assert not GeneratedProject.objects.exists()
    assert [p.name for p in output.iterdir()] == ["keep.txt"]


def test_an_empty_output_folder_is_filled(make_template, cli_dir):
    template = make_template(FILES, parameters=PARAMS)
    output = cli_dir / "out"
    output.mkdir()
    run("--template", template.slug, "--output", str(output), "--no-sync")
    assert "README.md" in tree(output)


def test_a_stored_file_damaged_in_the_storage_is_not_copied(make_template, cli_dir, monkeypatch):
    from apps.projects.services import generation
    from apps.storage.blobs import blob_key, blob_store

    template = make_template(FILES, parameters=PARAMS)
    original = generation.generated_project_copy_to

    def tamper_then_copy(*, generated, destination):
        readme = ProjectFile.objects.get(generated=generated, path="README.md")
        Path(blob_store().backend.path(blob_key(readme.sha256))).write_text("tampered after the job\n")
        return original(generated=generated, destination=destination)

    monkeypatch.setattr(
        "apps.projects.management.commands.generate_project.generated_project_copy_to", tamper_then_copy
    )
    output = cli_dir / "out"
    with pytest.raises(CommandError, match="blob_corrupt"):
        run("--template", template.slug, "--output", str(output), "--no-sync")
    assert list(cli_dir.iterdir()) == []  # neither the output nor a staging folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "no-such-template"], "template_not_found"),
        (["--set", "name"], "--set expects NAME=VALUE"),
        (["--set", "unknown=1"], "parameters.unknown"),
        (["--export", "ftp"], "--export takes"),
    ],
)
def test_bad_input_is_a_clear_command_error(make_template, tmp_path, args, message):
    template = make_template(FILES, parameters=PARAMS)
    full = ["--template", template.slug, "--no-sync", *args]
    with pytest.raises(CommandError, match=message):
        run(*full)


def test_export_zip_writes_the_archive_next_to_the_output(make_template, cli_dir):
    template = make_template(FILES, parameters=PARAMS)
    output = cli_dir / "out"
    text = run("--template", template.slug, "--output", str(output), "--no-sync", "--export", "zip")
    archive = cli_dir / "out.zip"
    assert f"-> {archive}" in text
    with zipfile.ZipFile(archive) as zipped:
        members = {info.filename: zipped.read(info) for info in zipped.infolist()}
    assert {name: hashlib.sha256(data).hexdigest() for name, data in members.items()} == {
        f"demo/{path}": digest
        for path, (digest, _) in tree(output).items()  # one top folder: the project's name
    }


def test_the_command_as_a_whole_process_on_the_embedded_default(tmp_path):
    """The README's first command, minus bootstrap: a fresh SQLite database, no broker."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="core.settings.local",
        KILN_DATA_DIR=str(tmp_path / "data"),
        GENERATED_PROJECTS_DIR=str(tmp_path / "generated"),
        KILN_TEMPLATE_CACHE_DIR=str(tmp_path / "cache"),
    )
    env.pop("KILN_TEMPLATES_DIR", None)

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )

    assert manage("migrate", "--noinput", "-v", "0").returncode == 0
    output = tmp_path / "hello"
    done = manage("generate_project", "--template", "python-package", "--set", "project_name=hello-kiln",
                  "--output", str(output))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "written to" in done.stdout
    assert (output / "pyproject.toml").is_file()
    assert "hello-kiln" in (output / "pyproject.toml").read_text()
    assert list((tmp_path / "cache").glob("*.code"))  # the compiled-code store of python-package

    again = manage("generate_project", "--template", "python-package", "--set", "project_name=hello-kiln",
                   "--output", str(tmp_path / "again"), "--no-sync")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert tree(tmp_path / "again") == tree(output)
