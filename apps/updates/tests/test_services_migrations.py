"""Declarative migrations: what template.yaml may declare, which migrations an update crosses,
and a rename migration end to end (the repository's changes follow the file to its new name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apps.projects.services.gitops import GIT_MODE_FILE, FileChange
from apps.templates.services.update_spec import Migration, UpdateSpecInvalid, parse_update_spec
from apps.updates.services.merge import MergeLimits, MergePolicy, Outcome, merge_trees
from apps.updates.services.migrations import between, migrate_answers, migrate_trees, migration_outcomes
from apps.updates.services.updates import final_changes
from apps.updates.tests.trees import tree

LIMITS = MergeLimits(max_files=100, max_merge_bytes=1 << 20, file_seconds=10, total_seconds=30)
BODY = "".join(f"line {i}\n" for i in range(1, 16))


def test_a_valid_spec() -> None:
    spec = parse_update_spec(
        {
            "update": {"skip_if_exists": [".env"], "exclude": ["docs/"]},
            "migrations": [
                {"version": "2.0.0", "rename": {"a.py": "b/a.py"}, "delete": ["setup.cfg"]},
                {"version": 3, "rename_answers": {"project": "project_name"}},
            ],
        }
    )
    assert spec.skip_if_exists == (".env",) and spec.exclude == ("docs/",)
    assert spec.migrations == (
        Migration("2.0.0", rename=(("a.py", "b/a.py"),), delete=("setup.cfg",)),
        Migration("3", rename_answers=(("project", "project_name"),)),
    )


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"update": ["x"]}, "update"),
        ({"update": {"run": "x"}}, "update"),
        ({"update": {"skip_if_exists": "x"}}, "update.skip_if_exists"),
        ({"update": {"exclude": ["x" * 300]}}, "update.exclude"),
        ({"migrations": {"version": "2"}}, "migrations"),
        ({"migrations": [{"version": "2", "command": "rm -rf /"}]}, "migrations[0]"),
        ({"migrations": [{"rename": {"a": "b"}}]}, "migrations[0].version"),
        ({"migrations": [{"version": True}]}, "migrations[0].version"),
        ({"migrations": [{"version": "2", "rename": ["a"]}]}, "migrations[0].rename"),
        ({"migrations": [{"version": "2", "rename": {"../etc/passwd": "x"}}]}, "migrations[0].rename"),
        ({"migrations": [{"version": "2", "rename": {"a": "/abs"}}]}, "migrations[0].rename"),
        ({"migrations": [{"version": "2", "delete": "a"}]}, "migrations[0].delete"),
        ({"migrations": [{"version": "2", "delete": [".git/config"]}]}, "migrations[0].delete"),
        ({"migrations": [{"version": "2", "rename_answers": {"a": 1}}]}, "migrations[0].rename_answers"),
        ({"migrations": [{"version": str(i)} for i in range(201)]}, "migrations"),
    ],
)
def test_invalid_specs_are_400_naming_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(UpdateSpecInvalid) as refused:
        parse_update_spec(data)
    assert refused.value.status_code == 400 and refused.value.code == "template_invalid"
    assert refused.value.extra["key"] == key


def test_template_yaml_with_a_bad_migration_is_refused_at_upload(make_template: Any) -> None:
    from core.exceptions import ApplicationError

    with pytest.raises(ApplicationError) as refused:
        make_template({"a.txt": "a"}, slug="badmig", migrations=[{"version": "2", "command": "sh evil.sh"}])
    assert refused.value.code == "template_invalid"


def test_which_migrations_an_update_crosses() -> None:
    migrations = [Migration("1.0.0"), Migration("1.5.0"), Migration("2.0.0"), Migration("2.0.1"), Migration("v-next")]
    assert [m.version for m in between(migrations, old="1.0.0", new="2.0.0")] == ["1.5.0", "2.0.0"]
    assert between(migrations, old="2.0.0", new="2.0.0") == []
    positions = {"a": 1, "b": 2, "c": 3}
    assert [m.version for m in between([Migration("c"), Migration("b")], old="a", new="c", positions=positions)] == [
        "b",
        "c",
    ]


def test_answers_are_renamed_in_order() -> None:
    migrations = [
        Migration("2", rename_answers=(("port", "http_port"),)),
        Migration("3", rename_answers=(("http_port", "listen"),)),
    ]
    assert migrate_answers(migrations, {"port": 80, "name": "x"}) == {"listen": 80, "name": "x"}
    assert migrate_answers(migrations, {"port": 80, "listen": 1}) == {"http_port": 80, "listen": 1}


def test_a_rename_migration_carries_the_repository_changes_to_the_new_path(tmp_path: Path) -> None:
    theirs_body = BODY.replace("line 2\n", "line two\n")
    ours_body = BODY.replace("line 14\n", "line 14 (ours)\n")
    base = tree({"src/app.py": BODY, "setup.cfg": "[x]\n", "keep.txt": "k\n"})
    theirs = tree({"src/service.py": theirs_body, "keep.txt": "k\n"})
    ours = tree({"src/app.py": ours_body, "setup.cfg": "[x]\nmine\n", "keep.txt": "k\n", "mine.txt": "m\n"})
    migrations = [Migration("2.0.0", rename=(("src/app.py", "src/service.py"),), delete=("setup.cfg",))]
    migrated = migrate_trees(migrations, base=base, ours=ours)
    merged = merge_trees(
        base=migrated.base,
        theirs=theirs,
        ours=migrated.ours,
        policy=MergePolicy(),
        limits=LIMITS,
        scratch=tmp_path,
    )
    report = {item.path: item for item in migration_outcomes(migrated, merged.report())}
    assert report["src/service.py"].outcome == Outcome.MERGED
    assert report["src/service.py"].renamed_from == "src/app.py"
    assert report["setup.cfg"].outcome == Outcome.DELETED and "migration" in report["setup.cfg"].reason
    changes = final_changes(ours, migrated.ours, merged.changes)
    expected = BODY.replace("line 2\n", "line two\n").replace("line 14\n", "line 14 (ours)\n")
    assert changes == {
        "src/app.py": None,
        "setup.cfg": None,
        "src/service.py": FileChange(mode=GIT_MODE_FILE, data=expected.encode()),
    }


def test_a_rename_onto_an_existing_path_leaves_the_tree_alone() -> None:
    ours = tree({"a.txt": "a\n", "b.txt": "b\n"})
    migrated = migrate_trees([Migration("2", rename=(("a.txt", "b.txt"),))], base=tree({}), ours=ours)
    assert set(migrated.ours.entries) == {"a.txt", "b.txt"} and migrated.renamed == {}


def test_a_folder_rename_moves_every_file_below_it() -> None:
    ours = tree({"pkg/a.py": "a\n", "pkg/sub/b.py": "b\n", "other.py": "o\n"})
    migrated = migrate_trees([Migration("2", rename=(("pkg", "lib/pkg"),))], base=tree({}), ours=ours)
    assert set(migrated.ours.entries) == {"lib/pkg/a.py", "lib/pkg/sub/b.py", "other.py"}
    assert migrated.renamed == {"lib/pkg/a.py": "pkg/a.py", "lib/pkg/sub/b.py": "pkg/sub/b.py"}


def test_rename_migration_through_the_update_job(exported: Any, settings: Any) -> None:
    from apps.updates.services.updates import update_execute, update_start
    from apps.updates.tests.conftest import LINES, V1, publish
    from tests.forge.model import run_git

    target = exported("github")
    parameters = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "default": "shop"},
            "http_port": {"type": "integer", "default": 8000},
        },
    }
    v3 = {k: v for k, v in V1.items() if k not in ("app.py", "config.yaml")}
    v3["service.py"] = "NAME = '{{ name }}'\nPORT = {{ http_port }}\n" + LINES.replace("line 1\n", "line one\n")
    publish(
        settings,
        "svc",
        "3.0.0",
        v3,
        parameters=parameters,
        migrations=[
            {"version": "3.0.0", "rename": {"app.py": "service.py"}, "delete": ["config.yaml"]},
            {"version": "3.0.0", "rename_answers": {"port": "http_port"}},
        ],
    )
    update, _ = update_start(
        generated=target.generated, data={"mode": "branch", "parameters": {}}, actor=target.user, enqueue=False
    )
    assert update.parameters["http_port"] == 8000 and "port" not in update.parameters
    done = update_execute(update_id=update.pk, owner="test:1:mig")
    assert done.status == "completed", done.error
    files = {f["path"]: f for f in done.files}
    assert files["service.py"]["renamed_from"] == "app.py"
    assert files["config.yaml"]["outcome"] == "deleted"
    bare = target.forge.repo_path(target.full_name)
    listing = run_git(["ls-tree", "--name-only", "kiln/update/svc-3.0.0"], home=target.forge.home, git_dir=bare)
    names = listing.stdout.decode().split()
    assert "service.py" in names and "app.py" not in names and "config.yaml" not in names
    service = run_git(["cat-file", "blob", "kiln/update/svc-3.0.0:service.py"], home=target.forge.home, git_dir=bare)
    text = service.stdout.decode()
    assert "line one" in text and "line 18 (ours)" in text  # the team's change followed the rename


def test_an_update_to_an_older_version_crosses_its_migrations_in_version_order(
    exported_git: Any, settings: Any
) -> None:
    """Any recorded version is a target, not only the latest; the versions' order is the template's
    (PEP 440), not the order they were recorded in; migrations apply in version order."""
    from apps.updates.services import versions
    from apps.updates.services.drift import drift_rows
    from apps.updates.services.updates import update_execute, update_start
    from apps.updates.tests.conftest import V1, publish

    target = exported_git()  # 1.0.0 exported, then 2.0.0 recorded
    v15 = {("main.py" if k == "app.py" else k): v for k, v in V1.items()}
    publish(
        settings,
        "svc",
        "1.5.0",  # recorded after 2.0.0
        v15,
        migrations=[  # listed out of order: 1.2.0 must run first for 1.5.0's rename to find its file
            {"version": "1.5.0", "rename": {"lib/app.py": "main.py"}},
            {"version": "1.2.0", "rename": {"app.py": "lib/app.py"}},
            {"version": "3.0.0", "delete": ["run.sh"]},  # beyond the target: not crossed
        ],
    )
    template = target.template
    template.refresh_from_db()
    assert versions.latest_label(template) == "2.0.0" == template.version
    positions = versions.version_positions(template)
    assert positions == {"1.0.0": 0, "1.5.0": 1, "2.0.0": 2}
    assert versions.is_behind("1.5.0", "2.0.0", positions) and not versions.is_behind("2.0.0", "2.0.0", positions)
    [row] = drift_rows(template_slug="svc", actor=target.user)
    assert (row["version"], row["latest_version"], row["behind"]) == ("1.0.0", "2.0.0", True)

    update, _ = update_start(
        generated=target.generated, data={"mode": "preview", "to_version": "1.5.0"}, actor=target.user, enqueue=False
    )
    assert (update.from_version, update.to_version, update.branch) == ("1.0.0", "1.5.0", "kiln/update/svc-1.5.0")
    done = update_execute(update_id=update.pk, owner="test:1:older")
    assert done.status == "completed", done.error
    assert done.new_generation.template_version_ref.version == "1.5.0"  # rendered pinned to that version
    files = {f["path"]: f for f in done.files}
    assert files["main.py"]["renamed_from"] == "app.py" and files["main.py"]["outcome"] == "unchanged"
    assert "app.py" not in files and "lib/app.py" not in files
    assert files.get("run.sh", {}).get("outcome", "unchanged") == "unchanged"
