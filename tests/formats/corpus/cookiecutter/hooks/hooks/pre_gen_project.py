import re
import sys
from pathlib import Path

NAME = "{{ cookiecutter.name }}"
if not re.match(r"^[a-z][a-z0-9_-]*$", NAME):
    print(f"ERROR: {NAME!r} is not a valid project name", file=sys.stderr)
    sys.exit(1)
# the project folder exists (empty) while this hook runs; rendered files come later
Path("from-pre-gen.txt").write_text("written before the files by the pre_gen hook\n")
Path("LICENSE").write_text("overwritten by the render\n")
