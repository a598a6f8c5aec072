"""Harbor export of approved sample bugs: the task directories load with the real harbor
package (harbor==0.26.0 in .venv-harbor, scripts/install-harbor.sh), their test.sh gives reward
0 on the shipped buggy source and 1 once solve.sh has applied the fix, and they import back."""
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from episodes.models import Bug, Repository

from tests.factories import add_sample_bug

pytestmark = pytest.mark.django_db

HARBOR_PY = Path(settings.BASE_DIR) / ".venv-harbor" / "bin" / "python"
REQUIRED = bool(os.environ.get("CI") or os.environ.get("BUGFORGE_REQUIRE_ALL"))

LOAD = r"""
import json, sys
from harbor.models.task.task import Task
out = []
for path in sys.argv[1:]:
    t = Task(path)
    c = t.config
    out.append({"valid": Task.is_valid_dir(path), "name": t.name, "instruction": t.instruction,
                "version": c.task.version, "metadata": c.metadata, "network": c.environment.network_mode.value,
                "workdir": c.environment.workdir, "verifier_timeout": c.verifier.timeout_sec,
                "test": t.paths.discovered_test_path.name, "solve": t.paths.discovered_solve_path.name,
                "dockerfile": (t.paths.environment_dir / "Dockerfile").is_file()})
print(json.dumps(out))
"""


def _machine_has_python312() -> bool:
    return bool(shutil.which("python3.12") or glob.glob("/root/.pyenv/versions/3.12*/bin/python3.12"))


def harbor_python() -> Path:
    if not HARBOR_PY.exists():
        if not _machine_has_python312():
            # Harbor needs Python >= 3.12 and no registry this project may use ships an interpreter.
            pytest.skip("no Python >= 3.12 on this machine: Harbor (requires-python >= 3.12) cannot be installed")
        if REQUIRED:
            pytest.fail(f"{HARBOR_PY} is missing: run scripts/install-harbor.sh (required under CI)")
        pytest.skip("no .venv-harbor (scripts/install-harbor.sh): the real-Harbor load is not checked")
    return HARBOR_PY


def run_as_container(script: Path, root: Path) -> subprocess.CompletedProcess:
    """Run a task script with the container paths (/app, /tests, /solution, /logs) under ``root``."""
    text = script.read_text()
    for name in ("app", "tests", "solution", "logs"):
        text = text.replace(f"/{name}", str(root / name))
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(["bash", "-c", text], capture_output=True, text=True,
                          env=env | {"PYTHONPATH": str(root / "app"), "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"})


def test_harbor_tasks_load_in_harbor_score_the_fix_and_round_trip(sample_repo, work_dir, tmp_path):
    bugs = [add_sample_bug(sample_repo, 0), add_sample_bug(sample_repo, 1)]
    Bug.objects.filter(pk=bugs[0].pk).update(solve_attempts=3, solve_successes=2, solve_rate=2 / 3,
                                             operator="compare_boundary", provenance={"from": "test"})
    bugs = [Bug.objects.get(pk=b.pk) for b in bugs]
    out = tmp_path / "harbor"
    call_command("export_harbor", str(out))
    tasks = sorted(p for p in out.iterdir())
    assert [t.name for t in tasks] == sorted(f"cartcalc__bugforge-{b.pk}" for b in bugs)
    for task in tasks:
        assert {p.name for p in task.iterdir()} == {"task.toml", "instruction.md", "environment", "tests", "solution"}
        assert (task / "environment" / "repo" / "cartcalc" / "shipping.py").is_file()
        for f in task.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                for host in {str(settings.VAR_DIR), str(work_dir), "/work/", "/var/tmp/"}:
                    assert host.encode() not in data, f"{host} in {f.relative_to(out)}"

    # what Harbor itself reads
    proc = subprocess.run([str(harbor_python()), "-c", LOAD, *map(str, tasks)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    loaded = {row["metadata"]["bug_id"]: row for row in json.loads(proc.stdout)}
    for bug in bugs:
        row = loaded[bug.pk]
        assert row["valid"] and row["dockerfile"] and (row["test"], row["solve"]) == ("test.sh", "solve.sh")
        assert row["name"] == f"bugforge/cartcalc-bug-{bug.pk}"
        assert row["instruction"].strip() == bug.problem_statement.strip()
        assert row["version"] == sample_repo.pinned_commit[:12] and row["workdir"] == "/app"
        assert row["network"] == "no-network" and row["verifier_timeout"] == 600.0
        meta = row["metadata"]
        assert meta["fail_to_pass"] == bug.fail_to_pass and meta["clean_commit"] == sample_repo.pinned_commit
        assert (meta["status"], meta["difficulty"], meta["buggy_runs"]) == ("approved", "<15m", bug.buggy_runs)
    assert loaded[bugs[0].pk]["metadata"]["solve_attempts"] == 3

    # the container's view: buggy source -> reward 0; solve.sh; -> reward 1
    task = out / f"cartcalc__bugforge-{bugs[0].pk}"
    root = tmp_path / "container"
    shutil.copytree(task / "environment" / "repo", root / "app")
    shutil.copytree(task / "tests", root / "tests")
    shutil.copytree(task / "solution", root / "solution")
    reward = root / "logs" / "verifier" / "reward.txt"
    assert run_as_container(root / "tests" / "test.sh", root).returncode == 0
    assert reward.read_text().strip() == "0"
    solved = run_as_container(root / "solution" / "solve.sh", root)
    assert solved.returncode == 0, solved.stderr
    assert run_as_container(root / "tests" / "test.sh", root).returncode == 0
    assert reward.read_text().strip() == "1"

    # back into an empty database
    before = {b.pk: b for b in bugs}
    Bug.objects.all().delete()
    Repository.objects.all().delete()
    Repository.objects.create(name="cartcalc", source=sample_repo.source, pinned_commit=sample_repo.pinned_commit)
    call_command("import_harbor", str(out))
    assert Bug.objects.count() == 2
    fields = ("patch", "verifier", "base_commit", "status", "operator", "difficulty", "fail_to_pass", "pass_to_pass",
              "solve_attempts", "solve_successes", "clean_runs", "buggy_fails", "problem_statement")
    for imported in Bug.objects.all():
        old_id = imported.provenance["imported_from"]["instance_id"].rsplit("-", 1)[1]
        old = before[int(old_id)]
        assert {f: getattr(imported, f) for f in fields} == {f: getattr(old, f) for f in fields}
        assert imported.provenance["imported_from"]["format"] == "harbor"
    call_command("import_harbor", str(out))  # idempotent
    assert Bug.objects.count() == 2
