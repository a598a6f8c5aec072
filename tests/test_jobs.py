"""Validation through real RQ workers on the real Redis: results and failures land on the
bug row, hostile verifiers leave the worker alive, and a killed worker's bug is re-queueable."""
import os
import signal
import subprocess
import time

import django_rq
import pytest
from rq import SimpleWorker

from .workers import manage, worker_env

from episodes.validation import jobs
from episodes.engine.validate.validator import pytest_verifier
from episodes.models import Bug, Repository, VerificationRun

pytestmark = pytest.mark.django_db(transaction=True)

PATCH_OLD, PATCH_NEW = "if weight_grams <= band.max_grams:", "if weight_grams < band.max_grams:"


def boundary_patch(repo, new: str = PATCH_NEW) -> str:
    from episodes.engine.git.workspace import diff
    from episodes.sandboxes import repo_spec, workspaces

    spec = repo_spec(repo)
    with workspaces().checkout(spec.mirror, spec.commit) as ws:
        f = ws / "cartcalc/shipping.py"
        f.write_text(f.read_text().replace(PATCH_OLD, new, 1))
        return diff(ws)


def make_bug(repo, verifier=None, **kw) -> Bug:
    return Bug.objects.create(
        repository=repo,
        base_commit=repo.pinned_commit,
        patch=kw.pop("patch", None) or boundary_patch(repo),
        verifier=verifier or pytest_verifier(["tests/test_shipping.py"]),
        **kw,
    )


def burst(queue="verify"):
    worker = SimpleWorker([django_rq.get_queue(queue)], connection=django_rq.get_connection(queue))
    worker.work(burst=True)


def test_validation_job_stores_runs_and_verdict(sample_repo, redis_conn, settings):
    settings.BUGFORGE_FLAKE_TARGET = 0.8  # two runs a side: 1 − 0.05^(1/2) = 78%
    bug = make_bug(sample_repo)
    job_id = jobs.enqueue_validation(bug)
    bug.refresh_from_db()
    assert bug.status == "validating" and bug.validation_job_id == job_id
    burst()
    bug.refresh_from_db()
    assert bug.status == "valid", (bug.invalid_reason, bug.error)
    assert bug.fail_to_pass and bug.pass_to_pass
    assert (bug.clean_runs, bug.clean_passes, bug.buggy_runs, bug.buggy_fails) == (2, 2, 2, 2)
    assert bug.flake_upper_bound == pytest.approx(1 - 0.05 ** 0.5) and bug.flake_target == 0.8
    assert bug.stable_at(0.8) and not bug.stable_at(0.5) and bug.validation_s > 0
    assert bug.runs.filter(scope="tests", code="buggy", purpose="validation").count() == 1 and bug.suite_scope == "covering"
    assert bug.runs.filter(scope="verifier").count() == 4
    assert bug.validation_progress == {}


def test_reruns_update_flakiness_figures(sample_repo, redis_conn, settings):
    settings.BUGFORGE_FLAKE_TARGET = 0.99  # one run a side
    bug = make_bug(sample_repo)
    jobs.enqueue_validation(bug)
    burst()
    jobs.enqueue_reruns(Bug.objects.get(pk=bug.pk), 2)
    burst()
    bug.refresh_from_db()
    assert bug.status == "valid"
    assert (bug.clean_runs, bug.buggy_runs) == (3, 3)  # 1 (reverse) + 2 reruns a side
    assert bug.runs.filter(purpose="rerun").count() == 4


def test_job_failure_is_recorded_on_the_bug(db, sandbox_settings, sample_git, redis_conn):
    repo = Repository.objects.create(
        name="gone", source="/nonexistent/repo.git", pinned_commit="0" * 40,
        baseline_tests={"t": {"status": "passed"}}, status="ready", baseline_at="2026-01-01T00:00:00Z",
    )
    bug = Bug.objects.create(repository=repo, base_commit="0" * 40, patch="x", verifier="pass")
    job_id = jobs.enqueue_validation(bug)
    burst()
    bug.refresh_from_db()
    assert bug.status == "invalid" and bug.invalid_kind == "validation_error"  # a final state, not stuck
    assert "GitError" in bug.error and "/nonexistent/repo.git" in bug.error
    assert bug.invalid_reason.startswith("validation crashed: GitError") and bug.validation_progress == {}
    assert job_id in django_rq.get_queue("verify").failed_job_registry.get_job_ids()


