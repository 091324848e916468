import json
from pathlib import Path

config = json.loads(Path("cookiecutter.json").read_text())
config["added_by_hook"] = "a value the pre_prompt hook added"
Path("cookiecutter.json").write_text(json.dumps(config))
