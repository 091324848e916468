"""Runs inside the sandbox (`isolation.py`): copies the project in, runs the commands, streams it out.

Standard library only, run as `python3 -I -S` by the sandbox's own interpreter: nothing of
Kiln is importable here, and nothing here is trusted by Kiln (the parent checks every byte
it reads back). Protocol on stdout: one JSON line (the outcome), then a tar stream of the
project folder.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

JOB = "/run/kiln/job.json"
LOG = "/tmp/.kiln-command-output"


def main() -> None:
    with open(JOB, encoding="utf-8") as handle:
        job = json.load(handle)
    project = os.path.join("/output", job["project"])
    shutil.copytree("/input", project, symlinks=True, dirs_exist_ok=True)
    deadline = time.monotonic() + float(job["seconds"])
    outcome = {"returncode": 0, "command": None, "log": "", "timed_out": False}
    base_env = dict(os.environ)
    for index, command in enumerate(job["commands"]):
        cwd = os.path.normpath(os.path.join(project, command.get("cwd") or "."))
        env = dict(base_env)
        env.update(command.get("env") or {})
        remaining = deadline - time.monotonic()
        with open(LOG, "ab") as log:
            try:
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(command["argv"], 0)
                os.makedirs(cwd, exist_ok=True)
                proc = subprocess.run(
                    command["argv"],
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=remaining,
                    check=False,
                )
                code = proc.returncode
            except subprocess.TimeoutExpired:
                outcome.update(returncode=-9, command=index, timed_out=True)
                break
            except OSError as exc:
                log.write(f"cannot run {command['argv'][0]}: {exc.strerror}\n".encode())
                code = 127
        if code != 0:
            outcome.update(returncode=code, command=index)
            break
    try:
        with open(LOG, "rb") as log:
            outcome["log"] = log.read(int(job["log_bytes"])).decode("utf-8", "replace")
    except FileNotFoundError:
        pass
    out = sys.stdout.buffer
    out.write(json.dumps(outcome).encode() + b"\n")
    out.flush()
    if outcome["returncode"] == 0:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.add(project, arcname=".", recursive=True)
    out.flush()


if __name__ == "__main__":
    main()