def test_hostile_verifiers_do_not_take_the_worker_down(sample_repo, redis_conn, settings):
    # (each bug needs its own patch: patches are unique per repository)
    fork_bomb = make_bug(sample_repo, verifier="import os\nwhile True:\n    os.fork()\n", operator="bomb")
    memory_hog = make_bug(sample_repo, verifier="x = bytearray(8 * 1024**3)\n", operator="hog",
                          patch=boundary_patch(sample_repo, "if weight_grams + 1 < band.max_grams:"))
    good = make_bug(sample_repo, operator="good", patch=boundary_patch(sample_repo, "if weight_grams < band.max_grams + 0:"))
    for bug in (fork_bomb, memory_hog, good):
        jobs.enqueue_validation(bug)
    proc = manage("rqworker", "verify", "--burst", env=worker_env(settings),
                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-3000:]
    statuses = dict(Bug.objects.values_list("operator", "status"))
    assert statuses == {"bomb": "invalid", "hog": "invalid", "good": "valid"}, out[-3000:]
    bomb = Bug.objects.get(pk=fork_bomb.pk)
    assert bomb.invalid_kind == "pids_clean" and "(2/2 runs)" in bomb.invalid_reason, bomb.invalid_reason
    assert Bug.objects.get(pk=memory_hog.pk).invalid_kind == "memory_clean"
    hog_runs = VerificationRun.objects.filter(bug=memory_hog, code__in=["clean", "reverse"])
    assert hog_runs.count() == 2 and all(r.killed_by == "memory" for r in hog_runs)  # confirmed once, not rerun


def test_killed_worker_leaves_the_bug_requeueable(sample_repo, redis_conn, settings):
    bug = make_bug(sample_repo, verifier="import time\ntime.sleep(300)\n")
    jobs.enqueue_validation(bug)
    proc = manage("rqworker", "verify", env=worker_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not VerificationRun.objects.filter(bug=bug).exists() and time.monotonic() < deadline:
            # wait until the job is inside the sandbox: the clean run has started
            if Bug.objects.get(pk=bug.pk).validation_progress.get("step", "").startswith("verifier"):
                break
            time.sleep(0.5)
        time.sleep(1)
        # While its job is alive the sweeper leaves it alone.
        assert Bug.objects.sweep_stale() == []
        horse = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert horse, "no work horse found"
        os.kill(int(horse[0]), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Bug.objects.sweep_stale() == [] and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    bug.refresh_from_db()
    assert bug.status == "candidate" and "validation interrupted" in bug.error
    # and it can be queued again
    jobs.enqueue_validation(bug)
    assert Bug.objects.get(pk=bug.pk).status == "validating"


def test_silent_job_is_swept_after_the_stale_period(sample_repo, redis_conn):
    bug = make_bug(sample_repo)
    jobs.enqueue_validation(bug)  # queued, never picked up: the job exists but never beats
    assert Bug.objects.sweep_stale(stale_after_s=3600) == []
    Bug.objects.filter(pk=bug.pk).update(heartbeat_at="2020-01-01T00:00:00Z")
    [(pk, why)] = Bug.objects.sweep_stale(stale_after_s=3600)
    assert pk == bug.pk and "no sign of life" in why


DECORATION_OLD, DECORATION_NEW = '"""Decimal based money type.', '"""Decimal-based money type.'


def test_hunk_drop_onto_an_existing_bug_ends_as_its_duplicate(sample_repo, redis_conn, settings, staff_client):
    from django.urls import reverse

    from episodes.engine.git.workspace import diff
    from episodes.sandboxes import repo_spec, workspaces

    settings.BUGFORGE_FLAKE_TARGET = 0.99
    original = make_bug(sample_repo, operator="first")
    spec = repo_spec(sample_repo)
    with workspaces().checkout(spec.mirror, spec.commit) as ws:
        for path, old, new in (("cartcalc/shipping.py", PATCH_OLD, PATCH_NEW),
                               ("cartcalc/money.py", DECORATION_OLD, DECORATION_NEW)):
            (ws / path).write_text((ws / path).read_text().replace(old, new, 1))
        decorated = diff(ws)
    later = make_bug(sample_repo, operator="decorated", patch=decorated)
    jobs.enqueue_validation(later)
    burst()  # the job must not crash on the unique patch rule
    later.refresh_from_db()
    assert later.status == "invalid" and later.invalid_kind == "duplicate", (later.invalid_reason, later.error)
    assert later.duplicate_of_id == original.pk and f"bug {original.pk}" in later.invalid_reason
    assert later.patch == decorated == later.original_patch  # nothing overwritten
    assert len(later.dropped_hunks) == 1 and "money.py" in later.dropped_hunks[0]
    assert not django_rq.get_queue("verify").failed_job_registry.get_job_ids()
    page = staff_client.get(reverse("bug_detail", args=[later.pk])).content.decode()
    assert 'id="duplicate-of"' in page and 'id="dropped-hunks"' in page and "Decimal-based" in page
    # validating it again ends the same way, and says so again
    assert jobs.validate_bug(later.pk) == "invalid" and Bug.objects.get(pk=later.pk).invalid_kind == "duplicate"


def test_sweep_keeps_the_failed_jobs_error(sample_repo, redis_conn):
    job = django_rq.get_queue("verify").enqueue(jobs.validate_bug, 987654321)  # no such bug: the job fails
    burst()
    bug = make_bug(sample_repo, status="validating", validation_job_id=job.id)
    [(swept, why)] = Bug.objects.sweep_stale()
    bug.refresh_from_db()
    assert swept == bug.pk and bug.status == "candidate"
    assert "failed: episodes.models.bug.Bug.DoesNotExist: Bug matching query does not exist." in why
    assert why in bug.error
