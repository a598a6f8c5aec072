"""Bugs as Harbor tasks and back (plain files, no Django).

Harbor (harbor 0.26, ``harbor.models.task``) reads one directory per task::

    <repository>__bugforge-<id>/
        task.toml          [task] name "bugforge/<repository>-bug-<id>", version (pinned short sha),
                           [metadata] the BugForge figures (method, operator, status, flakiness,
                           difficulty, FAIL_TO_PASS, …), [agent]/[verifier] timeouts,
                           [environment] no network while the agent works
        instruction.md     the problem statement
        environment/       Dockerfile + repo/, the buggy source (``git archive`` of the bug's
                           buggy commit, see engine.swebench.buggy_commit), built into /app
        tests/test.sh      runs tests/verifier.py in /app, writes 1 or 0 to /logs/verifier/reward.txt
        tests/verifier.py  the bug's verifier (exit 0 only when fixed)
        solution/solve.sh  applies solution/fix.patch (the bug's patch reversed) in /app

Harbor copies tests/ to /tests and solution/ to /solution in the container, and reads the
reward from /logs/verifier/reward.txt (a number). ``read_task`` turns a directory back into a
SWE-bench-shaped instance (with the ``bugforge`` extras) so one importer serves both formats.
"""
from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import tarfile
import tomllib
from pathlib import Path

from training.engine import swebench

REWARD_PATH = "/logs/verifier/reward.txt"
WORKDIR = "/app"

TEST_SH = f"""#!/usr/bin/env bash
# BugForge verifier: reward 1 when the bug is fixed, else 0 (Harbor reads {REWARD_PATH}).
mkdir -p "$(dirname {REWARD_PATH})"
cd {WORKDIR}
if python /tests/verifier.py; then
    echo 1 > {REWARD_PATH}
else
    echo 0 > {REWARD_PATH}
fi
"""

SOLVE_SH = f"""#!/usr/bin/env bash
# The reference fix: the bug's patch reversed.
set -euo pipefail
cd {WORKDIR}
git apply --whitespace=nowarn /solution/fix.patch
"""


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # a JSON string is a TOML basic string; raw UTF-8 (TOML has no surrogate pairs), DEL escaped
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _table(name: str, values: dict) -> str:
    lines = [f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def dockerfile(env: dict) -> str:
    """Builds the buggy code in /app with the repository's test environment."""
    pip = ["pytest", *env.get("pip_packages", [])]
    lines = [
        f"FROM python:{env.get('python') or '3.11'}-slim",
        "RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*",
        f"WORKDIR {WORKDIR}",
        f"COPY repo/ {WORKDIR}/",
        "RUN python -m pip install --no-cache-dir " + " ".join(shlex.quote(p) for p in pip),
    ]
    if env.get("install"):
        lines.append(f"RUN {env['install']}")
    return "\n".join(lines) + "\n"


def source_tar(mirror: Path, commit: str) -> bytes:
    """The tree of ``commit`` in the bare ``mirror`` as a tar (``git archive``)."""
    proc = subprocess.run(["git", "archive", "--format=tar", commit], cwd=mirror, capture_output=True, timeout=300,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"})
    if proc.returncode:
        raise ValueError(f"git archive {commit} failed: {proc.stderr.decode(errors='replace').strip()[:500]}")
    return proc.stdout


def task_dir_name(instance: dict) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", instance["instance_id"])


def write_task(dest_root: Path, instance: dict, source_tar: bytes) -> Path:
    """Write the Harbor task of a BugForge SWE-bench ``instance`` (engine.swebench.to_instance)
    under ``dest_root``; ``source_tar`` is a tar of the buggy tree (``git archive``)."""
    extra = instance["bugforge"]
    task = Path(dest_root) / task_dir_name(instance)
    for sub in ("environment/repo", "tests", "solution"):
        (task / sub).mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", extra["repository"])
    figures = {k: extra.get(k) for k in swebench.CARRIED}
    metadata = {
        "instance_id": instance["instance_id"], "repo": instance["repo"], "bug_id": extra["bug_id"],
        "repository": extra["repository"], "clean_commit": extra["clean_commit"],
        "buggy_commit": instance["base_commit"], "source": extra.get("source") or "",
        "fail_to_pass": json.loads(instance["FAIL_TO_PASS"]), "pass_to_pass": json.loads(instance["PASS_TO_PASS"]),
        "test_command": extra.get("test_command") or "", "install_command": extra["environment"].get("install", ""),
        "provenance_json": json.dumps(extra.get("provenance") or {}), **figures,
    }
    toml = (
        'schema_version = "1.4"\n\n'
        + _table("task", {"name": f"bugforge/{name}-bug-{extra['bug_id']}", "version": instance["version"],
                          "description": f"BugForge bug {extra['bug_id']} in {instance['repo']}",
                          "keywords": ["bugforge", "bug-fixing", "python"]}) + "\n"
        + _table("metadata", metadata) + "\n"
        + _table("agent", {"timeout_sec": 1800.0}) + "\n"
        + _table("verifier", {"timeout_sec": 600.0}) + "\n"
        + _table("environment", {"network_mode": "no-network", "workdir": WORKDIR, "build_timeout_sec": 900.0})
    )
    (task / "task.toml").write_text(toml)
    statement = instance.get("problem_statement") or ""
    (task / "instruction.md").write_text(statement if statement.endswith("\n") else statement + "\n")
    (task / "environment" / "Dockerfile").write_text(dockerfile(extra["environment"]))
    with tarfile.open(fileobj=io.BytesIO(source_tar)) as tar:
        tar.extractall(task / "environment" / "repo", filter="data")
    (task / "tests" / "verifier.py").write_text(extra["verifier"])
    (task / "tests" / "test.sh").write_text(TEST_SH)
    (task / "solution" / "fix.patch").write_text(instance["patch"])
    (task / "solution" / "solve.sh").write_text(SOLVE_SH)
    for script in (task / "tests" / "test.sh", task / "solution" / "solve.sh"):
        script.chmod(0o755)
    return task


def read_task(task: Path) -> dict:
    """A SWE-bench-shaped instance (with ``bugforge`` extras) from a Harbor task directory that
    BugForge wrote; ValueError when it is not one."""
    task = Path(task)
    try:
        config = tomllib.loads((task / "task.toml").read_text())
        meta = config["metadata"]
        fix = (task / "solution" / "fix.patch").read_text()
        verifier = (task / "tests" / "verifier.py").read_text()
        statement = (task / "instruction.md").read_text()
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{task.name}: not a BugForge Harbor task ({exc})") from None
    extra = {k: meta[k] for k in swebench.CARRIED if k in meta}
    extra |= {"bug_id": meta.get("bug_id"), "repository": meta.get("repository", ""),
              "clean_commit": meta.get("clean_commit", ""), "verifier": verifier, "source": meta.get("source", ""),
              "test_command": meta.get("test_command", ""), "environment": {"install": meta.get("install_command", "")},
              "provenance": json.loads(meta.get("provenance_json") or "{}")}
    return {
        "instance_id": meta.get("instance_id") or task.name, "repo": meta.get("repo") or meta.get("repository", ""),
        "base_commit": meta.get("buggy_commit") or meta.get("clean_commit", ""), "patch": fix,
        "FAIL_TO_PASS": json.dumps(meta.get("fail_to_pass", [])), "PASS_TO_PASS": json.dumps(meta.get("pass_to_pass", [])),
        "problem_statement": statement.rstrip("\n"), "bugforge": extra,
    }
