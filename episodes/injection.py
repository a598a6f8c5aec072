"""Injection batches (the `inject` queue): plan candidates with the engine, turn each into a
Bug row, validate it inline or on the `verify` queue. Failures land on the batch row."""
from __future__ import annotations

import random
import traceback

from django.db import IntegrityError
from django.db.models import Avg, Count, Sum

from bugforge_web.queues import enqueue

from . import jobs
from .engine.injectors import procedural
from .engine.validation import Validator
from .models import Bug, InjectionBatch, LLMCall, Repository
from .sandboxes import default_limits, executor, repo_spec, workspaces


def start_batch(repo: Repository, method: str, count: int, *, seed: int | None = None, user=None,
                operators: list[str] | None = None, endpoint=None, sync: bool = False, progress=None) -> InjectionBatch:
    batch = InjectionBatch.objects.create(
        repository=repo, method=method, requested=count, created_by=user,
        seed=random.randrange(2**31) if seed is None else seed,
        options={"operators": operators or [], "endpoint": endpoint.pk if endpoint else None},
    )
    if sync:
        run_batch(batch.pk, validate_inline=True, progress=progress)
        batch.refresh_from_db()
    else:
        batch.job_id = enqueue("inject", run_batch, batch.pk)
        batch.save(update_fields=["job_id"])
    return batch


def run_batch(batch_id: int, validate_inline: bool = False, progress=None) -> str:
    batch = InjectionBatch.objects.select_related("repository").get(pk=batch_id)
    batch.mark(InjectionBatch.Status.RUNNING)
    try:
        repo = batch.repository
        if not repo.baseline_at or not repo.coverage:
            jobs.run_baseline(repo.pk)
            repo.refresh_from_db()
        if repo.status != Repository.Status.READY:
            raise RuntimeError(f"repository {repo} is not ready: {repo.error}")
        if batch.method != Bug.Method.PROCEDURAL:
            raise NotImplementedError(f"injection method {batch.method!r} is not available yet")
        _run_procedural(batch, repo, validate_inline, progress)
    except Exception as exc:
        batch.mark(InjectionBatch.Status.FAILED, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        raise
    batch.mark(InjectionBatch.Status.DONE)
    return batch.status


def _run_procedural(batch: InjectionBatch, repo: Repository, validate_inline: bool, progress) -> None:
    spec = repo_spec(repo)
    validator = Validator(executor(), workspaces(), default_limits(repo))
    known = set(Bug.objects.filter(repository=repo, base_commit=repo.pinned_commit).values_list("patch_hash", flat=True))
    with workspaces().checkout(spec.mirror, spec.commit) as checkout:
        sources = procedural.read_sources(checkout, repo.coverage)
    candidates = procedural.plan(
        sources, repo.coverage, batch.requested, batch.seed,
        operators=batch.options.get("operators") or None, known_patch_hashes=known, hash_patch=Bug.hash_patch,
    )
    batch.planned = len(candidates)
    batch.save(update_fields=["planned"])
    for i, candidate in enumerate(candidates):
        procedural.derive_verifier(validator, spec, candidate)
        bug = _save_candidate(batch, repo, candidate)
        InjectionBatch.objects.filter(pk=batch.pk).update(produced=i + 1)
        if bug is not None and bug.status == Bug.Status.CANDIDATE:
            if validate_inline:
                try:
                    jobs.validate_bug(bug.pk)
                except Exception:  # recorded on the bug; the batch goes on
                    pass
            else:
                jobs.enqueue_validation(bug)
        if progress:
            progress(i + 1, len(candidates), bug)


def _save_candidate(batch, repo, candidate) -> Bug | None:
    m = candidate.mutation
    try:
        return Bug.objects.create(
            repository=repo,
            batch=batch,
            base_commit=repo.pinned_commit,
            method=Bug.Method.PROCEDURAL,
            operator=m.operator,
            injector="bugforge.mutators",
            target=candidate.target,
            seed=candidate.seed,
            patch=m.patch,
            verifier=candidate.verifier or "# no verifier: no covering test fails on this mutation\nraise SystemExit(1)\n",
            problem_statement=candidate.problem_statement,
            fail_to_pass=candidate.failing_tests,
            status=Bug.Status.INVALID if candidate.reject_reason else Bug.Status.CANDIDATE,
            invalid_reason=candidate.reject_reason,
            invalid_kind=candidate.reject_kind,
            generation_s=round(candidate.seconds, 3),
        )
    except IntegrityError:  # the same patch arrived from another batch meanwhile
        return None


def figures(repo: Repository | None = None) -> list[dict]:
    """Per repository and method: candidates, valid, invalid by reason, flaky, yield, cost and
    time per candidate — what `manage.py inject --report` prints and the repository page shows."""
    bugs = Bug.objects.exclude(method=Bug.Method.MANUAL)
    if repo is not None:
        bugs = bugs.filter(repository=repo)
    rows = []
    groups = bugs.values("repository__name", "method").annotate(n=Count("id"), gen=Avg("generation_s")).order_by(
        "repository__name", "method"
    )
    for g in groups:
        these = bugs.filter(repository__name=g["repository__name"], method=g["method"])
        by_status = dict(these.values_list("status").annotate(c=Count("id")).order_by())
        valid = by_status.get("valid", 0) + by_status.get("approved", 0)
        reasons = {}
        for reason, c in these.filter(status="invalid").values_list("invalid_kind").annotate(c=Count("id")).order_by("-c"):
            reasons[reason or "other"] = c
        cost = LLMCall.objects.filter(batch__bugs__in=these).distinct().aggregate(s=Sum("cost_usd"))["s"] or 0
        settled = g["n"] - by_status.get("candidate", 0) - by_status.get("validating", 0)
        rows.append(
            {
                "repository": g["repository__name"],
                "method": g["method"],
                "candidates": g["n"],
                "valid": valid,
                "flaky": by_status.get("flaky", 0),
                "invalid": by_status.get("invalid", 0),
                "pending": g["n"] - settled,
                "invalid_by_reason": reasons,
                "yield": valid / settled if settled else None,
                "cost_per_valid_usd": float(cost) / valid if valid else None,
                "seconds_per_candidate": g["gen"],
                "by_operator": _by_operator(these),
            }
        )
    return rows


def _by_operator(bugs) -> dict[str, dict]:
    out = {}
    for op, status, c in bugs.values_list("operator", "status").annotate(c=Count("id")).order_by("operator"):
        row = out.setdefault(op or "-", {"candidates": 0, "valid": 0})
        row["candidates"] += c
        if status in ("valid", "approved"):
            row["valid"] += c
    return out
