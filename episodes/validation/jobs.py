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

from episodes.engine.validate.flakiness import StopRule
from episodes.engine.validate.validator import BugSpec, RunRecord, Validator
from episodes.models import Bug, Repository, VerificationRun
from episodes.engine.sandbox import Limits
from episodes.sandboxes import executor, repo_spec, validator, workspaces

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
    with transaction.atomic():
        repo.job_id = enqueue("verify", run_baseline, repo.pk)
        repo.status, repo.error = Repository.Status.BASELINING, ""
        repo.save(update_fields=["job_id", "status", "error", "updated_at"])
    return repo.job_id


def run_baseline(repo_id: int) -> str:
    """The clean suite once under coverage: per-test status, the coverage map, and whether the
    repository is ready — with the reason, and the setting that would fix it, when not."""
    repo = Repository.objects.get(pk=repo_id)
    repo.mark(Repository.Status.BASELINING)
    try:
        spec = repo_spec(repo, with_baseline=False)
        validator = Validator(executor(), workspaces(), Limits(timeout_s=settings.BUGFORGE_BASELINE_TIMEOUT),
                              test_timeout_s=settings.BUGFORGE_TEST_TIMEOUT, on_run=lambda r: _save_run(repo.pk, None, r))
        record, coverage = validator.baseline(spec)
    except Exception as exc:
        repo.mark(Repository.Status.BROKEN, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        raise
    repo.baseline_tests = {t: {"status": s} for t, s in record.tests.items()}
    repo.coverage = coverage or {}
    repo.baseline_duration_s = record.duration_s
    repo.baseline_at = timezone.now()
    problem = baseline_problem(repo, record, coverage)
    if problem:
        repo.status, repo.error = Repository.Status.BROKEN, problem
    else:
        counts = repo.baseline_counts
        failing = counts["failed"] + counts["error"]
        repo.status = Repository.Status.READY
        repo.error = f"{failing} test(s) fail on clean code and are left out of FAIL_TO_PASS/PASS_TO_PASS" if failing else ""
    repo.save()
    return repo.status


def baseline_problem(repo: Repository, record, coverage: dict | None) -> str:
    """Why a baseline leaves the repository unusable ("" when it is ready)."""
    counts, needed = repo.baseline_counts, settings.BUGFORGE_MIN_PASSING_TESTS
    tail = record.log_excerpt[-1500:]
    if record.outcome == "timeout":
        return (f"the baseline did not finish within {settings.BUGFORGE_BASELINE_TIMEOUT:g} s (BUGFORGE_BASELINE_TIMEOUT): "
                "raise it, or narrow the test command to part of the suite (e.g. `python -m pytest tests/unit`)."
                f"\n\n{tail}")
    if not record.tests:
        return (f"the test command `{repo.test_command}` ran no pytest session (exit {record.exit_code}): BugForge reads "
                "per-test results from pytest, so the test command has to run pytest; check it and the packages of "
                f"the environment.\n\n{tail}")
    if counts["passed"] < needed:
        return (f"only {counts['passed']} test(s) pass at baseline ({counts['failed']} failed, {counts['error']} errors, "
                f"{counts['skipped']} skipped); BugForge needs at least {needed} (BUGFORGE_MIN_PASSING_TESTS) to find "
                "FAIL_TO_PASS and PASS_TO_PASS tests. Check the test command and the environment's packages."
                f"\n\n{tail}")
    if not coverage or not coverage.get("lines"):
        return ("the baseline made no usable coverage map: no line of the repository's own code is executed by a "
                "passing test, so there is nothing to plant bugs in. Are the tests importing an installed copy of the "
                "package instead of the checkout (remove it from the packages / install command), or is the code "
                "outside the checkout?" if coverage is not None else
                "the baseline made no coverage map (the pytest session did not finish; see the log).") + f"\n\n{tail}"
    return ""


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
    return validator(
        bug.repository,
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
