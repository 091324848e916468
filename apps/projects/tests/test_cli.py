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


def test_missing_folders_of_the_output_are_made_as_copier_makes_them(make_template, cli_dir):
    """scripts/demo.sh writes demo-output/<template> on a fresh clone, where demo-output/ does not exist."""
    template = make_template(FILES, parameters=PARAMS)
    output = cli_dir / "demo-output" / "deeper" / "out"
    run("--template", template.slug, "--output", str(output), "--export", "zip", "--no-sync")
    assert "README.md" in tree(output)
    assert (cli_dir / "demo-output" / "deeper" / "out.zip").is_file()


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
        (["--export", "ftp"], "--export: validation_error: provider must be one of"),
    ],
)
@pytest.mark.django_db  # refused before any commit: no need to flush the database
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
    assert "python-package 1.0.0" in done.stdout
    assert (output / "pyproject.toml").is_file()
    assert "hello-kiln" in (output / "pyproject.toml").read_text()
    assert list((tmp_path / "cache").glob("*.code"))  # the compiled-code store of python-package

    bad = manage("generate_project", "--template", "python-package", "--params", '{"project_name": ', "--no-sync")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "CommandError: --params is not valid JSON: Expecting value: line 1 column 18 (char 17)"
    ]  # one line, no traceback

    again = manage("generate_project", "--template", "python-package", "--set", "project_name=hello-kiln",
                   "--output", str(tmp_path / "again"), "--no-sync")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert tree(tmp_path / "again") == tree(output)


# --- --set typing --------------------------------------------------------------------------------

TYPED = {
    "type": "object",
    "$defs": {"port": {"type": "integer"}},
    "properties": {
        "text": {"type": "string"},
        "version": {"type": "string", "enum": ["3.11", "3.12"]},
        "choice": {"enum": ["a", "b"]},
        "count": {"type": "integer"},
        "port": {"$ref": "#/$defs/port"},
        "ratio": {"type": "number"},
        "flag": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": "object"},
        "nothing": {"type": "null"},
        "maybe": {"type": ["string", "null"]},
        "mixed": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "free": {},
    },
}


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("text", "3.12", "3.12"),
        ("text", "null", "null"),
        ("text", '{"a": 1}', '{"a": 1}'),
        ("text", "", ""),
        ("version", "3.12", "3.12"),
        ("choice", "true", "true"),
        ("count", "3", 3),
        ("port", "8000", 8000),
        ("ratio", "0.5", 0.5),
        ("ratio", "2", 2),
        ("flag", "false", False),
        ("tags", '["a", "b"]', ["a", "b"]),
        ("extra", '{"k": [1]}', {"k": [1]}),
        ("nothing", "null", None),
        ("maybe", "null", None),
        ("maybe", "3.12", "3.12"),
        ("maybe", "hello", "hello"),
        ("mixed", "7", 7),
        ("mixed", "7.5", "7.5"),
        ("mixed", "seven", "seven"),
        ("free", "7", 7),
        ("free", "seven", "seven"),
        ("undeclared", "[1]", [1]),
    ],
)
@pytest.mark.django_db  # refused before any commit: no need to flush the database
def test_set_reads_value_by_the_parameters_schema_type(name, text, value):
    from apps.projects.management.commands._parameters import value_from_text

    read = value_from_text(name, text, TYPED)
    assert read == value and type(read) is type(value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("count", "three", r"--set count=three: the parameter is an integer, .* e\.g\. --set count=8000"),
        ("flag", "yes", r"the parameter is a boolean, so VALUE is read as JSON, and \"yes\" is not JSON"),
        ("tags", "a,b", r"the parameter is an array"),
        ("extra", "{bad", r"the parameter is an object"),
        ("free", "1e400", r"--set free: JSON parse error - numbers must be finite"),
    ],
)
@pytest.mark.django_db  # refused before any commit: no need to flush the database
def test_set_refuses_text_where_the_type_wants_json(name, text, message):
    from apps.projects.management.commands._parameters import value_from_text

    with pytest.raises(CommandError, match=message):
        value_from_text(name, text, TYPED)


def test_set_values_reach_the_generation_typed(make_template, cli_dir):
    params = {
        "type": "object",
        "properties": {
            "python_version": {"type": "string", "enum": ["3.11", "3.12"], "default": "3.11"},
            "port": {"type": "integer", "default": 80},
            "ci": {"type": "boolean", "default": True},
            "tags": {"type": "array", "default": []},
        },
    }
    template = make_template(
        {"out.txt": "{{ python_version }} {{ port + 1 }} {{ ci }} {{ tags | tojson }}"}, parameters=params
    )
    output = cli_dir / "out"
    run("--template", template.slug, "--no-sync", "--output", str(output), "--params", '{"port": 1}',
        "--set", "python_version=3.12", "--set", "port=8000", "--set", "ci=false", "--set", 'tags=["x"]')  # fmt: skip
    generated = GeneratedProject.objects.get()
    assert generated.parameters == {"python_version": "3.12", "port": 8000, "ci": False, "tags": ["x"]}
    assert (output / "out.txt").read_text() == '3.12 8001 False ["x"]'


