"""SWE-bench export of approved sample bugs, checked the way a stock harness uses an instance:
clone, check out base_commit, apply test_patch, FAIL_TO_PASS fail; apply patch, they pass.
Then the round trip back into an empty database."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from episodes.models import Bug, Repository

from .conftest import add_sample_bug

pytestmark = pytest.mark.django_db


def sh(*args, cwd, check=True, input=None):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=check, input=input,
                          env={**{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
                               "PYTHONPATH": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"})


def host_paths(work_dir) -> list[str]:
    return [p for p in {str(settings.VAR_DIR), str(work_dir), "/work/", "/var/tmp/", str(Path.home())} if p]


def test_export_is_a_harness_ready_instance_and_round_trips(sample_repo, work_dir, tmp_path):
    bugs = [add_sample_bug(sample_repo, 0), add_sample_bug(sample_repo, 3)]
    Bug.objects.filter(pk=bugs[0].pk).update(
        solve_attempts=4, solve_successes=1, solve_rate=0.25, solve_low=0.006, solve_high=0.806,
        method="procedural", operator="compare_boundary", difficulty="15m-1h",
        provenance={"self_play": {"round": 2}})
    Bug.objects.filter(pk=bugs[1].pk).update(status="valid")  # not exported by default
    out = tmp_path / "export" / "bugs.jsonl"
    out.parent.mkdir()
    call_command("export_swebench", str(out))
    [inst] = [json.loads(line) for line in out.read_text().splitlines()]
    bug = Bug.objects.get(pk=bugs[0].pk)

    # the fields, as SWE-bench means them (swebench.types.SWEbenchInstance: all strings)
    from training.engine.swebench import INSTANCE_FIELDS

    assert all(isinstance(inst[f], str) for f in INSTANCE_FIELDS)
    assert inst["instance_id"] == f"cartcalc__bugforge-{bug.pk}" and inst["repo"] == "cartcalc"
    assert inst["version"] == sample_repo.pinned_commit[:12] and inst["environment_setup_commit"] == sample_repo.pinned_commit
    assert inst["base_commit"] != sample_repo.pinned_commit and len(inst["base_commit"]) == 40
    f2p = json.loads(inst["FAIL_TO_PASS"])
    assert f2p and f2p == bug.fail_to_pass and json.loads(inst["PASS_TO_PASS"]) == bug.pass_to_pass
    env = inst["bugforge"]["environment"]
    assert env["test_cmd"] == sample_repo.test_command and env["python"].startswith("3.")
    assert inst["bugforge"]["bundle"] == "bugs-repos/cartcalc.bundle"

    # no host path anywhere in what was written
    written = [out, *sorted((tmp_path / "export" / "bugs-repos").iterdir())]
    for path in written:
        data = path.read_bytes()
        for host in host_paths(work_dir):
            assert host.encode() not in data, f"{host} in {path.name}"

    # a stock harness: clone, check out base_commit, apply test_patch; FAIL_TO_PASS fail ...
    clone = tmp_path / "harness"
    bundle = str(out.parent / inst["bugforge"]["bundle"])
    sh("git", "clone", "--quiet", bundle, str(clone), cwd=tmp_path)
    sh("git", "fetch", "--quiet", bundle, "refs/bugforge/*:refs/bugforge/*", cwd=clone)
    sh("git", "checkout", "--quiet", inst["base_commit"], cwd=clone)
    assert sh("git", "rev-parse", "HEAD^", cwd=clone).stdout.strip() == sample_repo.pinned_commit
    sh("git", "apply", "-", cwd=clone, input=inst["test_patch"])
    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    assert sh(*pytest_cmd, *f2p, cwd=clone, check=False).returncode == 1
    assert sh(sys.executable, ".bugforge/verifier.py", cwd=clone, check=False).returncode == 1
    # ... and pass once the gold patch is applied, PASS_TO_PASS too
    sh("git", "apply", "-", cwd=clone, input=inst["patch"])
    assert sh(*pytest_cmd, *f2p, cwd=clone, check=False).returncode == 0
    assert sh(sys.executable, ".bugforge/verifier.py", cwd=clone, check=False).returncode == 0
    assert sh("git", "diff", "--quiet", sample_repo.pinned_commit, "--", "cartcalc", cwd=clone, check=False).returncode == 0

    # exporting again gives the same commit (fixed author and date)
    call_command("export_swebench", str(tmp_path / "again.jsonl"))
    assert json.loads((tmp_path / "again.jsonl").read_text())["base_commit"] == inst["base_commit"]

    # round trip into an empty database: the bug as it left
    kept = ("method", "operator", "status", "difficulty", "clean_runs", "clean_passes", "buggy_runs", "buggy_fails",
            "flake_upper_bound", "solve_attempts", "solve_successes", "solve_rate", "solve_low", "solve_high",
            "patch", "verifier", "fail_to_pass", "pass_to_pass", "base_commit", "problem_statement", "target")
    before = {k: getattr(bug, k) for k in kept}
    Bug.objects.all().delete()
    Repository.objects.all().delete()
    repo = Repository.objects.create(name="cartcalc", source=sample_repo.source, pinned_commit=sample_repo.pinned_commit)
    call_command("import_swebench", str(out))
    imported = Bug.objects.get()
    assert imported.repository == repo
    assert {k: getattr(imported, k) for k in kept} == before
    assert before["status"] == "approved" and before["solve_attempts"] == 4 and before["difficulty"] == "15m-1h"
    assert imported.provenance == {"self_play": {"round": 2}, "imported_from": {
        "format": "swebench", "file": "bugs.jsonl", "instance_id": inst["instance_id"]}}
    call_command("import_swebench", str(out))  # idempotent
    assert Bug.objects.count() == 1


def test_repo_is_owner_name_for_github_like_sources_and_local_sources_stay_home():
    from training.engine import swebench

    assert swebench.repo_name("https://github.com/psf/requests.git", "requests") == "psf/requests"
    assert swebench.repo_name("git@github.com:pallets/click.git", "click") == "pallets/click"
    assert swebench.repo_name("/srv/git/cartcalc", "cartcalc") == "cartcalc"
    assert swebench.public_source("/srv/git/cartcalc") == ""
    assert swebench.public_source("https://github.com/psf/requests.git") == "https://github.com/psf/requests.git"


def test_a_bug_whose_code_is_gone_is_refused(db, tmp_path):
    from django.core.management.base import CommandError

    from .conftest import make_bug, make_repo

    make_bug(make_repo("lib-gone"), 1)
    with pytest.raises(CommandError, match="cannot make its buggy commit"):
        call_command("export_swebench", str(tmp_path / "x.jsonl"))
