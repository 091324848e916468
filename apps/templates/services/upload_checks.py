"""What an uploaded native template must pass before it is stored (issue 20: checked at upload,
not at the first generation).

- Every parameter has a `default` and a `description`: the pages prefill their form from the
  defaults and label each field with its description, and a generation with no answers works.
  The 400 names `template.yaml`, the parameter's line and what it lacks.
- Every file Kiln would render compiles (its content and a templated path), exactly as the
  generator compiles it (`PreparedTemplate`, which also warms the compiled-code store for the
  first generation). The 400 is the generator's `template_syntax_error` naming the file and line.

Native templates only: Cookiecutter and Copier templates follow their tools' rules (their
variables are not described), and built-in templates are checked by their own tests.
"""

from __future__ import annotations

from typing import Any

import yaml

from apps.templates.services.formats.native import MANIFEST_NAME, ScannedTemplate, TemplateInvalid
from core.exceptions import ApplicationError, ValidationFailed

REQUIRED_KEYS = ("default", "description")
NAMED = 5


def parameter_lines(raw: bytes) -> dict[str, int]:
    """1-based line of each `parameters.properties.<name>` key in template.yaml (those it can find).

    Reads the node tree only (no values are built, aliases are not expanded); `parse_manifest`
    has already bounded the same bytes.
    """
    try:
        root = yaml.compose(raw.decode("utf-8"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError):
        return {}

    def child(node: Any, key: str) -> Any:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    return value_node
        return None

    properties = child(child(root, "parameters"), "properties")
    if not isinstance(properties, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line + 1 for key, _ in properties.value if isinstance(key, yaml.ScalarNode)}


def check_parameters(parameters: dict[str, Any], raw_manifest: bytes) -> None:
    """Every top-level parameter declares a default and a non-empty description."""
    properties = parameters.get("properties") or {}
    problems: list[dict[str, Any]] = []
    lines: dict[str, int] | None = None
    for name, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        missing = [key for key in REQUIRED_KEYS if key not in spec]
        if "description" not in missing and not str(spec.get("description") or "").strip():
            missing.append("description")
        if missing:
            if lines is None:
                lines = parameter_lines(raw_manifest)
            problems.append({"parameter": name, "line": lines.get(name), "missing": missing})
    if not problems:
        return
    described = [
        f"{MANIFEST_NAME}:{p['line']}: parameter '{p['parameter']}' needs a {' and a '.join(p['missing'])}"
        if p["line"]
        else f"{MANIFEST_NAME}: parameter '{p['parameter']}' needs a {' and a '.join(p['missing'])}"
        for p in problems[:NAMED]
    ]
    more = f" (and {len(problems) - NAMED} more)" if len(problems) > NAMED else ""
    first = problems[0]
    raise TemplateInvalid(
        "; ".join(described) + more + ". Every parameter of an uploaded template declares a default (what the "
        "form starts with and what a generation without answers uses) and a description (the form's help).",
        extra={
            "reason": "parameter_incomplete",
            "file": MANIFEST_NAME,
            "line": first["line"],
            "parameter": first["parameter"],
            "missing": first["missing"],
            "parameters": problems[:100],
        },
    )


def check_compiles(scanned: ScannedTemplate) -> None:
    """Compile every file the generator would render, as the generator does; its errors become 400s."""
    from apps.projects.services.project_generator import PreparedTemplate

    try:
        PreparedTemplate(scanned.folder, scanned.manifest, scanned.checksum)
    except ApplicationError as exc:
        raise ValidationFailed(exc.message, code=exc.code, extra=exc.extra) from None


def check_uploaded_template(scanned: ScannedTemplate) -> None:
    """The upload-time checks of a native template (a folder with template.yaml), parameters first."""
    raw = (scanned.folder / MANIFEST_NAME).read_bytes()
    check_parameters(scanned.manifest.parameters, raw)
    check_compiles(scanned)
