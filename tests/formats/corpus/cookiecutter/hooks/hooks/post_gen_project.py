import os
import shutil
import stat
from pathlib import Path

{% if not cookiecutter.keep_docs %}
shutil.rmtree("docs")
{% endif %}
{% if cookiecutter.license == "none" %}
os.remove("LICENSE")
{% endif %}
listing = sorted(str(p) for p in Path(".").rglob("*") if p.is_file())
Path("MANIFEST.txt").write_text("\n".join(listing) + "\n")
script = Path("scripts/setup.sh")
script.parent.mkdir()
script.write_text("#!/bin/sh\necho {{ cookiecutter.name }}\n")
script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