# --- arguments checked before any work ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--params", '{"name": '], r"^--params is not valid JSON: Expecting value"),
        (["--params", "[1, 2]"], r"^--params must be a JSON object \(\{\.\.\.\}\), not array \[1, 2\]$"),
        (["--params", '{"a": NaN}'], r"^--params is not valid JSON: numbers must be finite"),
        (["--export", "ftp"], r"^--export: validation_error: provider must be one of"),
        (["--export", "zip", "https://example.com/x.git"], r"^--export: validation_error: Archive exports take no"),
        (["--export", "zip", "--branch", "dev"], r"Archive exports take no other fields \(branch\)"),
        (["--export", "git"], r"^--export: validation_error: remote_url is required"),
        (["--export", "git", "ext::sh -c touch% /tmp/pwned"], r"^--export: "),
        (["--export", "git", "ftp://example.com/x.git"], r"^--export: remote_url_not_allowed"),
        (["--export", "git", "https://me:canary@example.com/x.git"], r"^--export: remote_url_not_allowed: Credentials"),
        (["--export", "git", "file:///tmp/x.git?a=1"], r"^--export: remote_url_not_allowed"),
        (["--export", "git", "https://example.com/x.git", "--branch=-x"], r"^--export: .*branch"),
        (["--export", "github"], r"^--export: validation_error: A connection is required"),
        (["--export", "github", "--connection", "999"], r"^--export: connection_not_found"),
        (["--export", "zip", "--export-body", "{"], r"^--export-body is not valid JSON"),
        (["--archive-output", "x.zip"], r"^--archive-output goes with --export"),
        (["--export", "zip", "--archive-output", "/no/such/dir/x.zip"], r"^--archive-output .*existing folder"),
        (["--output", "/dev/null/out"], r"^--output .*'/dev/null' is a file, not a folder"),
        (["--set", "=1"], r"^--set expects NAME=VALUE"),
    ],
)
@pytest.mark.django_db  # refused before any commit: no need to flush the database
def test_bad_arguments_are_refused_before_anything_is_registered_or_created(tmp_path, args, message):
    """With a folder source: nothing is uploaded, generated, exported; no user or project is created."""
    from django.contrib.auth import get_user_model

    from apps.projects.models import Project, RepositoryExport
    from apps.templates.models import ProjectTemplate

    folder = write_template_folder(tmp_path / "tpl", slug="folder-one")
    models = (ProjectTemplate, GeneratedProject, RepositoryExport, Project, get_user_model())
    before = [model.objects.count() for model in models]
    with pytest.raises(CommandError, match=message):
        run("--template", str(folder), "--no-sync", *args)
    assert [model.objects.count() for model in models] == before
    assert not ProjectTemplate.objects.filter(slug="folder-one").exists()
    assert not get_user_model().objects.filter(username="kiln-cli").exists()


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("./no-such-folder", r"^--template: no such folder './no-such-folder'$"),
        ("missing.tar.gz", r"^--template: no such archive 'missing.tar.gz'$"),
        ("not a slug!", r"^--template 'not a slug!' is neither a catalog slug"),
        ("  ", r"^--template is empty"),
    ],
)
@pytest.mark.django_db  # refused before any commit: no need to flush the database
def test_bad_template_arguments_are_refused_before_work(template, message):
    with pytest.raises(CommandError, match=message):
        run("--template", template)
    assert not GeneratedProject.objects.exists()


# --- template sources ----------------------------------------------------------------------------


def write_template_folder(folder: Path, *, slug: str, version: str = "1.0.0") -> Path:
    (folder / "src").mkdir(parents=True)
    (folder / "template.yaml").write_text(
        f"slug: {slug}\nname: Folder template\nversion: '{version}'\n"
        "parameters:\n  type: object\n  properties:\n"
        "    name: {type: string, default: demo, description: The project's name.}\n"
        "    port: {type: integer, default: 8000, description: The HTTP port.}\n"
    )
    (folder / "README.md").write_text("# {{ name }} on {{ port }}\n")
    (folder / "src" / "{{ name }}.py").write_text("PORT = {{ port }}\n")
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o755)
    (folder / ".git").mkdir()  # a working copy's history is never part of the template
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return folder


