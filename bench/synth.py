"""The deterministic synthetic template, written in three formats with the same logical content.

* `native`: Kiln's format — `template.yaml` plus the files (contents and path segments are Jinja2).
* `copier`: `copier.yml` (`_subdirectory: template`, `_templates_suffix: ""` so every file renders,
  `_exclude`) plus `template/` holding the same files.
* `cookiecutter`: `cookiecutter.json` (`_copy_without_render` for the binary files) plus
  `{{cookiecutter.project_slug}}/` holding the same files with `cookiecutter.`-prefixed variables.

For N files: about 2 KB each, about ten Jinja expressions per text file (variables, a filter, a loop,
two conditions), 20 files per folder, folders nested `src/{{ package_name }}/gNNN/mNNNN/` (every third
folder name templated), every 20th file binary (5 %), one templated file name and one conditional
file name per folder (`{% if use_docker %}...` kept, `{% if license == "GPL" %}...` skipped in every
other folder) and an executable script in every fifth folder. Every engine must produce the same bytes:
all three keep the trailing newline, none trims blocks, and binary files are copied unrendered (Kiln
and Copier detect them, Cookiecutter by `_copy_without_render` and binaryornot).

    .venv/bin/python -m bench.synth --sizes 100,1000        # writes bench/work/templates/...
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.common import WORK

SYNTH_VERSION = "1"  # bump whenever the generated content changes; cached templates are rebuilt
FORMATS = ("native", "copier", "cookiecutter")
FILES_PER_FOLDER = 20
FOLDERS_PER_GROUP = 10
TEMPLATE_VERSION = "1.0.0"

PARAMETERS: dict[str, str | bool] = {
    "project_name": "Bench Project",
    "project_slug": "bench-project",
    "package_name": "bench_pkg",
    "author": "Ada Lovelace",
    "version": "0.1.0",
    "description": "A synthetic project rendered by the Kiln benchmark",
    "license": "MIT",
    "use_docker": True,
    "features": "auth,api,cli,docs,admin",
}

EXCLUDE_NATIVE = ["**/__pycache__/**", "*.pyc", ".DS_Store"]
EXCLUDE_COPIER = ["__pycache__", "*.pyc", ".DS_Store"]
COPY_WITHOUT_RENDER = ["*.bin"]

# `@@` stands for the variable prefix: "" (Kiln, Copier) or "cookiecutter.".
_TEXT = '''# {{ @@project_name }}: module <<I>>
# Copyright (c) {{ @@author }}; license {{ @@license }}.
"""{{ @@description }}."""

PACKAGE = "{{ @@package_name }}"
VERSION = "{{ @@version }}"
MODULE_ID = <<N>>
{% if @@use_docker %}
IMAGE = "{{ @@project_slug }}:{{ @@version }}"
{% else %}
IMAGE = None
{% endif %}
FEATURES = [
{% for feature in @@features.split(",") %}
    "{{ feature | upper }}",
{% endfor %}
]
{% if @@license == "MIT" %}
LICENSE_URL = "https://opensource.org/licenses/MIT"
{% endif %}

'''

_WORDS = (
    *("alpha", "beta", "gamma", "delta", "epsilon", "kiln", "render", "template", "project", "folder"),
    *("module", "package", "config", "service", "export", "archive", "commit", "branch", "remote"),
    *("worker", "queue", "cache", "bytes", "lorem", "ipsum", "dolor", "sit", "amet", "consectetur"),
    *("adipiscing", "elit", "sed", "do", "eiusmod", "tempor", "incididunt", "labore"),
)


@dataclass(frozen=True)
class SynthFile:
    index: int
    path: str  # with `@@` for the variable prefix
    binary: bool
    mode: int


def layout(n: int) -> Iterator[SynthFile]:
    for i in range(n):
        folder = i // FILES_PER_FOLDER
        group = folder // FOLDERS_PER_GROUP
        slot = i % FILES_PER_FOLDER
        folder_name = f"{{{{ @@package_name }}}}_m{folder:04d}" if folder % 3 == 1 else f"m{folder:04d}"
        base = f"src/{{{{ @@package_name }}}}/g{group:03d}/{folder_name}"
        mode = 0o644
        binary = False
        if slot == FILES_PER_FOLDER - 1:
            name, binary = f"asset_{i:05d}.bin", True
        elif slot == 0:
            name = f"{{{{ @@package_name }}}}_{i:05d}.py"
        elif slot == 1:
            name = f"{{% if @@use_docker %}}Dockerfile_{i:05d}{{% endif %}}"
        elif slot == 2 and folder % 2 == 0:
            name = f'{{% if @@license == "GPL" %}}COPYING_{i:05d}{{% endif %}}'
        elif slot == 3 and folder % 5 == 0:
            name, mode = f"run_{i:05d}.sh", 0o755
        else:
            name = f"module_{i:05d}.py"
        yield SynthFile(index=i, path=f"{base}/{name}", binary=binary, mode=mode)


def text_content(index: int, prefix: str) -> bytes:
    rng = random.Random(index)
    head = _TEXT.replace("<<I>>", f"{index:05d}").replace("<<N>>", str(index))
    size = len(head.replace("@@", ""))  # the filler must not depend on the prefix
    lines = [head.replace("@@", prefix)]
    while size < 1950:
        line = "# " + " ".join(rng.choice(_WORDS) for _ in range(11)) + "\n"
        lines.append(line)
        size += len(line)
    return "".join(lines).encode("ascii")


def binary_content(index: int) -> bytes:
    rng = random.Random(1_000_000 + index)
    # A PNG signature: invalid UTF-8 at byte 0 and NUL bytes in the head, so every engine copies it.
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(2032)


def _write_files(root: Path, n: int, prefix: str) -> None:
    for entry in layout(n):
        target = root / entry.path.replace("@@", prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(binary_content(entry.index) if entry.binary else text_content(entry.index, prefix))
        os.chmod(target, entry.mode)


def slug_for(n: int) -> str:
    return f"bench-n{n}"


def write_native(root: Path, n: int) -> None:
    properties = {
        name: {"type": "boolean" if isinstance(value, bool) else "string", "default": value}
        for name, value in PARAMETERS.items()
    }
    manifest = {
        "slug": slug_for(n),
        "name": f"Bench synthetic template ({n} files)",
        "description": "Generated by bench/synth.py; the same content as the Copier and Cookiecutter versions.",
        "version": TEMPLATE_VERSION,
        "parameters": {"type": "object", "properties": properties, "additionalProperties": False},
        "exclude": EXCLUDE_NATIVE,
        "copy_without_render": COPY_WITHOUT_RENDER,
    }
    root.mkdir(parents=True)
    (root / "template.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    _write_files(root, n, "")


def write_copier(root: Path, n: int) -> None:
    config: dict[str, object] = {
        "_subdirectory": "template",
        "_templates_suffix": "",
        "_exclude": EXCLUDE_COPIER,
        "_envops": {"keep_trailing_newline": True},
    }
    for name, value in PARAMETERS.items():
        config[name] = {"type": "bool" if isinstance(value, bool) else "str", "default": value}
    root.mkdir(parents=True)
    (root / "copier.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    _write_files(root / "template", n, "")


def write_cookiecutter(root: Path, n: int) -> None:
    config: dict[str, object] = dict(PARAMETERS)
    config["_copy_without_render"] = COPY_WITHOUT_RENDER
    root.mkdir(parents=True)
    (root / "cookiecutter.json").write_text(json.dumps(config, indent=2) + "\n")
    _write_files(root / "{{cookiecutter.project_slug}}", n, "cookiecutter.")


WRITERS = {"native": write_native, "copier": write_copier, "cookiecutter": write_cookiecutter}


def templates_root() -> Path:
    """KILN_TEMPLATES_DIR of the bench: the native templates are `<root>/n<N>/native`."""
    return WORK / "templates" / f"synth-v{SYNTH_VERSION}"


def template_dir(n: int, fmt: str) -> Path:
    return templates_root() / f"n{n}" / fmt


def native_source_path(n: int) -> str:
    return f"n{n}/native"


def source_path(n: int, fmt: str) -> str:
    """The folder of one format's template, relative to KILN_TEMPLATES_DIR (`templates_root`)."""
    return f"n{n}/{fmt}"


def foreign_slug(n: int, fmt: str) -> str:
    """The catalog slug of the Copier or Cookiecutter template registered as what it is (`formats`)."""
    return f"bench-{fmt}-n{n}"


def ensure_templates(n: int, formats: tuple[str, ...] = FORMATS) -> Path:
    """Write the formats for `n` files once each (cached under bench/work/templates/); returns their parent."""
    root = templates_root() / f"n{n}"
    for fmt in formats:
        final = root / fmt
        if final.is_dir():
            continue
        staging = root / f".{fmt}-{uuid.uuid4().hex[:8]}"
        try:
            WRITERS[fmt](staging, n)
            os.rename(staging, final)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return root


def expected_output_count(n: int) -> int:
    """Files every engine must write: the template's files minus the skipped `COPYING_*`."""
    return sum(1 for entry in layout(n) if "GPL" not in entry.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100", help="comma-separated file counts (default 100)")
    args = parser.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        print(ensure_templates(n))


if __name__ == "__main__":
    main()
