"""Procedural injection on the sample repository, end to end through the real sandbox."""
import io
import subprocess

import pytest
from django.core.management import call_command

from episodes import injection
from episodes.models import Bug, InjectionBatch

from .workers import manage, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def test_procedural_batch_of_50_yields_valid_bugs(sample_repo, settings, redis_conn):
    settings.BUGFORGE_FLAKY_RERUNS = 1  # one run a side: the yield, not the flake bound, is under test
    # The batch job plans 50 candidates and derives their verifiers, queueing each for
    # validation; two real workers then validate them side by side, as on a deployment.
    batch = injection.start_batch(sample_repo, "procedural", 50, seed=1)
    injection.run_batch(batch.pk)
    env = worker_env(settings) | {"BUGFORGE_FLAKY_RERUNS": "1"}
    workers = [manage("rqworker", "verify", "--burst", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
               for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=900) == 0
    out = io.StringIO()
    call_command("inject", "cartcalc", "--report", stdout=out)
    batch = InjectionBatch.objects.get()
    assert batch.status == "done", batch.error
    assert batch.produced == batch.planned == 50
    bugs = Bug.objects.filter(batch=batch)
    assert bugs.count() == 50
    assert len({b.patch_hash for b in bugs}) == 50
    operators = set(bugs.values_list("operator", flat=True))
    assert len(operators) >= 6
    valid = bugs.filter(status="valid")
    assert 0.25 <= valid.count() / 50 <= 1.0, out.getvalue()
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
    assert f"cartcalc / procedural: 50 candidates, {valid.count()} valid" in report
    rows = injection.figures(sample_repo)
    assert rows[0]["pending"] == 0 and rows[0]["yield"] == pytest.approx(valid.count() / 50)


def test_inject_command_sync_runs_inline_with_validation(sample_repo, settings):
    settings.BUGFORGE_FLAKY_RERUNS = 1
    out = io.StringIO()
    call_command("inject", "cartcalc", "--count", "3", "--seed", "2", "--sync", stdout=out, stderr=io.StringIO())
    bugs = Bug.objects.filter(method="procedural")
    assert bugs.count() == 3 and not bugs.filter(status__in=["candidate", "validating"]).exists()
    assert "cartcalc / procedural: 3 candidates" in out.getvalue()


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
        injection.start_batch(sample_repo, "combine", 2, sync=True)
    batch = InjectionBatch.objects.get()
    assert batch.status == "failed" and "not available" in batch.error and batch.finished_at
