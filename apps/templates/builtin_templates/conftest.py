"""Keep pytest out of the built-in templates.

Each folder here is a Jinja template of a whole project, not Kiln code: its test files
only become valid Python once rendered. `scripts/check_builtin_templates.py` (and
tests/test_builtin_templates.py) render every template and run the generated project's
own test suite instead.
"""

collect_ignore_glob = ["*"]
