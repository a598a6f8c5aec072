"""RQ jobs: load rows, call the engine, save results. Failures land on the domain row.

Each job catches its own exception, writes status + error text to the row it works on, and
re-raises so RQ records it too. A worker killed outright (SIGKILL, OOM, host loss) runs no
handler at all; `Bug.objects.sweep_stale()` (run by `manage.py sweep` and before each
validation) resets such rows from their RQ job state and heartbeat.
"""
from __future__ import annotations

import logging
import random
import time
import traceback

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bugforge_web.queues import enqueue

from .engine.flakiness import StopRule
from .engine.validation import BugSpec, RunRecord, Validator
from .models import Bug, Repository, VerificationRun
from .sandboxes import default_limits, executor, repo_spec, workspaces

log = logging.getLogger(__name__)


def _save_run(repository_id: int, bug_id: int | None, record: RunRecord) -> VerificationRun:
    return VerificationRun.objects.create(
        repository_id=repository_id,
        bug_id=bug_id,
        code=record.code,
        scope=record.scope,
        purpose=record.purpose,
        outcome=record.outcome,
        exit_code=record.exit_code,
        killed_by=record.killed_by,
        duration_s=record.duration_s,
        seed=record.seed,
        tests=record.tests,
        log_excerpt=record.log_excerpt,
        backend=record.backend,
    )


# --- baseline ---------------------------------------------------------------------------


def enqueue_baseline(repo: Repository):
    repo.mark(Repository.Status.BASELINING)
    return enqueue("verify", run_baseline, repo.pk)


def run_baseline(repo_id: int) -> str:
    repo = Repository.objects.get(pk=repo_id)
    repo.mark(Repository.Status.BASELINING)
    try:
        spec = repo_spec(repo, with_baseline=False)
        validator = Validator(executor(), workspaces(), default_limits(), on_run=lambda r: _save_run(repo.pk, None, r))
        record, coverage = validator.baseline(spec)
    except Exception as exc:
        repo.mark(Repository.Status.BROKEN, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        raise
    passing = [t for t, s in record.tests.items() if s == "passed"]
    repo.baseline_tests = {t: {"status": s} for t, s in record.tests.items()}
    repo.coverage = coverage or {}
    repo.baseline_duration_s = record.duration_s
    repo.baseline_at = timezone.now()
    if record.outcome == "timeout":
        repo.status, repo.error = Repository.Status.BROKEN, "baseline timed out: the suite is skipped"
    elif not passing:
        repo.status, repo.error = Repository.Status.BROKEN, f"baseline has no passing test ({record.outcome})"
    else:
        failing = len(record.tests) - len(passing)
        repo.status = Repository.Status.READY
        repo.error = f"{failing} test(s) fail on clean code and are left out of FAIL_TO_PASS/PASS_TO_PASS" if failing else ""
    repo.save()
    return repo.status


# --- validation -------------------------------------------------------------------------


def enqueue_validation(bug: Bug):
    with transaction.atomic():
        bug = Bug.objects.select_for_update().get(pk=bug.pk)
        job_id = enqueue("verify", validate_bug, bug.pk)
        bug.status, bug.error, bug.validation_job_id = Bug.Status.VALIDATING, "", job_id
        bug.heartbeat_at = timezone.now()
        bug.validation_progress = {"step": "queued", "done": 0, "total": 0}
        bug.save(update_fields=["status", "error", "validation_job_id", "heartbeat_at", "validation_progress"])
    return job_id


def _validator_for(bug: Bug, target: float | None = None) -> Validator:
    return Validator(
        executor(),
        workspaces(),
        default_limits(bug.repository),
        flake=StopRule(target=target or settings.BUGFORGE_FLAKE_TARGET, max_runs=settings.BUGFORGE_FLAKE_MAX_RUNS),
        workers=settings.BUGFORGE_VALIDATION_WORKERS,
        on_run=lambda record: (_save_run(bug.repository_id, bug.pk, record), bug.beat()),
        on_progress=lambda step, done, total: bug.beat(step=step, done=done, total=total),
    )


def validate_bug(bug_id: int, target: float | None = None, seed: int | None = None) -> str:
    """Validate one bug; whatever happens it ends in a final state (a crash: invalid with
    kind ``validation_error`` and the traceback kept) and the job re-raises for RQ."""
    bug = Bug.objects.select_related("repository").get(pk=bug_id)
    started = time.monotonic()
    try:
        repo = bug.repository
        if not repo.baseline_at:
            run_baseline(repo.pk)
            repo.refresh_from_db()
        if repo.status != Repository.Status.READY:
            raise RuntimeError(f"repository {repo} is not ready: {repo.error}")
        bug.status, bug.validation_started_at = Bug.Status.VALIDATING, timezone.now()
        bug.save(update_fields=["status", "validation_started_at"])
        verdict = _validator_for(bug, target).validate(repo_spec(repo), BugSpec(bug.patch, bug.verifier), seed=seed)
        bug.validation_s = round(time.monotonic() - started, 3)
        bug.apply_verdict(verdict)
    except Exception as exc:
        bug.fail_validation(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}",
                            round(time.monotonic() - started, 3))
        raise
    return bug.status


def enqueue_reruns(bug: Bug, n: int):
    return enqueue("verify", rerun_verifier, bug.pk, n)


def rerun_verifier(bug_id: int, n: int, seed: int | None = None) -> str:
    """n more clean and n more buggy verifier runs; the flakiness figures take them all in."""
    bug = Bug.objects.select_related("repository").get(pk=bug_id)
    seed = random.randrange(2**31) if seed is None else seed
    try:
        spec = repo_spec(bug.repository)
        _validator_for(bug).verifier_runs(spec, BugSpec(bug.patch, bug.verifier), n, seed, "rerun")
    except Exception as exc:
        Bug.objects.filter(pk=bug.pk).update(error=f"rerun failed: {type(exc).__name__}: {exc}")
        raise
    bug.refresh_flakiness()
    return bug.status


def enqueue_stabilize(bug: Bug, target: float):
    return enqueue("verify", stabilize_bug, bug.pk, target)


def stabilize_bug(bug_id: int, target: float, seed: int | None = None) -> str:
    """Sequential reruns of a settled bug until it is stable at < ``target`` (a stricter target
    than it was validated with) or its verifier disagrees (then it is flaky)."""
    bug = Bug.objects.select_related("repository").get(pk=bug_id)
    seed = random.randrange(2**31) if seed is None else seed
    try:
        spec = repo_spec(bug.repository)
        _validator_for(bug, target).stabilize(spec, BugSpec(bug.patch, bug.verifier), *bug.run_outcomes(), seed=seed)
    except Exception as exc:
        Bug.objects.filter(pk=bug.pk).update(error=f"stabilizing failed: {type(exc).__name__}: {exc}")
        raise
    Bug.objects.filter(pk=bug.pk).update(validation_progress={})
    bug.refresh_from_db()
    bug.refresh_flakiness(target=target)
    return bug.status
