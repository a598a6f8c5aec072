"""SWE-bench export of approved sample bugs, checked the way a stock harness uses an instance:
clone, check out base_commit, apply test_patch, FAIL_TO_PASS fail; apply patch, they pass.
Then the round trip back into an empty database."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from episodes.models import Bug, Repository

from tests.factories import add_sample_bug

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
    assert f2p and f2p == bug.fail_to_pass
    # test ids as SWE-bench's pytest log parser keys them (cut at the first space); the exact ones in bugforge
    p2p = json.loads(inst["PASS_TO_PASS"])
    assert any(" " in t for t in bug.pass_to_pass) and not any(" " in t for t in p2p)
    assert set(p2p) == {t.split()[0] for t in bug.pass_to_pass} - set(f2p)
    assert inst["bugforge"]["pass_to_pass"] == bug.pass_to_pass
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

    from tests.factories import make_bug, make_repo

    make_bug(make_repo("lib-gone"), 1)
    with pytest.raises(CommandError, match="cannot make its buggy commit"):
        call_command("export_swebench", str(tmp_path / "x.jsonl"))


def _git_repo(path: Path, files: dict[str, str]) -> str:
    path.mkdir(parents=True)
    sh("git", "init", "--quiet", "-b", "main", cwd=path)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    sh("git", "add", "-A", cwd=path)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "upstream", cwd=path)
    return sh("git", "rev-parse", "HEAD", cwd=path).stdout.strip()


def _staged_diff(repo: Path, files: dict[str, str], name: str) -> str:
    """The patch (git's own) that writing ``files`` into the work tree of ``repo`` makes to ``name``."""
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    sh("git", "add", "-A", cwd=repo)
    return sh("git", "diff", "--cached", "--", name, cwd=repo).stdout


def test_a_foreign_instance_is_imported_with_base_commit_as_the_buggy_code(db, tmp_path):
    """SWE-bench's base_commit is the buggy code and the gold patch fixes it (with test_patch's
    tests): the imported bug's clean commit is base_commit + test_patch + patch (a new commit on
    top of base_commit) and its patch plants the bug back, so buggy = base_commit + test_patch."""
    from episodes.sandboxes import workspaces
    from training.engine import swebench

    lib = "def clamp(x, lo, hi):\n    return max(lo, min(x, {}))\n"
    basic = "from mathlib import clamp\n\n\ndef test_inside():\n    assert clamp(5, 0, 10) == 5\n"
    src = tmp_path / "upstream"
    buggy = _git_repo(src, {"mathlib.py": lib.format("lo"), "tests/test_basic.py": "def test_ok():\n    assert True\n"})
    work = tmp_path / "work"
    sh("git", "clone", "--quiet", str(src), str(work), cwd=tmp_path)
    fixed = {"mathlib.py": lib.format("hi"), "tests/test_clamp.py": basic}
    instance = {
        "instance_id": "acme__mathlib-7", "repo": "acme/mathlib", "base_commit": buggy,
        "patch": _staged_diff(work, fixed, "mathlib.py"), "test_patch": _staged_diff(work, fixed, "tests/test_clamp.py"),
        "FAIL_TO_PASS": '["tests/test_clamp.py::test_inside"]', "PASS_TO_PASS": '["tests/test_basic.py::test_ok"]',
        "problem_statement": "clamp ignores hi", "hints_text": "", "created_at": "", "version": "1.0",
        "environment_setup_commit": buggy,
    }
    broken = {**instance, "instance_id": "acme__mathlib-8", "patch": instance["patch"].replace("lo))", "nope))")}
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps([instance, broken]))
    repo = Repository.objects.create(name="acme__mathlib", source=str(src), pinned_commit=buggy)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_swebench", str(path), stdout=out, stderr=err)
    assert "1 bug(s) created, 0 already there, 1 skipped" in out.getvalue()
    assert "acme__mathlib-8: cannot make its clean commit" in err.getvalue()  # its gold patch does not apply
    bug = Bug.objects.get()
    assert bug.repository == repo and bug.method == "imported"
    assert bug.base_commit != buggy and len(bug.base_commit) == 40
    assert bug.patch == swebench.reverse_patch(instance["patch"]) and "tests/test_clamp.py::test_inside" in bug.verifier
    assert bug.provenance["upstream_base_commit"] == buggy
    assert bug.fail_to_pass == ["tests/test_clamp.py::test_inside"]

    # the clean commit: a child of base_commit with the gold patch and the test patch applied
    mirror = workspaces().ensure_mirror(repo.source, bug.base_commit)
    clone = tmp_path / "clone"
    sh("git", "clone", "--quiet", "--no-checkout", str(mirror), str(clone), cwd=tmp_path)
    sh("git", "fetch", "--quiet", str(mirror), "refs/bugforge/*:refs/bugforge/*", cwd=clone)
    sh("git", "checkout", "--quiet", bug.base_commit, cwd=clone)
    assert sh("git", "rev-parse", "HEAD^", cwd=clone).stdout.strip() == buggy
    assert (clone / "mathlib.py").read_text() == lib.format("hi") and (clone / "tests" / "test_clamp.py").is_file()
    (clone / ".bugforge").mkdir()
    (clone / ".bugforge" / "verifier.py").write_text(bug.verifier)
    assert sh(sys.executable, ".bugforge/verifier.py", cwd=clone, check=False).returncode == 0  # clean passes
    # ... and the bug's patch gives back the instance's code: base_commit + test_patch, where FAIL_TO_PASS fails
    sh("git", "apply", "-", cwd=clone, input=bug.patch)
    assert sh("git", "diff", "--quiet", buggy, "--", "mathlib.py", "tests/test_basic.py", cwd=clone,
              check=False).returncode == 0
    assert sh(sys.executable, ".bugforge/verifier.py", cwd=clone, check=False).returncode == 1

    # the same commit again (fixed author and date): importing twice finds the bug
    call_command("import_swebench", str(path))
    assert Bug.objects.count() == 1 and Bug.objects.get().base_commit == bug.base_commit
