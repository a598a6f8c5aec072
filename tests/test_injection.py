"""Procedural injection on the sample repository, end to end through the real sandbox."""
import io
import subprocess

import pytest
from django.core.management import call_command

from episodes.injection import batches as injection
from episodes.models import Bug, InjectionBatch

from .workers import manage, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


BATCH_SIZE = 24


def test_a_procedural_batch_yields_valid_bugs(sample_repo, settings, redis_conn):
    settings.BUGFORGE_FLAKE_TARGET = 0.99  # one run a side: the yield, not the flake bound, is under test
    # The batch job plans the candidates and derives their verifiers, queueing each for
    # validation; two real workers then validate them side by side, as on a deployment.
    # (Throughput on larger batches is bench/injection_throughput.py's.)
    batch = injection.start_batch(sample_repo, "procedural", BATCH_SIZE, seed=1)
    injection.run_batch(batch.pk)
    env = worker_env(settings) | {"BUGFORGE_FLAKE_TARGET": "0.99"}
    workers = [manage("rqworker", "verify", "--burst", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
               for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=900) == 0
    out = io.StringIO()
    call_command("inject", "cartcalc", "--report", stdout=out)
    batch = InjectionBatch.objects.get()
    assert batch.status == "done", batch.error
    assert batch.produced == batch.planned == BATCH_SIZE
    bugs = Bug.objects.filter(batch=batch)
    assert bugs.count() == BATCH_SIZE
    assert len({b.patch_hash for b in bugs}) == BATCH_SIZE
    operators = set(bugs.values_list("operator", flat=True))
    assert len(operators) >= 6
    valid = bugs.filter(status="valid")
    assert 0.25 <= valid.count() / BATCH_SIZE <= 1.0, out.getvalue()
    assert not bugs.filter(status__in=["candidate", "validating"]).exists()
    for bug in valid:
        assert bug.fail_to_pass and bug.pass_to_pass and bug.target.startswith("cartcalc/")
        runs = dict(bug.runs.filter(scope="verifier").values_list("code", "outcome"))
        assert runs == {"reverse": "passed", "buggy": "failed"}  # clean code reached by reversing the patch
        assert bug.problem_statement and "test_" not in bug.problem_statement
        assert bug.generation_s is not None and bug.seed is not None
    for bug in bugs.filter(status="invalid"):
        assert bug.invalid_kind and bug.invalid_reason
    report = out.getvalue()
    assert f"{BATCH_SIZE} attempts → {BATCH_SIZE} candidates: {valid.count()} valid" in report
    rows = injection.figures(sample_repo)
    assert rows[0]["pending"] == 0 and rows[0]["yield"] == pytest.approx(valid.count() / BATCH_SIZE)


def test_inject_command_sync_runs_inline_with_validation(sample_repo, settings):
    settings.BUGFORGE_FLAKE_TARGET = 0.99  # one run a side
    out = io.StringIO()
    call_command("inject", "cartcalc", "--count", "3", "--seed", "2", "--sync", stdout=out, stderr=io.StringIO())
    bugs = Bug.objects.filter(method="procedural")
    assert bugs.count() == 3 and not bugs.filter(status__in=["candidate", "validating"]).exists()
    assert "3 candidate(s) from 3 attempt(s)" in out.getvalue() and "3 attempts → 3 candidates" in out.getvalue()


def test_second_batch_never_repeats_a_patch(sample_repo, redis_conn):
    first = injection.start_batch(sample_repo, "procedural", 3, seed=5)
    second = injection.start_batch(sample_repo, "procedural", 3, seed=5)
    for batch in (first, second):
        injection.run_batch(batch.pk)  # validation is queued, not run: only planning is under test
    hashes = list(Bug.objects.values_list("patch_hash", flat=True))
    assert len(hashes) == len(set(hashes)) == 6
    assert set(InjectionBatch.objects.values_list("status", flat=True)) == {"done"}


def test_batch_failure_is_recorded_on_the_batch(sample_repo):
    with pytest.raises(NotImplementedError):
        injection.start_batch(sample_repo, "imported", 2, sync=True)
    batch = InjectionBatch.objects.get()
    assert batch.status == "failed" and "not available" in batch.error and batch.finished_at


def test_combine_merges_two_valid_bugs_of_one_module(sample_repo, settings):
    from episodes.validation import jobs
    from episodes.engine.repos.samples import SAMPLE_BUGS, sample_patch
    from episodes.sandboxes import repo_spec, workspaces

    settings.BUGFORGE_FLAKE_TARGET = 0.99  # one run a side
    spec = repo_spec(sample_repo)
    for sample in [b for b in SAMPLE_BUGS if b.path == "cartcalc/discounts.py"]:
        bug = Bug.objects.create(repository=sample_repo, base_commit=sample_repo.pinned_commit, target=sample.target,
                                 patch=sample_patch(workspaces(), spec.mirror, spec.commit, sample),
                                 verifier=sample.verifier, problem_statement=sample.problem_statement)
        assert jobs.validate_bug(bug.pk) == "valid"
    batch = injection.start_batch(sample_repo, "combine", 1, seed=3, sync=True)
    assert batch.status == "done", batch.error
    merged = Bug.objects.get(method="combine")
    assert merged.status == "valid", merged.invalid_reason
    assert merged.operator == "combine2" and merged.target == "cartcalc/discounts.py"
    assert merged.patch.count("\n@@") == 2  # both components' hunks, each shown to be needed
    assert "Buy-X-get-Y" in merged.problem_statement and "tier" in merged.problem_statement
    with pytest.raises(RuntimeError, match="no module has 3 valid bugs"):
        injection.start_batch(sample_repo, "combine", 1, size=3, sync=True)


def test_history_reverts_a_real_past_fix(db, sandbox_settings, tmp_path, redis_conn):
    """A repository whose last commit fixed a bug and added a test for it: history mode
    reverts the fix's source half, and the test it added becomes the verifier."""
    import subprocess

    from episodes.validation.jobs import run_baseline
    from episodes.models import Repository

    origin = sandbox_settings.BUGFORGE_WORK_DIR / "history-origin"
    (origin / "tests").mkdir(parents=True)
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=origin,  # noqa: E731
                                    check=True, capture_output=True, text=True).stdout.strip()
    git("init", "-q", "-b", "main")
    (origin / "mathlib.py").write_text("def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x > hi:\n"
                                       "        return lo\n    return x\n\n\ndef double(x):\n    return 2 * x\n")
    (origin / "tests" / "test_mathlib.py").write_text(
        "from mathlib import clamp, double\n\n\ndef test_low():\n    assert clamp(-1, 0, 5) == 0\n\n\n"
        "def test_double():\n    assert double(2) == 4\n")
    git("add", "-A"); git("commit", "-qm", "clamp and double")
    (origin / "mathlib.py").write_text((origin / "mathlib.py").read_text().replace("        return lo\n    return x",
                                                                                   "        return hi\n    return x"))
    with open(origin / "tests" / "test_mathlib.py", "a") as f:
        f.write("\n\ndef test_high():\n    assert clamp(9, 0, 5) == 5\n")
    git("add", "-A"); git("commit", "-qm", "Fix clamp above the range")
    repo = Repository.objects.create(name="mathlib", source=str(origin), pinned_commit=git("rev-parse", "HEAD"))
    assert run_baseline(repo.pk) == "ready"
    sandbox_settings.BUGFORGE_FLAKE_TARGET = 0.99  # one run a side
    batch = injection.start_batch(repo, "history", 5, sync=True)
    assert batch.status == "done" and batch.planned == 1, batch.error
    bug = Bug.objects.get(batch=batch)
    assert bug.status == "valid", bug.invalid_reason
    assert bug.fail_to_pass == ["tests/test_mathlib.py::test_high"]
    assert "Fix clamp above the range" in bug.injector and "+        return lo" in bug.patch