def test_a_local_folder_is_registered_as_an_upload_then_generated(tmp_path, cli_dir):
    from apps.templates.models import ProjectTemplate

    folder = write_template_folder(tmp_path / "tpl", slug="from-folder")
    output = cli_dir / "out"
    text = run("--template", str(folder), "--no-sync", "--set", "name=kiln", "--set", "port=9000",
               "--output", str(output))  # fmt: skip
    assert f"template from-folder from folder {folder}: versions 1.0.0\n" in text
    template = ProjectTemplate.objects.get(slug="from-folder")
    assert (template.slug, template.source, template.uploaded_by.username) == ("from-folder", "upload", "kiln-cli")
    assert template.file_count == 3  # README.md, run.sh, src/{{ name }}.py; not .git
    assert tree(output) == tree(materialised(GeneratedProject.objects.get()))
    assert (output / "src" / "kiln.py").read_text() == "PORT = 9000\n" and tree(output)["run.sh"][1]
    # the same folder again: the same template, a second generation
    run("--template", str(folder), "--no-sync", "--set", "name=kiln", "--set", "port=9000")
    assert ProjectTemplate.objects.filter(source="upload").count() == 1 and GeneratedProject.objects.count() == 2
    first, second = GeneratedProject.objects.order_by("pk")
    assert first.content_sha256 == second.content_sha256


