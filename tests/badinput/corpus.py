"""The hostile-input corpus, drawn from reference/reliability.md § (b), B1-B7.

Every table below is plain data (see `cases.py` for the record and its placeholders).
`ALL_CASES` is what `test_corpus.py` runs; `test_corpus_size` keeps it at 60 or more.
Cases that exposed a defect carry `bug=...` and run as `xfail(strict=False)`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.badinput.bombs import extended_header_bomb, pax_header_chain
from tests.badinput.cases import Case, Expect, api_call, connection, dry, export, gen, http, scenario, upload

BIG = 11_000_000  # just above MAX_FILE_SIZE (10 MiB): a value this long must be refused before it exists

# ---------------------------------------------------------------------------------------------
# B2 #16-18, #24: rendered output paths (a parameter flows into a file name)
# ---------------------------------------------------------------------------------------------


def _path(case_id: str, name: str, fragment: str, code: str = "unsafe_path", **kw: object) -> Case:
    return gen(case_id, "template-path", {"{{ name }}": "owned\n"}, code, fragment, params={"name": name}, **kw)  # type: ignore[arg-type]


TEMPLATE_PATH_CASES = [
    _path("path-dotdot-escape", "{UP}/{PWN_NAME}", "escapes the output folder"),
    gen(
        "path-dotdot-nested",
        "template-path",
        {"src/{{ name }}/main.py": "x\n"},
        "unsafe_path",
        "escapes the output folder",
        params={"name": "../../../../{PWN_NAME}"},
    ),
    _path("path-absolute", "{PWN}", "is absolute"),
    _path("path-absolute-cron", "/etc/cron.d/kiln-pwn", "is absolute"),
    _path("path-windows-drive", "C:/Windows/kiln-pwn", "is absolute"),
    _path("path-backslash-traversal", "..\\..\\..\\{PWN_NAME}", "backslash"),
    _path("path-unc-share", "\\\\server\\share\\x", "backslash"),
    _path("path-git-hooks", ".git/hooks/pre-commit", "inside '.git/'"),
    _path("path-git-config-upper", ".GIT/config", "inside '.git/'"),
    _path("path-nested-git", "sub/.git/hooks/post-checkout", "inside '.git/'"),
    gen(
        "path-nul-from-expression",
        "template-path",
        {"a{{ '%c' % 0 }}b": "x\n"},
        "unsafe_path",
        "control character",
    ),
    http(
        "path-nul-in-parameters",
        "template-path",
        "POST",
        "/projects/{project}/generated/",
        400,
        "parse_error",
        "NUL characters",
        body={"template": "{template}", "parameters": {"name": "a\x00b"}},
    ),
    _path("path-newline", "a\nb", "control character"),
    _path("path-ansi-escape", "\x1b[31mred", "control character"),
    _path("path-del-char", "a\x7fb", "control character"),
    _path("path-empty-segment", "a//b", "empty or '.' segment"),
    _path("path-dot-segment", "./a", "empty or '.' segment"),
    _path("path-only-dotdot", "..", "escapes the output folder"),
    _path("path-trailing-dot", "evil.", "ending in a dot or space"),
    _path("path-trailing-space", "evil ", "ending in a dot or space"),
    _path("path-segment-300-bytes", "x" * 300, "longer than 255 bytes"),
    _path("path-total-1200-chars", "/".join(["y" * 200] * 6), "longer than 1024"),
    gen(
        "path-case-collision",
        "template-path",
        {"README.md": "1\n", "{{ name }}": "2\n"},
        "duplicate_output_path",
        "render to the same path",
        params={"name": "readme.md"},
    ),
    gen(
        "path-exact-duplicate",
        "template-path",
        {"a.txt": "1\n", "{{ name }}": "2\n"},
        "duplicate_output_path",
        "render to the same path",
        params={"name": "a.txt"},
    ),
    gen(
        "path-nfc-nfd-collision",
        "template-path",
        {"caf\u00e9.txt": "1\n", "{{ name }}": "2\n"},
        "duplicate_output_path",
        "same path",
        params={"name": "cafe\u0301.txt"},
        bug=(
            "BUG: 'café.txt' (NFC) and 'cafe\\u0301.txt' (NFD) both get written; the duplicate check only "
            "case-folds (project_generator.render: key = path.casefold()), so on a normalising file system "
            "(macOS, many git clients) one silently overwrites the other (reliability.md B2 #24)."
        ),
    ),
    gen(
        "path-literal-braces-are-data",
        "template-path",
        {"{0.__class__}.txt": "a\n", "{bad}/f.txt": "b\n"},
        None,
        state="completed",
        check_files={"{0.__class__}.txt": b"a\n", "{bad}/f.txt": b"b\n"},
    ),
    gen(
        "path-syntax-error-in-name",
        "template-path",
        {"{{ name": "x\n"},
        "template_syntax_error",
        "the path of",
    ),
    gen(
        "path-sandbox-escape-in-name",
        "template-path",
        {"{{ name.__class__ }}": "x\n"},
        "template_security_violation",
        "sandbox forbids",
    ),
]

# ---------------------------------------------------------------------------------------------
# B2 #23, #25, #26 and B3 #30: what the template folder itself contains
# ---------------------------------------------------------------------------------------------

TEMPLATE_SOURCE_CASES = [
    gen(
        "source-symlink-to-sentinel",
        "template-source",
        {"a.txt": "x\n"},
        "symlink_not_allowed",
        "symbolic link",
        plant=[{"path": "leak.txt", "type": "symlink", "target": "{SENTINEL}"}],
    ),
    gen(
        "source-symlinked-directory",
        "template-source",
        {"a.txt": "x\n"},
        "symlink_not_allowed",
        "symbolic link",
        plant=[{"path": "outside", "type": "symlink", "target": "{TMP}"}],
    ),
    gen(
        "source-fifo",
        "template-source",
        {"a.txt": "x\n"},
        "unsupported_file_type",
        "not a regular file",
        plant=[{"path": "pipe", "type": "fifo"}],
    ),
    gen(
        "source-planted-git-hook",
        "template-source",
        {"a.txt": "x\n"},
        "unsafe_path",
        "inside '.git/'",
        plant=[{"path": ".git/hooks/pre-commit", "type": "file", "data": "#!/bin/sh\ntouch {PWN}\n"}],
    ),
    gen(
        "source-hardlink-to-sentinel",
        "template-source",
        {"a.txt": "x\n"},
        ("unsupported_file_type", "hardlink_not_allowed", "symlink_not_allowed"),
        None,
        plant=[{"path": "leak.txt", "type": "hardlink", "target": "{SENTINEL}"}],
        bug=(
            "BUG: a hard link in a template folder is read like any file (templates.iter_template_files "
            "checks S_ISLNK/S_ISREG only, never st_nlink), so the linked outside file's content lands in the "
            "generated project; RELIABILITY.md says hardlinks are refused when reading templates."
        ),
    ),
    gen(
        "source-binary-non-utf8-copied",
        "template-source",
        {"img.png": b"\x89PNG\r\n\x1a\n\xff\xfe{{ name }}\xfe"},
        None,
        state="completed",
        check_files={"img.png": b"\x89PNG\r\n\x1a\n\xff\xfe{{ name }}\xfe"},
    ),
    gen(
        "source-latin1-text-copied",
        "template-source",
        {"notes.txt": b"caf\xe9 {{ name }}\n"},
        None,
        state="completed",
        check_files={"notes.txt": b"caf\xe9 {{ name }}\n"},
    ),
    gen(
        "source-cookiecutter-hook-never-runs",
        "template-source",
        {
            "hooks/post_gen_project.py": "import pathlib\npathlib.Path('{PWN}').write_text('pwned')\n",
            "hooks/pre_gen_project.sh": "#!/bin/sh\ntouch {PWN}\n",
        },
        None,
        state="completed",
    ),
    gen(
        "source-syntax-error",
        "template-source",
        {"a.txt": "{% for x in y %}\nno end\n"},
        "template_syntax_error",
        "a.txt",
    ),
    gen(
        "source-undefined-variable",
        "template-source",
        {"a.txt": "{{ missing_var }}\n"},
        "template_variable_missing",
        "is undefined",
    ),
]

# ---------------------------------------------------------------------------------------------
# B2 #13-14: sandbox escapes (dry run: the API answers 422 with the render error)
# ---------------------------------------------------------------------------------------------

_SEC = "template_security_violation"
_FORBIDS = "sandbox forbids"

SANDBOX_CASES = [
    gen(
        "sandbox-mro-subclasses",
        "sandbox-escape",
        {"a.txt": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
        _SEC,
        _FORBIDS,
    ),
    dry("sandbox-base-subclasses", "sandbox-escape", "{{ ().__class__.__base__.__subclasses__() }}", _SEC, _FORBIDS),
    dry("sandbox-attr-filter-class", "sandbox-escape", "{{ name|attr('__class__') }}", _SEC, _FORBIDS),
    dry("sandbox-str-format-class", "sandbox-escape", "{{ '{0.__class__}'.format(name) }}", _SEC, _FORBIDS),
    dry("sandbox-format-map", "sandbox-escape", "{{ '{x.__class__}'.format_map({'x': name}) }}", _SEC, _FORBIDS),
    dry(
        "sandbox-attr-format-cve-2025-27516",
        "sandbox-escape",
        "{{ '{0.__class__.__mro__}'|attr('format')(1) }}",
        _SEC,
        _FORBIDS,
    ),
    dry("sandbox-cycler-globals", "sandbox-escape", "{{ cycler.__init__.__globals__.os }}", _SEC, _FORBIDS),
    dry("sandbox-joiner-globals", "sandbox-escape", "{{ joiner.__init__.__globals__ }}", _SEC, _FORBIDS),
    dry(
        "sandbox-namespace-format-cve-2024-56326",
        "sandbox-escape",
        "{% set ns = namespace(f='{0.__class__}'.format) %}{{ ns.f(1) }}",
        _SEC,
        _FORBIDS,
    ),
    dry("sandbox-namespace-init-globals", "sandbox-escape", "{{ namespace.__init__.__globals__ }}", _SEC, _FORBIDS),
    dry("sandbox-self-init", "sandbox-escape", "{{ self.__init__ }}", _SEC, _FORBIDS),
    # lipsum is no longer a global (issue 21 item 19): nothing to reach through
    dry(
        "sandbox-lipsum-globals", "sandbox-escape", "{{ lipsum.__globals__ }}", "template_variable_missing", "undefined"
    ),
    dry("sandbox-range-globals", "sandbox-escape", "{{ range.__globals__ }}", _SEC, _FORBIDS),
    dry("sandbox-dunder-method-call", "sandbox-escape", "{{ name.__len__() }}", _SEC, _FORBIDS),
    dry("sandbox-mutate-dict", "sandbox-escape", "{% set d = {} %}{{ d.update({'a': 1}) }}", _SEC, _FORBIDS),
    dry("sandbox-mutate-list", "sandbox-escape", "{% set l = [] %}{{ l.append(1) }}", _SEC, _FORBIDS),
    dry("sandbox-flask-config", "sandbox-escape", "{{ config.items() }}", "template_variable_missing", "is undefined"),
    dry(
        "sandbox-request-environ",
        "sandbox-escape",
        "{{ request.environ }}",
        "template_variable_missing",
        "is undefined",
    ),
    dry(
        "sandbox-include-etc-passwd",
        "sandbox-escape",
        "{% include '../../../../etc/passwd' %}",
        "template_error",
        "a.txt",
    ),
    dry("sandbox-extends-absolute", "sandbox-escape", "{% extends '/etc/passwd' %}", "template_error", "a.txt"),
    dry("sandbox-import-manifest", "sandbox-escape", "{% import 'template.yaml' as m %}", "template_error", "a.txt"),
]

# ---------------------------------------------------------------------------------------------
# B2 #19-20: render bombs and output caps
# ---------------------------------------------------------------------------------------------

_LIMIT = "output_limit_exceeded"

RENDER_BOMB_CASES = [
    gen("bomb-string-repeat", "render-bomb", {"a.txt": "{{ 'a' * 10**9 }}"}, _LIMIT, "above the output size limit"),
    dry("bomb-list-repeat", "render-bomb", "{{ [0] * 10**9 }}", _LIMIT, "above the output size limit"),
    dry("bomb-percent-width", "render-bomb", "{{ '%0999999999d' % 1 }}", _LIMIT, "Format widths"),
    dry("bomb-format-width", "render-bomb", "{{ '{:>999999999}'.format(1) }}", _LIMIT, "Format widths"),
    dry(
        "bomb-format-nested-int-width",
        "render-bomb",
        "{{ '{:>{}}'.format(1, 10**9) }}",
        _LIMIT,
        "above the output size limit",
    ),
    dry("bomb-indent-filter", "render-bomb", "{{ 'x'|indent(10**9) }}", _LIMIT, "above the output size limit"),
    dry("bomb-center-method", "render-bomb", "{{ 'x'.center(10**9) }}", _LIMIT, "above the output size limit"),
    dry("bomb-zfill-method", "render-bomb", "{{ '1'.zfill(10**9) }}", _LIMIT, "above the output size limit"),
    dry("bomb-power", "render-bomb", "{{ 9 ** 99999999 }}", _LIMIT, "Exponents above"),
    dry("bomb-range-1e9", "render-bomb", "{{ range(10**9)|list|length }}", "template_error", "Range too big"),
    dry(
        "bomb-recursive-macro",
        "render-bomb",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "template_error",
        "recursed too deeply",
    ),
    dry("bomb-self-include", "render-bomb", "{% include 'f0' %}", "template_error", "recursed too deeply"),
    gen(
        "bomb-nested-loops-time-limit",
        "render-bomb",
        {"slow.txt": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"},
        "render_time_limit",
        "render time limit",
        settings={"KILN_RENDER_TIME_LIMIT": 0.2},
    ),
    gen(
        "bomb-streamed-file-over-cap",
        "render-bomb",
        {"big.txt": "{% for i in range(100000) %}{{ 'x' * 200 }}{% endfor %}"},
        _LIMIT,
        "renders to more than",
    ),
    gen(
        "bomb-total-bytes-cap",
        "render-bomb",
        {"a.txt": "a" * 600, "b.txt": "b" * 600},
        _LIMIT,
        "total size limit",
        settings={"KILN_MAX_TOTAL_BYTES": 1000},
    ),
    gen(
        "bomb-too-many-files",
        "render-bomb",
        {f"f{i}.txt": "x" for i in range(6)},
        "too_many_files",
        "above the limit",
        settings={"KILN_MAX_FILES": 3},
    ),
]

# Values far above the per-value cap that the sandbox's checks miss. Each one is wrapped in
# `|length` so the rendered file stays tiny: the job *completes* today, having built a
# BIG-character string in memory. Scale BIG up by 1000 and a single dry run (which renders in
# the web process) allocates gigabytes: a memory DoS available to any template uploader.
_BYPASS = (
    "BUG: the sandbox's size cap misses {what}; `{expr}` builds a value of more than MAX_FILE_SIZE characters "
    "(the job completes instead of failing output_limit_exceeded). core/sandbox.py only checks {checked}."
)

SANDBOX_BYPASS_CASES = [
    dry(
        "bypass-percent-star-width",
        "render-bomb",
        f"{{{{ ('%*d' % ({BIG}, 1))|length }}}}",
        _LIMIT,
        None,
        bug=_BYPASS.format(
            what="'*' widths in %-formatting",
            expr=f"'%*d' % ({BIG}, 1)",
            checked="literal widths of 6+ digits in the format string (_WIDTH_RE), not widths passed as arguments",
        ),
    ),
    dry(
        "bypass-percent-star-precision",
        "render-bomb",
        f"{{{{ ('%.*f' % ({BIG}, 1.0))|length }}}}",
        _LIMIT,
        None,
        bug=_BYPASS.format(
            what="'.*' precisions in %-formatting",
            expr=f"'%.*f' % ({BIG}, 1.0)",
            checked="literal widths in the format string",
        ),
    ),
    dry(
        "bypass-format-map-nested-width",
        "render-bomb",
        f"{{{{ ('{{a:{{w}}}}'.format_map({{'a': 1, 'w': {BIG}}}))|length }}}}",
        _LIMIT,
        None,
        bug=_BYPASS.format(
            what="nested widths passed through str.format_map",
            expr=f"'{{a:{{w}}}}'.format_map({{'a': 1, 'w': {BIG}}})",
            checked="int positional/keyword arguments of str.format (the mapping is one dict argument)",
        ),
    ),
    dry(
        "bypass-format-string-width",
        "render-bomb",
        f"{{{{ ('{{:>{{w}}}}'.format(1, w='{BIG}'))|length }}}}",
        _LIMIT,
        None,
        bug=_BYPASS.format(
            what="nested widths given as strings",
            expr=f"'{{:>{{w}}}}'.format(1, w='{BIG}')",
            checked="arguments that are ints",
        ),
    ),
    dry(
        "bypass-replace-empty-needle",
        "render-bomb",
        "{{ (('x' * 5000)|replace('', 'y' * 5000))|length }}",
        _LIMIT,
        None,
        bug=_BYPASS.format(
            what="str.replace / |replace with an empty needle (quadratic growth)",
            expr="('x' * 5000)|replace('', 'y' * 5000)",
            checked="*, **, %, padding methods, format widths, indent and center",
        ),
    ),
    dry(
        "bypass-list-of-big-strings-join",
        "render-bomb",
        "{{ ((['x' * 5000] * 5000)|join)|length }}",
        _LIMIT,
        None,
        bug=_BYPASS.format(
            what="repetition of lists of long strings, then |join",
            expr="(['x' * 5000] * 5000)|join",
            checked="the item count of a repeated list (5000 items), not the bytes the items hold",
        ),
    ),
    dry(
        "bypass-join-big-separator",
        "render-bomb",
        "{{ (range(5000)|join('x' * 5000))|length }}",
        _LIMIT,
        None,
        bug=_BYPASS.format(
            what="|join with a long separator",
            expr="range(5000)|join('x' * 5000)",
            checked="*, **, %, padding methods, format widths, indent and center",
        ),
    ),
    dry(
        "bypass-chained-powers",
        "render-bomb",
        "{{ ((2 ** 1000) ** 1000).bit_length() }}",
        _LIMIT,
        "Exponents above",
        bug=(
            "BUG: MAX_POWER_EXPONENT (1000) is checked per operation, so powers chain: ((2**1000)**1000) is a "
            "1,000,001-bit integer and one more '** 1000' is 2**(10**9) (125 MB, minutes of CPU in the web "
            "process for a dry run). core/sandbox.py KilnSandbox.call_binop('**') checks only the exponent."
        ),
    ),
]

# ---------------------------------------------------------------------------------------------
# B3 #37: uploaded template archives
# ---------------------------------------------------------------------------------------------

MANIFEST = "slug: hostile\nname: Hostile\nversion: 1.0.0\n"


def _m(*extra: dict[str, object]) -> list[dict[str, object]]:
    return [{"name": "template.yaml", "data": MANIFEST}, *extra]


_UNSAFE = "archive_unsafe_entry"
_DUP = "duplicate_output_path"
_ZIP_500 = (
    "BUG: a zip member whose data does not match its central-directory CRC/size makes zipfile raise "
    "BadZipFile inside templates._store_upload, which only _open_archive catches: 500 server_error "
    "instead of 400 archive_invalid."
)

ARCHIVE_CASES = [
    upload("zip-dotdot", _m({"name": "../{PWN_NAME}", "data": "x"}), _UNSAFE, "escapes the output folder"),
    upload("zip-dotdot-nested", _m({"name": "a/../../{PWN_NAME}", "data": "x"}), _UNSAFE, "escapes the output folder"),
    upload("zip-dotdot-directory-entry", _m({"name": "../", "type": "dir"}), _UNSAFE, "escapes the output folder"),
    upload("zip-absolute", _m({"name": "{PWN}", "data": "x"}), _UNSAFE, "is absolute"),
    upload("zip-drive-letter", _m({"name": "C:/kiln/{PWN_NAME}", "data": "x"}), _UNSAFE, "is absolute"),
    upload("zip-backslash-traversal", _m({"name": "..\\..\\{PWN_NAME}", "data": "x"}), _UNSAFE, "backslash"),
    upload(
        "zip-git-hook", _m({"name": ".git/hooks/post-checkout", "data": "#!/bin/sh\ntouch {PWN}\n"}), _UNSAFE, "'.git/'"
    ),
    upload("zip-control-char-name", _m({"name": "a\nb.txt", "data": "x"}), _UNSAFE, "control character"),
    upload(
        "zip-symlink-member",
        _m({"name": "leak.txt", "type": "symlink", "target": "{SENTINEL}"}),
        _UNSAFE,
        "symbolic link",
    ),
    upload("zip-chardev-member", _m({"name": "dev", "type": "chr"}), _UNSAFE, "special file"),
    upload("zip-fifo-member", _m({"name": "pipe", "type": "fifo"}), _UNSAFE, "special file"),
    upload("zip-encrypted-member", _m({"name": "secret.txt", "data": "x", "encrypted": True}), _UNSAFE, "encrypted"),
    upload(
        "zip-declared-size-bomb",
        _m({"name": "big.txt", "data": "x", "declared_size": 0x7FFF_FFFF}),
        "archive_too_large",
        "more than",
    ),
    upload(
        "zip-real-bomb-uncompressed-budget",
        _m({"name": "zeros.bin", "data": b"\0" * 2_000_000}),
        "archive_too_large",
        "unpack to more than",
        settings={"KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED": 1_000_000},
    ),
    upload(
        "zip-too-many-entries",
        _m(*({"name": f"f{i}.txt", "data": "x"} for i in range(40))),
        "archive_too_large",
        "more than 10 entries",
        settings={"KILN_TEMPLATE_UPLOAD_MAX_FILES": 10},
    ),
    upload("zip-duplicate-member", _m({"name": "a.txt", "data": "1"}, {"name": "a.txt", "data": "2"}), _DUP, "twice"),
    upload(
        "zip-case-colliding-members",
        _m({"name": "README.md", "data": "1"}, {"name": "readme.md", "data": "2"}),
        _DUP,
        "case-folded",
    ),
    upload(
        "zip-crc-mismatch",
        _m({"name": "a.txt", "data": "hello world " * 10, "bad_crc": True}),
        ("archive_invalid", _UNSAFE),
        None,
        bug=_ZIP_500,
    ),
    upload(
        "zip-declared-size-lie",
        _m({"name": "a.txt", "data": "hello world " * 10, "declared_size": 5}),
        ("archive_invalid", _UNSAFE),
        None,
        bug=_ZIP_500,
    ),
    upload("zip-no-manifest", [{"name": "a.txt", "data": "x"}], "template_invalid", "no template.yaml"),
    upload(
        "zip-manifest-tasks-hook",
        [{"name": "template.yaml", "data": MANIFEST + "_tasks:\n  - touch {PWN}\n"}],
        "template_invalid",
        "never run code",
    ),
    upload(
        "zip-manifest-jinja-extensions",
        [{"name": "template.yaml", "data": MANIFEST + "_jinja_extensions:\n  - jinja2_time.TimeExtension\n"}],
        "template_invalid",
        "unknown keys",
    ),
    upload(
        "zip-manifest-python-yaml-tag",
        [
            {
                "name": "template.yaml",
                "data": "slug: !!python/object/apply:os.system ['touch {PWN}']\nname: x\nversion: 1.0.0\n",
            }
        ],
        "template_invalid",
        "not valid YAML",
    ),
    upload(
        "zip-manifest-slug-traversal",
        [{"name": "template.yaml", "data": "slug: ../../etc\nname: x\nversion: 1.0.0\n"}],
        "template_invalid",
        "slug",
    ),
    upload(
        "zip-manifest-yaml-alias-bomb",
        [
            {
                "name": "template.yaml",
                "data": (
                    "slug: alias-bomb\nname: Bomb\nversion: 1.0.0\nparameters:\n  type: object\n  $defs:\n"
                    "    l0: &l0 {type: string}\n"
                    "    l1: &l1 {allOf: [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]}\n"
                    "    l2: &l2 {allOf: [*l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1]}\n"
                    "    l3: &l3 {allOf: [*l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2]}\n"
                ),
            }
        ],
        "template_invalid",
        None,
        bug=(
            "BUG: YAML anchors/aliases in template.yaml are expanded without a bound: this 400-byte manifest "
            "becomes a ~24 KB parameters schema (stored and served on every GET /templates/), one more level "
            "(~470 bytes) a 2.4 MB schema whose Draft202012Validator.check_schema takes ~40 s of the upload "
            "request, two more levels hang it for hours (templates.parse_manifest uses yaml.safe_load as is)."
        ),
    ),
    upload(
        "tar-dotdot", _m({"name": "../{PWN_NAME}", "data": "x"}), _UNSAFE, "escapes the output folder", fmt="tar.gz"
    ),
    upload("tar-absolute", _m({"name": "{PWN}", "data": "x"}), _UNSAFE, "is absolute", fmt="tar.gz"),
    upload(
        "tar-symlink",
        _m({"name": "leak.txt", "type": "symlink", "target": "{SENTINEL}"}),
        _UNSAFE,
        "a link",
        fmt="tar.gz",
    ),
    upload(
        "tar-symlink-dir-escape",
        _m({"name": "up", "type": "symlink", "target": "../../.."}),
        _UNSAFE,
        "a link",
        fmt="tar",
    ),
    upload(
        "tar-hardlink",
        _m({"name": "leak.txt", "type": "hardlink", "target": "{SENTINEL}"}),
        _UNSAFE,
        "a link",
        fmt="tar.gz",
    ),
    upload("tar-chardev", _m({"name": "null", "type": "chr"}), _UNSAFE, "device or special file", fmt="tar.gz"),
    upload("tar-blockdev", _m({"name": "sda", "type": "blk"}), _UNSAFE, "device or special file", fmt="tar.gz"),
    upload("tar-fifo", _m({"name": "pipe", "type": "fifo"}), _UNSAFE, "device or special file", fmt="tar.gz"),
    upload(
        "tar-declared-size-bomb",
        _m({"name": "huge.bin", "data": "", "declared_size": 10**10}),
        "archive_too_large",
        "larger than",
        fmt="tar",
    ),
    upload(
        "tar-control-char-name",
        _m({"name": "\x1b[2Jclear.txt", "data": "x"}),
        _UNSAFE,
        "control character",
        fmt="tar.gz",
    ),
    upload(
        "tar-gz-truncated",
        _m({"name": "a.txt", "data": "x" * 5000}),
        "archive_invalid",
        "not a readable",
        fmt="tar.gz",
        patch={"truncate": 0.5},
    ),
    upload("not-an-archive", None, "archive_invalid", "not a readable", raw=b"PK\x03\x04 definitely not a zip " * 20),
    upload(
        "upload-over-byte-limit",
        _m({"name": "pad.bin", "data": b"\x00\xff" * 4000}),
        "archive_too_large",
        "larger than",
        fmt="tar",
        settings={"KILN_TEMPLATE_UPLOAD_MAX_BYTES": 2000},
    ),
    upload("upload-wrong-field-name", _m(), "validation_error", "multipart field 'archive'", field_name="file"),
]

# ---------------------------------------------------------------------------------------------
# B4 #39-40: git option / protocol injection in names, namespaces, branches and remote URLs
# ---------------------------------------------------------------------------------------------

_URL = "remote_url_not_allowed"
_BRANCH = "invalid_branch_name"
_REPO = "invalid_repo_name"
_R = "https://example.com/acme/repo.git"


def _git(case_id: str, url: str, code: str, fragment: str | None = None, branch: str | None = None) -> Case:
    body: dict[str, object] = {"provider": "git", "remote_url": url}
    if branch is not None:
        body["branch"] = branch
    return export(case_id, "git-injection", body, code, fragment)


def _gh(case_id: str, repository: dict[str, object], code: str, fragment: str | None = None) -> Case:
    body = {"provider": "github", "connection": "{gh_conn}", "repository": repository}
    return export(case_id, "git-injection", body, code, fragment)


def _gl(case_id: str, repository: dict[str, object], code: str, fragment: str | None = None) -> Case:
    body = {"provider": "gitlab", "connection": "{gl_conn}", "repository": repository}
    return export(case_id, "git-injection", body, code, fragment)


_HOOKS_RUN = (
    "BUG: pushing to a file:// remote runs the *target* repository's hooks (pre-receive, update, "
    "post-receive, post-update) as the worker: git drops GIT_CONFIG_COUNT/GIT_CONFIG_* for the local "
    "receive-pack, so gitops.git_env's core.hooksPath=/dev/null never reaches it. A template can render a "
    "bare repository (HEAD, config, objects/, refs/, hooks/post-receive with mode 0755) into its own output "
    "folder and export to file://<that folder>: code execution as the worker whenever KILN_ALLOW_FILE_REMOTES "
    "is on (default off; on in core/settings/test.py)."
)

GIT_CASES = [
    _git("remote-upload-pack-option", "--upload-pack=touch {PWN}", _URL),
    _git("remote-short-option-u", "-utouch {PWN}", _URL),
    _git("remote-ext-transport", "ext::sh -c touch% {PWN}", _URL, "plain URL"),
    _git("remote-ext-transport-no-spaces", "ext::sh%20-c%20touch%25%20{PWN_NAME}", _URL, "transport helpers"),
    _git("remote-fd-transport", "fd::17", _URL, "transport helpers"),
    _git("remote-fd-transport-path", "fd::17/foo", _URL, "transport helpers"),
    _git("remote-scp-like-ssh", "git@example.com:acme/repo.git", _URL, "remote URLs are allowed"),
    _git("remote-ssh-proxycommand", "ssh://-oProxyCommand=touch%20{PWN}/x", _URL),
    _git("remote-host-leading-dash", "https://-oProxyCommand=x/repo.git", _URL, "needs a host"),
    _git("remote-credentials-in-url", "https://x-access-token:{CANARY}@example.com/r.git", _URL, "Credentials in URLs"),
    _git("remote-query-option", "https://example.com/r.git?--upload-pack=touch", _URL, "query or fragment"),
    _git("remote-path-dash-segment", "https://example.com/acme/-u/x.git", _URL, "not allowed"),
    _git("remote-newline", "https://example.com/r.git\n--upload-pack=x", _URL, "without spaces"),
    _git("remote-bad-port", "https://example.com:99999/r.git", _URL, "invalid port"),
    _git("remote-file-dotdot", "file:///srv/git/../../{PWN_NAME}", _URL, "without '..'"),
    _git("remote-file-with-host", "file://evil.example/srv/x.git", _URL, "absolute path"),
    _git("branch-upload-pack-option", _R, _BRANCH, "no '..'", branch="--upload-pack=touch {PWN}"),
    _git("branch-short-option", _R, _BRANCH, None, branch="-uS"),
    _git("branch-lock-suffix", _R, _BRANCH, ".lock", branch="main.lock"),
    _git("branch-dotdot", _R, _BRANCH, None, branch="../x"),
    _git("branch-refs-heads-traversal", _R, _BRANCH, None, branch="refs/heads/../../config"),
    _git("branch-double-dot-range", _R, _BRANCH, None, branch="a..b"),
    _git("branch-head", _R, _BRANCH, "HEAD", branch="HEAD"),
    _git("branch-reflog-syntax", _R, _BRANCH, None, branch="main@{-1}"),
    _git("branch-trailing-slash", _R, _BRANCH, None, branch="feature/"),
    _git("branch-hidden-segment", _R, _BRANCH, None, branch="feature/.hidden"),
    _git("branch-space-and-tilde", _R, _BRANCH, None, branch="a b~1"),
    _git("branch-colon-refspec", _R, _BRANCH, None, branch="main:refs/heads/other"),
    _gh("github-name-option", {"name": "--upload-pack=touch {PWN_NAME}"}, _REPO, "must not start with"),
    _gh("github-name-short-option", {"name": "-uS"}, _REPO),
    _gh("github-name-traversal", {"name": "../x"}, _REPO),
    _gh("github-name-dotgit", {"name": "repo.git"}, _REPO, "'.git'"),
    _gh("github-name-dotdot", {"name": ".."}, _REPO),
    _gh("github-name-slash", {"name": "acme/repo"}, _REPO),
    _gh("github-name-bidi", {"name": "repo\u202egpj.exe"}, _REPO),
    _gh("github-owner-option", {"name": "ok", "owner": "-x"}, "invalid_owner"),
    _gh("github-owner-traversal", {"name": "ok", "owner": "../acme"}, "invalid_owner"),
    _gh("github-default-branch-lock", {"name": "ok", "default_branch": "main.lock"}, _BRANCH),
    _gh("github-topics-injection", {"name": "ok", "topics": ["--exec=x"]}, "validation_error", "Topics"),
    _gl("gitlab-namespace-traversal", {"name": "ok", "namespace": "acme/../root"}, "invalid_namespace"),
    _gl("gitlab-namespace-absolute", {"name": "ok", "namespace": "/acme"}, "invalid_namespace"),
    _gl("gitlab-namespace-option", {"name": "ok", "namespace": "-x/acme"}, "invalid_namespace"),
    _gl("gitlab-name-option", {"name": "--exec=touch {PWN_NAME}"}, _REPO),
    export(
        "remote-file-repo-hooks-never-run",
        "git-injection",
        {"provider": "git", "remote_url": "file://{REMOTE}"},
        None,
        status=202,
        state="completed",
        remote={"hooks": ["pre-receive", "update", "post-receive", "post-update"]},
        bug=_HOOKS_RUN,
    ),
    scenario(
        "remote-file-generated-bare-repo-hook",
        "git-injection",
        "generated_bare_repo_hook",
        None,
        status=202,
        bug=_HOOKS_RUN,
    ),
]

# ---------------------------------------------------------------------------------------------
# B6 #67, #73: SSRF spellings for provider base URLs and git remotes (private networks off)
# ---------------------------------------------------------------------------------------------

_HOST = "remote_host_not_allowed"
_BASE = "invalid_base_url"

SSRF_CASES = [
    connection("base-metadata-http", "http://169.254.169.254/latest/meta-data/", _BASE, "must be an https URL"),
    connection("base-metadata-https", "https://169.254.169.254/latest/meta-data/", _HOST, "private or reserved"),
    connection("base-hex-loopback", "https://0x7f000001/", _HOST, "private or reserved"),
    connection("base-decimal-loopback", "https://2130706433/", _HOST, "private or reserved"),
    connection("base-short-loopback", "https://127.1/", _HOST, "private or reserved"),
    connection("base-octal-loopback", "https://017700000001/", _HOST, "private or reserved"),
    connection("base-ipv4-mapped-ipv6", "https://[::ffff:127.0.0.1]/", _HOST, "private or reserved"),
    connection("base-ipv6-loopback", "https://[::1]:8443/", _HOST, "private or reserved"),
    connection("base-cgnat", "https://100.64.0.1/", _HOST, "private or reserved"),
    connection("base-rfc1918", "https://10.0.0.5/api/v4", _HOST, "private or reserved", provider="gitlab"),
    connection("base-localhost-name", "https://localhost:6379/", _HOST, "private or reserved"),
    connection("base-unspecified", "https://0.0.0.0/", _HOST, "private or reserved"),
    connection("base-multicast", "https://224.0.0.1/", _HOST, "private or reserved"),
    connection(
        "base-gcp-metadata-name",
        "https://metadata.google.internal/computeMetadata/v1/",
        _HOST,
        "metadata.google.internal",
    ),
    connection("base-file-scheme", "file:///etc/passwd", _BASE, "must be an https URL"),
    connection("base-gopher-scheme", "gopher://127.0.0.1:6379/_FLUSHALL", _BASE, "must be an https URL"),
    connection("base-credentials", "https://user:{CANARY}@api.github.com/", _BASE, "credentials"),
    connection("base-control-char", "https://api.github.com/\r\nHost: 169.254.169.254", _BASE, "plain URL"),
    export(
        "remote-metadata-ip",
        "ssrf",
        {"provider": "git", "remote_url": "https://169.254.169.254/latest/x.git"},
        _HOST,
        "private or reserved",
        settings={"KILN_ALLOW_PRIVATE_NETWORKS": False},
    ),
    export(
        "remote-decimal-loopback",
        "ssrf",
        {"provider": "git", "remote_url": "https://2130706433/x.git"},
        _HOST,
        "private or reserved",
        settings={"KILN_ALLOW_PRIVATE_NETWORKS": False},
    ),
    export(
        "remote-plain-http",
        "ssrf",
        {"provider": "git", "remote_url": "http://127.0.0.1/x.git"},
        _URL,
        "Only",
        settings={"KILN_ALLOW_PRIVATE_NETWORKS": False},
    ),
    scenario(
        "verify-stale-private-base-url",
        "ssrf",
        "verify_private_connection",
        _HOST,
        "private or reserved",
        status=400,
    ),
]

# ---------------------------------------------------------------------------------------------
# B6 #67-70: the agents' API caller (one-step api_call workflows, run through the API)
# ---------------------------------------------------------------------------------------------

_OP = "operation_not_allowed"
_PARAM = "invalid_parameter"

API_CALL_CASES = [
    api_call("op-metadata-url", {"operation": "http://169.254.169.254/latest/meta-data/"}, _OP, "not an operation"),
    api_call("op-file-url", {"operation": "file:///etc/passwd"}, _OP, "not an operation"),
    api_call("op-gopher-url", {"operation": "gopher://127.0.0.1:6379/_x"}, _OP, "not an operation"),
    api_call("op-unknown-users-destroy", {"operation": "users_destroy"}, _OP, "not an operation"),
    api_call(
        "op-excluded-token-login", {"operation": "auth_token_create", "body": {"username": "a", "password": "b"}}, _OP
    ),
    api_call("op-admin-path", {"operation": "/admin/auth/user/"}, _OP, "not an operation"),
    api_call("op-method-and-path", {"operation": "DELETE /api/v1/projects/1/"}, _OP, "not an operation"),
    api_call("op-case-variant", {"operation": "Projects_List"}, _OP, "not an operation"),
    api_call(
        "op-log-injection",
        {"operation": "projects_list\n[ERROR] admin logged in"},
        _OP,
        "not an operation",
        bug=(
            "BUG: an api_call `operation` may hold control characters (the step input schema only bounds its "
            "length) and ApiCallError echoes it raw: the run's error message and its step log line "
            "('ERROR ... is not an operation') carry the newline, so GET /runs/{id}/logs/ shows a forged "
            "'[ERROR] admin logged in' line (reliability.md B7 #77). Reject control characters at save time, or "
            "print the id with repr()."
        ),
    ),
    api_call(
        "path-dotdot-admin", {"operation": "projects_retrieve", "path_params": {"id": "../../admin"}}, _PARAM, "id"
    ),
    api_call("path-dotdot-inside", {"operation": "projects_retrieve", "path_params": {"id": "1/../2"}}, _PARAM, "id"),
    api_call(
        "path-query-smuggle", {"operation": "projects_retrieve", "path_params": {"id": "1?impersonate=2"}}, _PARAM, "id"
    ),
    api_call("path-percent-dotdot", {"operation": "projects_retrieve", "path_params": {"id": "%2e%2e"}}, _PARAM, "id"),
    api_call(
        "path-encoded-slash", {"operation": "projects_retrieve", "path_params": {"id": "1%2F..%2Fadmin"}}, _PARAM, "id"
    ),
    api_call("path-negative-id", {"operation": "projects_retrieve", "path_params": {"id": -1}}, _PARAM, "id"),
    api_call("path-zero-id", {"operation": "projects_retrieve", "path_params": {"id": 0}}, _PARAM, "id"),
    # a NUL is refused when the step input is rendered, before anything is stored or sent
    api_call(
        "path-nul-id",
        {"operation": "projects_retrieve", "path_params": {"id": "1${{ '%c' % 0 }}"}},
        "expression_error",
        "NUL character",
    ),
    api_call(
        "path-huge-id",
        {"operation": "projects_retrieve", "path_params": {"id": "99999999999999999999"}},
        "not_found",
        "answered 404",
    ),
    api_call(
        "path-slug-dotdot", {"operation": "templates_retrieve", "path_params": {"slug": ".."}}, (_PARAM, "not_found")
    ),
    api_call(
        "path-extra-host-param",
        {"operation": "projects_list", "path_params": {"host": "169.254.169.254"}},
        _PARAM,
        "Unknown parameters",
    ),
    api_call(
        "query-url-param",
        {"operation": "projects_list", "query": {"url": "http://169.254.169.254/"}},
        _PARAM,
        "Unknown parameters",
    ),
    api_call(
        "query-format-param", {"operation": "projects_list", "query": {"format": "api"}}, _PARAM, "Unknown parameters"
    ),
    api_call(
        "body-mass-assignment",
        {"operation": "projects_create", "body": {"name": "Agent project", "owner": "charlie", "id": 999}},
        # the caller validates the body against the operation's request schema (which, like the
        # strict input serializers, allows no undeclared fields) before anything is sent
        "invalid_body",
        "Additional properties are not allowed",
    ),
    api_call(
        "body-on-get",
        {"operation": "projects_list", "body": {"name": "x"}},
        "invalid_body",
        "takes no JSON body",
    ),
    api_call(
        "expr-sandbox-escape",
        {"operation": "projects_list", "query": {"page": "${{ ''.__class__.__mro__ }}"}},
        ("expression_error", "template_security_violation"),
        "unsafe",
        category="expression-sandbox",
    ),
    api_call(
        "expr-string-bomb",
        {"operation": "projects_list", "query": {"page": "${{ 'a' * 10**9 }}"}},
        "output_limit_exceeded",
        "above the output size limit",
        category="expression-sandbox",
    ),
    api_call(
        "expr-range-bomb",
        {"operation": "projects_list", "query": {"page": "${{ range(10**9)|list|length }}"}},
        "expression_error",
        "Range too big",
        category="expression-sandbox",
    ),
]

# ---------------------------------------------------------------------------------------------
# B1 #4: mass assignment (the API rejects fields a client may not set; nothing changes)
# ---------------------------------------------------------------------------------------------

_VAL = "validation_error"
_NA = "not accepted"

MASS_ASSIGNMENT_CASES = [
    http(
        "mass-project-owner",
        "mass-assignment",
        "PATCH",
        "/projects/{project}/",
        400,
        _VAL,
        "owner",
        body={"owner": "charlie"},
        unchanged=("project",),
    ),
    http(
        "mass-project-id",
        "mass-assignment",
        "PATCH",
        "/projects/{project}/",
        400,
        _VAL,
        _NA,
        body={"id": 999},
        unchanged=("project",),
    ),
    http(
        "mass-project-slug",
        "mass-assignment",
        "PATCH",
        "/projects/{project}/",
        400,
        _VAL,
        _NA,
        body={"slug": "../../etc"},
        unchanged=("project",),
    ),
    http(
        "mass-project-members-and-path",
        "mass-assignment",
        "PATCH",
        "/projects/{project}/",
        400,
        _VAL,
        _NA,
        body={"name": "Renamed", "members": [{"username": "charlie", "role": "owner"}], "output_path": "/etc"},
        unchanged=("project",),
    ),
    http(
        "mass-project-create-owner",
        "mass-assignment",
        "POST",
        "/projects/",
        400,
        _VAL,
        _NA,
        body={"name": "P", "owner": "charlie"},
    ),
    http(
        "mass-generated-status",
        "mass-assignment",
        "POST",
        "/projects/{project}/generated/",
        400,
        _VAL,
        _NA,
        body={"template": "x", "status": "completed", "output_path": "/etc"},
    ),
    http(
        "mass-export-status",
        "mass-assignment",
        "POST",
        "/projects/{project}/generated/{generated}/exports/",
        400,
        _VAL,
        _NA,
        body={"provider": "zip", "status": "completed", "archive_path": "../../../etc/passwd"},
    ),
    http(
        "mass-connection-owner-and-ciphertext",
        "mass-assignment",
        "POST",
        "/connections/",
        400,
        _VAL,
        _NA,
        body={"provider": "github", "name": "gh2", "token": "{CANARY}", "owner": 3, "token_encrypted": "x"},
    ),
    http(
        "mass-agent-user",
        "mass-assignment",
        "PATCH",
        "/agents/{agent}/",
        400,
        _VAL,
        _NA,
        body={"user": 1, "owner": 3},
        unchanged=("agent",),
    ),
    http(
        "mass-workflow-created-by",
        "mass-assignment",
        "POST",
        "/workflows/",
        400,
        _VAL,
        _NA,
        body={
            "name": "W",
            "steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}],
            "created_by": 3,
        },
    ),
    http(
        "mass-run-actor",
        "mass-assignment",
        "POST",
        "/workflows/{workflow}/runs/",
        400,
        _VAL,
        _NA,
        body={"inputs": {}, "actor": 3},
    ),
    http(
        "mass-step-hooks-key",
        "mass-assignment",
        "POST",
        "/workflows/",
        400,
        _VAL,
        "unknown keys",
        body={
            "name": "W",
            "steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}, "hooks": "x"}],
        },
    ),
    http(
        "mass-member-project",
        "mass-assignment",
        "POST",
        "/projects/{project}/members/",
        400,
        _VAL,
        _NA,
        body={"username": "charlie", "role": "viewer", "project": 1},
    ),
]

# ---------------------------------------------------------------------------------------------
# B1 #12, B7 #77: control characters, bidi overrides and oversized names
# ---------------------------------------------------------------------------------------------

_CTRL = "Control or formatting characters"


def _name(case_id: str, path: str, body: dict[str, object], fragment: str = _CTRL) -> Case:
    return http(case_id, "names", "POST", path, 400, _VAL, fragment, body=body)


NAME_CASES = [
    _name("name-newline-log-injection", "/projects/", {"name": "a\n[ERROR] admin logged in"}),
    _name("name-bidi-override", "/projects/", {"name": "invoice\u202etxt.exe"}),
    _name("name-ansi-escape", "/projects/", {"name": "\x1b[31mred\x1b[0m"}),
    _name("name-zero-width", "/projects/", {"name": "ad\u200bmin"}),
    _name("name-line-separator", "/projects/", {"name": "a\u2028b"}),
    http(
        "name-lone-surrogate",
        "names",
        "POST",
        "/projects/",
        400,
        "parse_error",  # refused by the parser for every JSON value now (issue 21 item 11)
        "lone surrogate",
        raw='{"name": "a\\ud800b"}',
        content_type="application/json",
    ),
    _name("name-blank", "/projects/", {"name": "   "}, "may not be blank"),
    _name("name-101-chars", "/projects/", {"name": "x" * 101}, "no more than 100"),
    _name("name-1mb", "/projects/", {"name": "x" * 1_000_000}, "no more than 100"),
    _name("name-connection-newline", "/connections/", {"provider": "github", "name": "gh\nx", "token": "{CANARY}"}),
    _name(
        "name-workflow-bidi",
        "/workflows/",
        {"name": "wf\u202e", "steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}]},
    ),
    _name("name-agent-ansi", "/agents/", {"name": "\x1b]0;pwned\x07agent"}),
    http(
        "name-patch-project-bidi",
        "names",
        "PATCH",
        "/projects/{project}/",
        400,
        _VAL,
        _CTRL,
        body={"name": "x\u202e"},
        unchanged=("project",),
    ),
    http(
        "member-username-traversal",
        "names",
        "POST",
        "/projects/{project}/members/",
        400,
        _VAL,
        "No active user",
        body={"username": "../alice", "role": "viewer"},
    ),
]

# ---------------------------------------------------------------------------------------------
# B1 #8: malformed ids in every kind of URL (404, never 500)
# ---------------------------------------------------------------------------------------------

_ID_BUG = (
    "BUG: a non-integer parent id in a nested route reaches `.filter(pk=...)` unparsed "
    "(ProjectScopedViewSet.get_project / get_generated, AgentTokenViewSet.get_agent): ValueError -> 500 "
    "server_error instead of 404."
)


def _id(case_id: str, path: str, bug: str | None = None) -> Case:
    return http(case_id, "malformed-ids", "GET", path, 404, "not_found", "not found", bug=bug)


ID_CASES = [
    _id("id-project-negative", "/projects/-1/"),
    _id("id-project-zero", "/projects/0/"),
    _id("id-project-overflow", "/projects/99999999999999999999/"),
    _id("id-project-letters", "/projects/abc/"),
    _id("id-project-nul", "/projects/1%00/"),
    _id("id-project-hex", "/projects/0x1/"),
    _id("id-project-float", "/projects/1.5/"),
    _id("id-project-dotdot", "/projects/../1/"),
    _id("id-generated-letters", "/projects/{project}/generated/abc/"),
    _id("id-generated-overflow", "/projects/{project}/generated/99999999999999999999/"),
    _id("id-run-overflow", "/runs/99999999999999999999/"),
    _id("id-workflow-negative", "/workflows/-1/"),
    _id("id-connection-overflow", "/connections/99999999999999999999/"),
    _id("id-template-dotdot", "/templates/%2e%2e/"),
    _id("id-parent-project-letters-generated", "/projects/abc/generated/", bug=_ID_BUG),
    _id("id-parent-project-letters-audit", "/projects/abc/audit/", bug=_ID_BUG),
    _id("id-parent-project-letters-members", "/projects/abc/members/", bug=_ID_BUG),
    _id("id-parent-generated-letters-files", "/projects/{project}/generated/abc/files/", bug=_ID_BUG),
    _id("id-parent-generated-letters-exports", "/projects/{project}/generated/abc/exports/", bug=_ID_BUG),
    _id("id-parent-agent-letters-tokens", "/agents/abc/tokens/", bug=_ID_BUG),
    _id("id-parent-project-overflow-files", "/projects/99999999999999999999/generated/1/files/"),
]

# ---------------------------------------------------------------------------------------------
# B1 #11: oversized and malformed bodies
# ---------------------------------------------------------------------------------------------

_DEEP = '{"template": "x", "parameters": ' + "[" * 100_000 + "]" * 100_000 + "}"

OVERSIZE_CASES = [
    http(
        "body-over-request-limit",
        "oversized",
        "POST",
        "/projects/",
        413,
        ("payload_too_large", "request_too_large"),
        None,
        raw='{"name": "' + "x" * 3_000_000 + '"}',
        content_type="application/json",
        bug=(
            "BUG: a JSON body above DATA_UPLOAD_MAX_MEMORY_SIZE (2 MiB) raises RequestDataTooBig inside "
            "request.data; core.exceptions.api_exception_handler does not map it: 500 server_error instead of "
            "413 payload_too_large (or 400) naming the limit."
        ),
    ),
    http(
        "body-deeply-nested-json",
        "oversized",
        "POST",
        "/projects/{project}/generated/",
        400,
        ("parse_error", "validation_error"),
        None,
        raw=_DEEP,
        content_type="application/json",
        bug=(
            "BUG: 100,000 nested '[' (200 KB, under the body limit) make json.loads raise RecursionError, which "
            "DRF's JSONParser does not catch (it maps only ValueError): 500 server_error instead of 400 parse_error."
        ),
    ),
    http(
        "body-not-json",
        "oversized",
        "POST",
        "/projects/",
        400,
        "parse_error",
        "JSON parse error",
        raw="{not json",
        content_type="application/json",
    ),
    http(
        "body-invalid-utf8",
        "oversized",
        "POST",
        "/projects/",
        400,
        "parse_error",
        "JSON parse error",
        raw=b"\xff\xfe{",
        content_type="application/json",
    ),
    http(
        "body-nan-literal",
        "oversized",
        "POST",
        "/projects/",
        400,
        "parse_error",
        "JSON parse error",
        raw='{"name": NaN}',
        content_type="application/json",
    ),
    http(
        "body-json-array",
        "oversized",
        "POST",
        "/projects/",
        400,
        _VAL,
        "Expected a dictionary",
        raw="[]",
        content_type="application/json",
    ),
    http(
        "body-wrong-content-type",
        "oversized",
        "POST",
        "/projects/",
        415,
        "unsupported_media_type",
        "Unsupported media type",
        raw="name=x",
        content_type="text/plain",
    ),
    http(
        "body-10k-template-parameters",
        "oversized",
        "POST",
        "/projects/{project}/generated/",
        400,
        _VAL,
        "Unknown parameter",
        body={"template": "{template}", "parameters": {f"p{i}": i for i in range(10_000)}},
    ),
    http(
        "body-template-slug-1mb",
        "oversized",
        "POST",
        "/projects/{project}/generated/",
        400,
        _VAL,
        "no more than 100",
        body={"template": "t" * 1_000_000},
    ),
    http(
        "body-workflow-51-steps",
        "oversized",
        "POST",
        "/workflows/",
        400,
        _VAL,
        "50",
        body={
            "name": "W",
            "steps": [{"id": f"s{i}", "type": "api_call", "input": {"operation": "projects_list"}} for i in range(51)],
        },
    ),
]

# ---------------------------------------------------------------------------------------------
# B1 #1, #3, #7: authentication and authorization at the edge
# ---------------------------------------------------------------------------------------------

AUTH_CASES = [
    http(
        "auth-none", "auth", "GET", "/projects/", 401, "not_authenticated", "credentials were not provided", user="anon"
    ),
    http(
        "auth-none-generate",
        "auth",
        "POST",
        "/projects/{project}/generated/",
        401,
        "not_authenticated",
        None,
        user="anon",
        body={"template": "x"},
    ),
    http(
        "auth-garbage-token",
        "auth",
        "GET",
        "/projects/",
        401,
        "authentication_failed",
        "Invalid",
        user="anon",
        auth_header="Token garbage",
    ),
    http(
        "auth-fake-kiln-token",
        "auth",
        "GET",
        "/projects/",
        401,
        "authentication_failed",
        "Invalid",
        user="anon",
        auth_header="Token kiln_u_" + "A" * 40,
    ),
    http(
        "auth-bearer-no-value",
        "auth",
        "GET",
        "/projects/",
        401,
        "authentication_failed",
        "Invalid token header",
        user="anon",
        auth_header="Bearer",
    ),
    http(
        "auth-three-parts",
        "auth",
        "GET",
        "/projects/",
        401,
        "authentication_failed",
        "Invalid token header",
        user="anon",
        auth_header="Token a b",
    ),
    http(
        "auth-non-ascii-token",
        "auth",
        "GET",
        "/projects/",
        401,
        "authentication_failed",
        "Invalid",
        user="anon",
        auth_header="Token k\u00e9y",
    ),
    http(
        "auth-revoked-token",
        "auth",
        "GET",
        "/projects/",
        401,
        "authentication_failed",
        "Invalid",
        user="anon",
        auth_header="Token {revoked_token}",
    ),
    http(
        "auth-expired-token",
        "auth",
        "GET",
        "/projects/",
        401,
        "authentication_failed",
        "Invalid",
        user="anon",
        auth_header="Token {expired_token}",
    ),
    http(
        "authz-outsider-project",
        "authz",
        "GET",
        "/projects/{project}/",
        404,
        "not_found",
        None,
        user="charlie",
        absent=("Alpha",),
    ),
    http(
        "authz-outsider-files",
        "authz",
        "GET",
        "/projects/{project}/generated/{generated}/files/",
        404,
        "not_found",
        None,
        user="charlie",
        absent=("README",),
    ),
    http(
        "authz-outsider-download",
        "authz",
        "GET",
        "/projects/{project}/generated/{generated}/exports/{export}/download/",
        404,
        "not_found",
        None,
        user="charlie",
    ),
    http(
        "authz-viewer-generate",
        "authz",
        "POST",
        "/projects/{project}/generated/",
        403,
        "permission_denied",
        "viewer",
        user="victor",
        body={"template": "{template}"},
    ),
    http(
        "authz-developer-export",
        "authz",
        "POST",
        "/projects/{project}/generated/{generated}/exports/",
        403,
        "permission_denied",
        None,
        user="dave",
        body={"provider": "zip"},
    ),
    http(
        "authz-outsider-filter-widening",
        "authz",
        "GET",
        "/projects/?search=Alpha&ordering=name",  # search (a real filter now) never reaches beyond membership
        200,
        None,
        None,
        user="charlie",
        absent=("Alpha",),
    ),
]

# ---------------------------------------------------------------------------------------------
# B1 #9-10: double submits and the active-jobs cap
# ---------------------------------------------------------------------------------------------

CONCURRENCY_CASES = [
    scenario("double-submit-generate", "double-submit", "double_generate", None, status=202),
    scenario("double-submit-export", "double-submit", "double_export", None, status=202),
    scenario("double-submit-workflow-run", "double-submit", "double_run", None, status=202),
    scenario(
        "cap-generations-429",
        "double-submit",
        "generation_cap",
        "too_many_active_jobs",
        "limit 1",
        status=429,
        settings={"KILN_MAX_ACTIVE_JOBS_PER_PROJECT": 1},
    ),
    scenario(
        "cap-exports-429",
        "double-submit",
        "export_cap",
        "too_many_active_jobs",
        "too many exports",
        status=429,
        settings={"KILN_MAX_ACTIVE_JOBS_PER_PROJECT": 1},
    ),
    scenario(
        "cap-retry-429",
        "double-submit",
        "retry_cap",
        "too_many_active_jobs",
        "limit 1",
        status=429,
        settings={"KILN_MAX_ACTIVE_JOBS_PER_PROJECT": 1},
    ),
    scenario(
        "retry-completed-409",
        "double-submit",
        "retry_completed",
        "not_retryable",
        "only failed or cancelled",
        status=409,
    ),
    scenario("cancel-twice-409", "double-submit", "cancel_twice", "not_cancellable", "already cancelled", status=409),
    scenario(
        "self-spawning-workflow-capped",
        "double-submit",
        "self_spawning_run",
        "too_many_active_jobs",
        None,
        status=429,
        settings={"KILN_MAX_ACTIVE_JOBS_PER_PROJECT": 1},
        bug=(
            "BUG: workflow runs have no active cap or recursion guard: a workflow whose two api_call steps "
            "start itself (workflow_runs_create) spawned 2 new runs from one run even with "
            "KILN_MAX_ACTIVE_JOBS_PER_PROJECT=1, and each of those would spawn 2 more (exponential fan-out by "
            "one user or agent). The per-project cap exists only for generations and exports."
        ),
    ),
]

# ---------------------------------------------------------------------------------------------
# Form and multipart bodies: the browsable API's encodings get the JSON body's rules (NUL
# characters -> 400 parse_error, also as the \u0000 escape inside a form field's JSON text)
# ---------------------------------------------------------------------------------------------

_FORM = "application/x-www-form-urlencoded"
_NUL = "NUL characters"


def _form(**fields: str) -> str:
    """An urlencoded body; `{placeholder}`s in the values survive the encoding."""
    return "&".join(f"{key}={quote(value, safe='{}')}" for key, value in fields.items())


def _nul_form(case_id: str, method: str, path: str, raw: str, **kw: Any) -> Case:
    return http(case_id, "form-bodies", method, path, 400, "parse_error", _NUL, raw=raw, content_type=_FORM, **kw)


FORM_BODY_CASES = [
    _nul_form(
        "form-nul-escape-in-parameters-json",
        "POST",
        "/projects/{project}/generated/",
        _form(template="{template}", parameters='{"name": "a\\u0000b"}'),
    ),
    _nul_form(
        "form-nul-byte-in-parameters-json-dry-run",
        "POST",
        "/projects/{project}/generated/",
        _form(template="{template}", parameters='{"name": "a\x00b"}', dry_run="true"),
    ),
    _nul_form(
        "form-nul-escape-in-run-inputs",
        "POST",
        "/workflows/{workflow}/runs/",
        _form(inputs='{"pname": "ok", "extra": "a\\u0000b"}'),
    ),
    _nul_form(
        "form-nul-escape-in-inputs-schema",
        "PATCH",
        "/workflows/{workflow}/",
        _form(inputs_schema='{"type": "object", "description": "a\\u0000b"}'),
        unchanged=("workflow",),
    ),
    _nul_form("form-nul-byte-in-name", "POST", "/projects/", _form(name="a\x00b")),
    _nul_form(
        "form-nul-byte-in-patch-description",
        "PATCH",
        "/projects/{project}/",
        _form(description="\x00"),
        unchanged=("project",),
    ),
    http(
        "multipart-nul-byte-in-name",
        "form-bodies",
        "POST",
        "/projects/",
        400,
        "parse_error",
        _NUL,
        body={"name": "a\x00b"},
        fmt="multipart",
    ),
    http(
        "multipart-nul-escape-in-parameters-json",
        "form-bodies",
        "POST",
        "/projects/{project}/generated/",
        400,
        "parse_error",
        _NUL,
        body={"template": "{template}", "parameters": '{"name": "a\\u0000b"}', "dry_run": "true"},
        fmt="multipart",
    ),
    http(
        "form-out-of-range-number-in-parameters-json",
        "form-bodies",
        "POST",
        "/projects/{project}/generated/",
        400,
        "parse_error",
        "finite",
        raw=_form(template="{template}", parameters='{"name": "x", "n": 1e400}', dry_run="true"),
        content_type=_FORM,
    ),
]

# ---------------------------------------------------------------------------------------------
# JSON values of the wrong type: refused naming the field, never coerced (5 -> "5", "yes" -> true)
# ---------------------------------------------------------------------------------------------

_STR = "Not a valid string"
_BOOL = "Must be a valid boolean"


def _typed(case_id: str, method: str, path: str, body: dict[str, Any], fragment: str = _STR, **kw: Any) -> Case:
    return http(case_id, "json-types", method, path, 400, _VAL, fragment, body=body, **kw)


JSON_TYPE_CASES = [
    _typed("type-project-name-number", "POST", "/projects/", {"name": 5}),
    _typed("type-project-description-number", "POST", "/projects/", {"name": "ok", "description": 5}),
    _typed("type-project-name-true", "POST", "/projects/", {"name": True}),
    _typed("type-project-name-list", "POST", "/projects/", {"name": ["Alpha"]}),
    _typed("type-patch-project-name-number", "PATCH", "/projects/{project}/", {"name": 5}, unchanged=("project",)),
    _typed(
        "type-connection-token-number", "POST", "/connections/", {"provider": "github", "name": "x", "token": 12345}
    ),
    _typed("type-member-username-number", "POST", "/projects/{project}/members/", {"username": 5, "role": "viewer"}),
    _typed("type-workflow-description-number", "PATCH", "/workflows/{workflow}/", {"description": 1.5}),
    _typed("type-login-password-number", "POST", "/auth/token/", {"username": "alice", "password": 123456}),
    _typed(
        "type-dry-run-yes",
        "POST",
        "/projects/{project}/generated/",
        {"template": "{template}", "dry_run": "yes"},
        _BOOL,
    ),
    _typed(
        "type-dry-run-one", "POST", "/projects/{project}/generated/", {"template": "{template}", "dry_run": 1}, _BOOL
    ),
    _typed(
        "type-agent-is-active-text", "PATCH", "/agents/{agent}/", {"is_active": "false"}, _BOOL, unchanged=("agent",)
    ),
    http(
        "type-project-name-1e400",
        "json-types",
        "POST",
        "/projects/",
        400,
        "parse_error",
        "finite",
        raw='{"name": 1e400}',
        content_type="application/json",
    ),
    http(
        "type-parameters-minus-1e400",
        "json-types",
        "POST",
        "/projects/{project}/generated/",
        400,
        "parse_error",
        "finite",
        raw='{"template": "{template}", "dry_run": true, "parameters": {"name": "x", "n": -1e400}}',
        content_type="application/json",
    ),
]

# ---------------------------------------------------------------------------------------------
# Issue 21, harden-render's items (render bounds, leases, races, permissions, git inputs).
# harden-input keeps its own block; keep additions for these items here.
# ---------------------------------------------------------------------------------------------

ISSUE21_RENDER_CASES = [
    # item 16: IPv6 literals are judged as addresses, not refused as "transport helpers"
    export(
        "remote-ipv6-loopback-literal",
        "git-injection",
        {"provider": "git", "remote_url": "https://[::1]:9/x.git"},
        _HOST,
        "private or reserved",
        settings={"KILN_ALLOW_PRIVATE_NETWORKS": False},
    ),
    export(
        "remote-ipv6-link-local-literal",
        "git-injection",
        {"provider": "git", "remote_url": "https://[fe80::1]/x.git"},
        _HOST,
        "private or reserved",
        settings={"KILN_ALLOW_PRIVATE_NETWORKS": False},
    ),
    _git("remote-ipv6-unbalanced-bracket", "https://[::1/x.git", _URL, "malformed"),
    # item 17: git percent-decodes file:// paths
    _git("remote-file-encoded-dotdot", "file:///srv/git/%2e%2e/%2e%2e/{PWN_NAME}", _URL, "without '..'"),
    _git("remote-file-encoded-slash-dotdot", "file:///srv/git%2f..%2f{PWN_NAME}", _URL, "without '..'"),
    _git("remote-https-encoded-dash-segment", "https://example.com/a%2f-u/x.git", _URL, "not allowed"),
    # item 18: a full ref name is normalised (pushed as refs/heads/x), other refs/ names refused
    export(
        "branch-full-ref-normalised",
        "git-injection",
        {"provider": "git", "remote_url": "file://{REMOTE}", "branch": "refs/heads/x"},
        None,
        status=202,
        state="completed",
        remote={"hooks": []},
    ),
    _git("branch-refs-tags", _R, _BRANCH, "short name", branch="refs/tags/v1"),
    _git("branch-double-refs-heads", _R, _BRANCH, "short name", branch="refs/heads/refs/heads/x"),
    # item 2: every operation that grows a value is checked before it runs ...
    gen(
        "render-issue21-doubling",
        "render-bomb",
        {"bomb.txt": "{% set a='a'*10000000 %}\n" + "{% set a=a~a %}\n" * 5 + "{{ a }}\n"},
        _LIMIT,
        "20000000",
    ),
    dry("bomb-plus-strings", "render-bomb", "{{ ('a' * 6000000 + 'b' * 6000000)|length }}", _LIMIT),
    dry("bomb-plus-lists", "render-bomb", "{{ ([0] * 1000000 + [0] * 1000000)|length }}", _LIMIT),
    dry(
        "bomb-set-block",
        "render-bomb",
        "{% set x %}{% for i in range(100000) %}{{ 'y' * 200 }}{% endfor %}{% endset %}{{ x|length }}",
        _LIMIT,
    ),
    dry("bomb-indent-lines", "render-bomb", "{{ ('x\n' * 3000000)|indent(4)|length }}", _LIMIT),
    dry("bomb-tojson-indent", "render-bomb", "{{ ([[[[1]]]] * 500000)|tojson(indent=100)|length }}", _LIMIT),
    dry(
        "bomb-wordwrap-wrapstring",
        "render-bomb",
        "{{ ('ab ' * 200000)|wordwrap(2, wrapstring='x' * 100)|length }}",
        _LIMIT,
    ),
    dry("bomb-sum-start-list", "render-bomb", "{{ ([[0] * 1000] * 2000)|sum(start=[])|length }}", _LIMIT),
    dry("bomb-format-many-wide-fields", "render-bomb", "{{ ('%99999s' * 300)|format(*([''] * 300))|length }}", _LIMIT),
    dry(
        "bomb-str-format-many-wide-fields",
        "render-bomb",
        "{{ ('{:99999}' * 300).format(*([''] * 300))|length }}",
        _LIMIT,
    ),
    dry("bomb-translate", "render-bomb", "{{ ('a' * 1000000).translate({97: 'b' * 100})|length }}", _LIMIT),
    # ... and what the checks miss meets the render process's memory limit
    gen(
        "bomb-memory-beyond-the-checks",
        "render-bomb",
        {
            "hog.txt": "{% set a = 'a' * 9000000 %}{% set l = ["
            + ", ".join(f"a ~ {i}" for i in range(100))
            + "] %}{{ l|length }}"
        },
        "limit_exceeded",
        "render memory limit",
        settings={"KILN_RENDER_MEMORY_LIMIT": 256 * 1024 * 1024},
    ),
    api_call(
        "expr-concat-above-the-cap",
        {"operation": "projects_list", "query": {"q": "${{ (('x' * 600000) ~ ('x' * 600000))|length }}"}},
        "output_limit_exceeded",
        category="expression-sandbox",
    ),
    # the class: what Jinja or Python cannot compile is the template's error, not a 500
    dry(
        "template-parens-nested-too-deeply",
        "template-source",
        "{{ " + "(" * 600 + "1" + ")" * 600 + " }}",
        "template_syntax_error",
        "nested too deeply",
    ),
    dry(
        "template-blocks-nested-too-deeply",
        "template-source",
        "{% for i in x %}" * 25 + "{% endfor %}" * 25,
        "template_syntax_error",
        "nested too deeply",
    ),
    # item 19: no default global that is a function, no object's repr in the output
    dry("lipsum-not-a-global", "sandbox-escape", "{{ lipsum }}", "template_variable_missing", "undefined"),
    dry("method-repr-not-written", "sandbox-escape", "{{ name.upper }}", "template_error", "cannot be written as text"),
    dry("generator-repr-not-written", "sandbox-escape", "{{ [name]|map('upper') }}", "template_error", "as text"),
    dry("cycler-repr-not-written", "sandbox-escape", "{{ cycler('a') }}", "template_error", "as text"),
    api_call(
        "expr-function-not-a-value",
        {"operation": "projects_list", "query": {"q": "${{ range }}"}},
        "template_error",
        category="expression-sandbox",
    ),
    # item 15: step references are literal ids
    *[
        http(
            f"workflow-step-ref-{name}",
            "expression-sandbox",
            "POST",
            "/workflows/",
            400,
            "invalid_reference",
            "literal ids",
            body={
                "name": "Refs",
                "steps": [
                    {"id": "a", "type": "api_call", "input": {"operation": "projects_list"}},
                    {"id": "b", "type": "api_call", "input": {"operation": "projects_list", "query": {"q": expr}}},
                ],
            },
        )
        for name, expr in (
            ("concat", "${{ steps['b' ~ ''].output }}"),
            ("attr-filter", "${{ steps|attr('b') }}"),
            ("whole", "${{ steps }}"),
        )
    ],
    # items 9, 10, 20: memberships and agents
    scenario("owner-removed-then-removes-404", "authz", "owners_remove_each_other", "not_found", status=404),
    scenario(
        "last-owner-leaving-with-agents-409",
        "authz",
        "last_owner_leaves_with_agents",
        "last_owner",
        "at least one owner",
        status=409,
    ),
    scenario("agent-patch-keeps-own-projects-and-roles", "authz", "agent_patch_projects", None, status=200),
]

# ---------------------------------------------------------------------------------------------
# Issue 21 (readers of untrusted input): header bombs, names that are one file once normalised,
# a file where a folder is, names that are not UTF-8, C1 and bidi controls
# ---------------------------------------------------------------------------------------------

_TAR_L = b"L"
_TAR_K = b"K"
_TAR_X = b"x"
_TAR_G = b"g"


def _bomb(case_id: str, kind: bytes) -> Case:
    # 2 MB in one header, ~2 KB gzip'd: refused at the header (the audit's was 200 MB: 2.07 GB RSS)
    return upload(case_id, None, "archive_too_large", "extended", raw=extended_header_bomb(kind, 2 * 1024 * 1024))


ISSUE21_INPUT_CASES = [
    _bomb("tar-longlink-header-bomb", _TAR_L),
    _bomb("tar-longlink-target-bomb", _TAR_K),
    _bomb("tar-pax-header-bomb", _TAR_X),
    _bomb("tar-pax-global-header-bomb", _TAR_G),
    upload("tar-pax-header-chain", None, _UNSAFE, "in a row", raw=pax_header_chain(2000)),
    upload(
        "tar-names-count-towards-budget",
        _m(*({"name": f"{'d' * 90}/{'n' * 90}/{i:03d}{'x' * 60}.txt", "data": ""} for i in range(200))),
        "archive_too_large",
        "unpack to more than",
        fmt="tar.gz",
        settings={"KILN_TEMPLATE_UPLOAD_MAX_UNCOMPRESSED": 40_000},
    ),
    upload("zip-file-after-folder", _m({"name": "x/y.txt", "data": "1"}, {"name": "x", "data": "2"}), _DUP, "folder"),
    upload("zip-folder-after-file", _m({"name": "x", "data": "2"}, {"name": "x/y.txt", "data": "1"}), _DUP, "folder"),
    upload(
        "tar-file-after-folder",
        _m({"name": "x/y.txt", "data": "1"}, {"name": "x", "data": "2"}),
        _DUP,
        "folder",
        fmt="tar.gz",
    ),
    upload("zip-case-folder-clash", _m({"name": "Q/f", "data": "1"}, {"name": "q", "data": "2"}), _DUP, "folder"),
    upload(
        "zip-nfc-nfd-names",
        _m({"name": "caf\u00e9.txt", "data": "1"}, {"name": "cafe\u0301.txt", "data": "2"}),
        _DUP,
        "normalised",
    ),
    upload(
        "tar-nfc-nfd-names",
        _m({"name": "caf\u00e9.txt", "data": "1"}, {"name": "cafe\u0301.txt", "data": "2"}),
        _DUP,
        "normalised",
        fmt="tar.gz",
    ),
    upload("tar-latin1-name", _m({"name": "caf\udce9.txt", "data": "x"}), _UNSAFE, "not valid UTF-8", fmt="tar.gz"),
    upload("zip-c1-nel-name", _m({"name": "a\u0085b.txt", "data": "x"}), _UNSAFE, "control character"),
    upload("zip-c1-csi-name", _m({"name": "\u009b31mred.txt", "data": "x"}), _UNSAFE, "control character"),
    upload("zip-bidi-override-name", _m({"name": "invoice\u202etxt.exe", "data": "x"}), _UNSAFE, "U+202E"),
    upload("tar-bidi-isolate-name", _m({"name": "a\u2066b.txt", "data": "x"}), _UNSAFE, "U+2066", fmt="tar.gz"),
    upload("zip-lrm-name", _m({"name": "a\u200eb.txt", "data": "x"}), _UNSAFE, "U+200E"),
    gen(
        "path-file-and-folder",
        "template-path",
        {"x/y.txt": "1\n", "{{ name }}": "2\n"},
        "duplicate_output_path",
        "same path",
        params={"name": "x"},
    ),
    gen(
        "path-case-file-and-folder",
        "template-path",
        {"Q/f": "1\n", "{{ name }}": "2\n"},
        "duplicate_output_path",
        "same path",
        params={"name": "q"},
    ),
    _path("path-c1-nel", "a\u0085b", "control character"),
    _path("path-c1-csi", "\u009b31mred", "control character"),
    _path("path-bidi-override", "txt\u202eexe.sh", "U+202E", code="unsafe_path"),
    _path("path-bidi-isolate", "a\u2069b", "U+2069"),
    _path("path-lrm", "a\u200fb", "U+200F"),
    gen(
        "render-surrogate-content",
        "template-path",
        {"a.txt": "{{ '%c' % 55296 }}\n"},
        "template_error",
        "not valid Unicode",
    ),
    gen("render-surrogate-path", "template-path", {"b{{ '%c' % 56320 }}.txt": "x\n"}, "unsafe_path", "UTF-8"),
    dry("dry-run-surrogate-content", "template-path", "{{ '%c' % 55296 }}", "template_error", "not valid Unicode"),
]


# Lone surrogates and deep nesting in every JSON body (items 5, 11); YAML manifests (item 5)

_GEN = "/projects/{project}/generated/"
_SURR = "lone surrogate"


def _raw(case_id: str, method: str, path: str, raw: str, fragment: str = _SURR, **kw: Any) -> Case:
    return http(case_id, "json-values", method, path, 400, "parse_error", fragment, raw=raw, content_type=_JSON, **kw)


_JSON = "application/json"
_DEEP_NOT = '{"type": "object", "properties": {"a": ' + '{"not": ' * 800 + "{}" + "}" * 800 + "}}"


def _manifest(case_id: str, yaml_text: str, fragment: str) -> Case:
    manifest = "slug: yaml-case\nname: YAML case\nversion: 1.0.0\n" + yaml_text
    return upload(case_id, [{"name": "template.yaml", "data": manifest}], "template_invalid", fragment)


JSON_VALUE_CASES = [
    _raw("surrogate-parameter-value", "POST", _GEN, '{"template": "{template}", "parameters": {"name": "\\ud800x"}}'),
    _raw("surrogate-parameter-key", "POST", _GEN, '{"template": "{template}", "parameters": {"\\udc00": 1}}'),
    _raw(
        "surrogate-dry-run",
        "POST",
        _GEN,
        '{"template": "{template}", "dry_run": true, "parameters": {"name": ["ok", {"deep": "\\udfff"}]}}',
    ),
    _raw(
        "surrogate-step-input",
        "POST",
        "/workflows/",
        '{"name": "w", "steps": [{"id": "a", "type": "api_call", "input": {"operation": "\\ud800"}}]}',
    ),
    _raw(
        "surrogate-inputs-schema-default",
        "POST",
        "/workflows/",
        '{"name": "w", "inputs_schema": {"type": "object", "properties": {"a": {"type": "string", '
        '"default": "\\ud800"}}}, "steps": [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}]}',
    ),
    _raw("surrogate-run-inputs", "POST", "/workflows/{workflow}/runs/", '{"inputs": {"a": "x\\udbff"}}'),
    _raw("surrogate-patch-steps", "PATCH", "/workflows/{workflow}/", '{"description": "ok", "steps": "\\ud800"}'),
    http(
        "surrogate-in-form-json-field",
        "json-values",
        "POST",
        _GEN,
        400,
        "parse_error",
        _SURR,
        body={"template": "{template}", "parameters": '{"name": "\\ud800"}'},
        fmt="multipart",
    ),
    _raw("json-5000-brackets", "POST", _GEN, "[" * 5000 + "]" * 5000, "nested"),
    _raw(
        "json-parameters-100-deep",
        "POST",
        _GEN,
        '{"template": "{template}", "parameters": {"a": ' + "[" * 100 + "]" * 100 + "}}",
        "nested",
    ),
    _raw(
        "json-inputs-schema-800-nots",
        "POST",
        "/workflows/",
        '{"name": "w", "inputs_schema": ' + _DEEP_NOT + ', "steps": []}',
        "nested",
    ),
    _manifest("yaml-5000-brackets", "parameters: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
    _manifest(
        "yaml-800-nested-nots",
        "parameters:\n  type: object\n  properties:\n    a: " + "{not: " * 800 + "{}" + "}" * 800 + "\n",
        "nested more than",
    ),
    _manifest(
        "yaml-date-default",
        "parameters:\n  type: object\n  properties:\n    day: {type: string, default: 2024-01-01}\n",
        "quote it",
    ),
    _manifest(
        "yaml-nan-default",
        "parameters:\n  type: object\n  properties:\n    n: {type: number, default: .nan}\n",
        "finite",
    ),
    _manifest("yaml-binary-value", "description: !!binary aGVsbG8=\n", "quote it"),
    _manifest("yaml-integer-key", "parameters:\n  type: object\n  properties: {1: {type: string}}\n", "not text"),
    _manifest("manifest-glob-quadratic", "exclude: ['" + "[" * 20_000 + "']\n", "at most"),
    _manifest(
        "manifest-glob-count", "copy_without_render: [" + ", ".join(f"'*{i}'" for i in range(150)) + "]\n", "at most"
    ),
]


# People's JSON Schemas: patterns on RE2, reference loops, depth (items 5, 6, 8)

_LOOP = {"type": "object", "$defs": {"a": {"$ref": "#/$defs/a"}}, "properties": {"name": {"$ref": "#/$defs/a"}}}
_STEP = [{"id": "a", "type": "api_call", "input": {"operation": "projects_list"}}]


def _schema_dry(case_id: str, schema: dict[str, Any], params: dict[str, Any], code: str, fragment: str | None) -> Case:
    """A dry run of a one-file template with its own parameters schema."""
    spec = {"files": {"a.txt": "x"}, "params": params, "schema": schema, "plant": []}
    return Case(case_id, "json-schema", "dry_run", spec, Expect(400, code, fragment))


def _wf_schema(case_id: str, schema: dict[str, Any], fragment: str) -> Case:
    body = {"name": "schema", "inputs_schema": schema, "steps": _STEP}
    return http(case_id, "json-schema", "POST", "/workflows/", 400, _VAL, fragment, body=body)


SCHEMA_CASES = [
    _manifest(
        "schema-backreference-pattern",
        "parameters:\n  type: object\n  properties:\n    x: {type: string, pattern: '(a)\\1'}\n",
        "RE2",
    ),
    _manifest(
        "schema-lookahead-pattern",
        "parameters:\n  type: object\n  properties:\n    x: {type: string, pattern: '^(?!admin)'}\n",
        "RE2",
    ),
    _manifest(
        "schema-lookbehind-pattern-properties",
        "parameters:\n  type: object\n  patternProperties: {'(?<=x)y': {}}\n",
        "RE2",
    ),
    _manifest(
        "schema-recursive-ref-with-default",
        "parameters:\n  type: object\n  $defs: {a: {$ref: '#/$defs/a'}}\n  properties:\n"
        "    x: {$ref: '#/$defs/a', default: 1}\n",
        "refers back to itself",
    ),
    _manifest(
        "schema-recursive-ref-no-default",
        "parameters:\n  type: object\n  $defs: {a: {$ref: '#/$defs/a'}}\n  properties:\n    x: {$ref: '#/$defs/a'}\n",
        "refers back to itself",
    ),
    _manifest(
        "schema-allof-anyof-loop",
        "parameters:\n  type: object\n  $defs: {a: {allOf: [{$ref: '#/$defs/b'}]}, b: {anyOf: [{$ref: '#/$defs/a'}]}}\n",
        "refers back to itself",
    ),
    _wf_schema("workflow-schema-recursive-ref", _LOOP, "refers back to itself"),
    _wf_schema("workflow-schema-backreference", {"type": "object", "properties": {"x": {"pattern": "(x)\\1"}}}, "RE2"),
    _wf_schema(
        "workflow-schema-regex-format-deep",
        {"type": "object", "properties": {"x": {"pattern": "(" * 3000 + ")" * 3000}}},
        "cannot be used",
    ),
    _schema_dry(
        "schema-redos-pattern-value",
        {"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}},
        {"name": "a" * 40 + "!"},
        _VAL,
        "does not match",
    ),
    _schema_dry(
        "schema-redos-pattern-properties",
        {"type": "object", "patternProperties": {"^(a+)+$": {"type": "integer"}}, "additionalProperties": False},
        {"a" * 40 + "!": 1},
        _VAL,
        None,  # refused as an unknown parameter, after the patterns ran (on RE2: instantly)
    ),
    _schema_dry(
        "schema-regex-format-value",
        {"type": "object", "properties": {"name": {"type": "string", "format": "regex"}}},
        {"name": "(" * 3000},
        _VAL,
        "regex",
    ),
]

# ---------------------------------------------------------------------------------------------

ALL_CASES: list[Case] = [
    *TEMPLATE_PATH_CASES,
    *TEMPLATE_SOURCE_CASES,
    *SANDBOX_CASES,
    *RENDER_BOMB_CASES,
    *SANDBOX_BYPASS_CASES,
    *ARCHIVE_CASES,
    *GIT_CASES,
    *SSRF_CASES,
    *API_CALL_CASES,
    *MASS_ASSIGNMENT_CASES,
    *NAME_CASES,
    *ID_CASES,
    *OVERSIZE_CASES,
    *FORM_BODY_CASES,
    *JSON_TYPE_CASES,
    *AUTH_CASES,
    *CONCURRENCY_CASES,
    *ISSUE21_RENDER_CASES,
    *ISSUE21_INPUT_CASES,
    *JSON_VALUE_CASES,
    *SCHEMA_CASES,
]


def counts_by_category() -> dict[str, int]:
    counts: dict[str, int] = {}
    for case in ALL_CASES:
        counts[case.category] = counts.get(case.category, 0) + 1
    return dict(sorted(counts.items()))