def test_a_folder_with_a_link_out_of_it_is_refused_by_the_catalog(tmp_path):
    from apps.templates.models import ProjectTemplate

    folder = write_template_folder(tmp_path / "tpl", slug="linked")
    (folder / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(CommandError, match=r"archive_unsafe_entry: .*passwd"):
        run("--template", str(folder), "--no-sync")
    assert not ProjectTemplate.objects.filter(slug="linked").exists() and not GeneratedProject.objects.exists()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_archive_is_registered_as_an_upload_then_generated(tmp_path, cli_dir, kind):
    import shutil

    from apps.templates.models import ProjectTemplate

    folder = write_template_folder(tmp_path / "tpl", slug=f"from-{kind.replace('.', '-')}")
    shutil.rmtree(folder / ".git")
    archive = Path(
        shutil.make_archive(str(tmp_path / "t"), "zip" if kind == "zip" else "gztar", root_dir=tmp_path, base_dir="tpl")
    )
    text = run("--template", str(archive), "--no-sync", "--set", "port=1", "--output", str(cli_dir / "out"))
    assert f"from archive {archive}" in text
    assert ProjectTemplate.objects.get(slug=f"from-{kind.replace('.', '-')}").source == "upload"
    assert (cli_dir / "out" / "src" / "demo.py").read_text() == "PORT = 1\n"


def test_a_slug_that_is_also_a_folder_here_is_the_slug_unless_written_as_a_path(make_template, tmp_path, monkeypatch):
    template = make_template(FILES, parameters=PARAMS, slug="same-name")
    write_template_folder(tmp_path / "same-name", slug="the-folder")
    monkeypatch.chdir(tmp_path)
    assert f"from {template.slug} " in run("--template", "same-name", "--no-sync")
    assert "template the-folder from folder" in run("--template", "./same-name", "--no-sync")


# --- list_templates ------------------------------------------------------------------------------


def test_list_templates_shows_versions_and_each_parameters_type_default_and_description(make_template):
    import json

    make_template(FILES, slug="listed", parameters=TYPED | {"required": ["count"]})
    out = io.StringIO()
    call_command("list_templates", "listed", "--no-sync", stdout=out)
    text = out.getvalue()
    assert text.startswith("listed  1.0.0  (upload, native)  Listed\n  versions: 1.0.0 (newest first)\n  parameters:\n")
    assert "    count: integer, required\n" in text
    assert '    version: string (one of "3.11", "3.12"), optional\n' in text
    assert "    tags: array of string, optional\n" in text and "    maybe: string | null, optional\n" in text
    out = io.StringIO()
    call_command("generate_project", "--list", "--no-sync", stdout=out)
    assert text in out.getvalue()
    make_template(
        FILES,
        slug="other",
        parameters=PARAMS
        | {"properties": {"name": {"type": "string", "default": "demo", "description": "The   name."}}},
    )
    out = io.StringIO()
    call_command("list_templates", "other", "--json", "--no-sync", stdout=out)
    assert json.loads(out.getvalue()) == [
        {
            "slug": "other",
            "name": "Other",
            "description": "",
            "source": "upload",
            "format": "native",
            "versions": ["1.0.0"],
            "latest_version": "1.0.0",
            "parameters": [
                {"name": "name", "type": "string", "required": False, "description": "The name.", "default": "demo"}
            ],
        }
    ]
    with pytest.raises(CommandError, match="template_not_found: no template named nope"):
        call_command("list_templates", "nope", "--no-sync")


def test_a_new_folder_version_is_added_and_any_version_generates_again(tmp_path):
    """The same folder with a new version label: a second version; --version picks one; the old one
    regenerates byte for byte; list_templates shows both, newest first."""
    folder = write_template_folder(tmp_path / "tpl", slug="versioned")
    run("--template", str(folder), "--no-sync", "--set", "port=1")
    (folder / "template.yaml").write_text((folder / "template.yaml").read_text().replace("'1.0.0'", "'1.1.0'"))
    (folder / "README.md").write_text("# {{ name }} v2 on {{ port }}\n")
    text = run("--template", str(folder), "--no-sync", "--set", "port=1")
    assert "template versioned from folder" in text and ": versions 1.1.0, 1.0.0\n" in text
    assert "generated #" in text and "from versioned 1.1.0:" in text
    old = run("--template", "versioned", "--version", "1.0.0", "--no-sync", "--set", "port=1")
    assert "from versioned 1.0.0:" in old
    first, second, third = GeneratedProject.objects.order_by("pk")
    assert (first.template_version, second.template_version, third.template_version) == ("1.0.0", "1.1.0", "1.0.0")
    assert third.content_sha256 == first.content_sha256 != second.content_sha256
    with pytest.raises(
        CommandError,
        match=r"version_not_found: Template 'versioned' has no version '9\.9' \(available: 1\.1\.0, 1\.0\.0\)",
    ):
        run("--template", "versioned", "--version", "9.9", "--no-sync")
    assert GeneratedProject.objects.count() == 3
    out = io.StringIO()
    call_command("list_templates", "versioned", "--no-sync", stdout=out)
    assert (
        "versioned  1.1.0  (upload, native)  Folder template\n  versions: 1.1.0, 1.0.0 (newest first)\n"
        in out.getvalue()
    )


def test_a_cookiecutter_folder_is_registered_with_slug_and_version(tmp_path, cli_dir):
    """A format that does not name itself: --slug and --version give the names the upload needs."""
    folder = tmp_path / "cc"
    (folder / "{{cookiecutter.project_slug}}").mkdir(parents=True)
    (folder / "cookiecutter.json").write_text('{"project_slug": "demo", "python": ["3.12", "3.11"], "ci": true}')
    (folder / "{{cookiecutter.project_slug}}" / "README.md").write_text(
        "{{ cookiecutter.project_slug }} {{ cookiecutter.python }} {{ cookiecutter.ci }}\n"
    )
    with pytest.raises(CommandError, match=r"slug: A cookiecutter template does not name itself.*\n  version: "):
        run("--template", str(folder), "--no-sync")
    text = run("--template", str(folder), "--slug", "cc-demo", "--version", "1.0.0", "--no-sync",
               "--set", "python=3.11", "--output", str(cli_dir / "out"))  # fmt: skip
    assert f"template cc-demo from folder {folder}: versions 1.0.0\n" in text and "from cc-demo 1.0.0:" in text
    generated = GeneratedProject.objects.get()
    assert generated.parameters["python"] == "3.11"
    assert [p.read_text() for p in (cli_dir / "out").rglob("README.md")] == ["demo 3.11 True\n"]
    with pytest.raises(CommandError, match=r"^--slug goes with a folder"):
        run("--template", "cc-demo", "--slug", "x", "--no-sync")


@pytest.mark.django_db  # refused before any commit: no need to flush the database
def test_a_folder_past_the_upload_limits_or_holding_a_socket_is_refused_while_packing(tmp_path, settings):
    import socket

    from apps.templates.models import ProjectTemplate

    folder = write_template_folder(tmp_path / "tpl", slug="too-big")
    settings.KILN_TEMPLATE_UPLOAD_MAX_FILES = 2
    with pytest.raises(CommandError, match=r"^--template: the folder .* holds more than the upload limits \(2 files"):
        run("--template", str(folder), "--no-sync")
    settings.KILN_TEMPLATE_UPLOAD_MAX_FILES = 100
    settings.KILN_TEMPLATE_UPLOAD_MAX_BYTES = 64
    # refused while packing once the compressed stream passes the limit, else by the catalog's own check
    with pytest.raises(
        CommandError, match=r"(packs to more than KILN_TEMPLATE_UPLOAD_MAX_BYTES|archive_too_large).*64 bytes"
    ):
        run("--template", str(folder), "--no-sync")
    settings.KILN_TEMPLATE_UPLOAD_MAX_BYTES = 1 << 20
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(folder / "a.sock"))
        with pytest.raises(CommandError, match=r"^--template: 'a.sock' in .* is a socket, not a file$"):
            run("--template", str(folder), "--no-sync")
    assert not ProjectTemplate.objects.filter(slug="too-big").exists()
