"""Injection batches (the `inject` queue): plan candidates with the engine, turn each into a
Bug row, validate it inline or on the `verify` queue. Failures land on the batch row."""
from __future__ import annotations

import random
import time
import traceback

from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum

from bugforge_web.queues import enqueue

from episodes.validation import jobs
from episodes.engine.inject import procedural
from episodes.models import Bug, InjectionBatch, LLMCall, LLMEndpoint, Repository
from episodes import sandboxes
from episodes.sandboxes import repo_spec, workspaces


METHODS = [Bug.Method.PROCEDURAL, Bug.Method.LLM_MODIFY, Bug.Method.LLM_REWRITE, Bug.Method.LLM_REMOVE, Bug.Method.COMBINE,
           Bug.Method.HISTORY]
LLM_METHODS = (Bug.Method.LLM_MODIFY, Bug.Method.LLM_REWRITE, Bug.Method.LLM_REMOVE)


def start_batch(repo: Repository, method: str, count: int, *, seed: int | None = None, user=None,
                operators: list[str] | None = None, endpoint=None, targets: list[str] | None = None,
                size: int = 2, sync: bool = False, progress=None, statement_style: str = "",
                statement_endpoint=None, min_realism: float | None = None,
                max_per_function: int | None = None) -> InjectionBatch:
    batch = InjectionBatch.objects.create(
        repository=repo, method=method, requested=count, created_by=user,
        seed=random.randrange(2**31) if seed is None else seed,
        options={"operators": operators or [], "endpoint": endpoint.pk if endpoint else None, "targets": targets or [],
                 "size": size, "statement_style": statement_style or "",
                 "statement_endpoint": statement_endpoint.pk if statement_endpoint else None,
                 "min_realism": procedural.MIN_REALISM if min_realism is None else min_realism,
                 "max_per_function": procedural.MAX_PER_FUNCTION if max_per_function is None else max_per_function},
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
    started, batch.validation_s = time.monotonic(), 0.0  # inline validation is counted on each bug

    def generation_s() -> float:
        return round(time.monotonic() - started - batch.validation_s, 3)

    try:
        repo = batch.repository
        if not repo.baseline_at or not repo.coverage:
            jobs.run_baseline(repo.pk)
            repo.refresh_from_db()
        if repo.status != Repository.Status.READY:
            raise RuntimeError(f"repository {repo} is not ready: {repo.error}")
        if batch.method == Bug.Method.PROCEDURAL:
            _run_procedural(batch, repo, validate_inline, progress)
        elif batch.method in LLM_METHODS:
            _run_llm(batch, repo, validate_inline, progress)
        elif batch.method == Bug.Method.COMBINE:
            _run_combine(batch, repo, validate_inline, progress)
        elif batch.method == Bug.Method.HISTORY:
            _run_history(batch, repo, validate_inline, progress)
        else:
            raise NotImplementedError(f"injection method {batch.method!r} is not available yet")
    except Exception as exc:
        InjectionBatch.objects.filter(pk=batch.pk).update(generation_s=generation_s())
        batch.mark(InjectionBatch.Status.FAILED, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        raise
    InjectionBatch.objects.filter(pk=batch.pk).update(generation_s=generation_s())
    batch.mark(InjectionBatch.Status.DONE)
    return batch.status


def _run_procedural(batch: InjectionBatch, repo: Repository, validate_inline: bool, progress) -> None:
    spec = repo_spec(repo)
    validator = sandboxes.validator(repo)
    known = set(Bug.objects.filter(repository=repo, base_commit=repo.pinned_commit).values_list("patch_hash", flat=True))
    with workspaces().checkout(spec.mirror, spec.commit) as checkout:
        sources = procedural.read_sources(checkout, repo.coverage)
    stats: dict = {}
    operators = batch.options.get("operators") or None
    candidates = procedural.plan(sources, repo.coverage, batch.requested, batch.seed, operators=operators,
                                 known_patch_hashes=known, hash_patch=Bug.hash_patch, stats=stats,
                                 min_realism=batch.options.get("min_realism", procedural.MIN_REALISM),
                                 max_per_function=batch.options.get("max_per_function", procedural.MAX_PER_FUNCTION))
    _planned(batch, len(candidates), procedural.shortfall(stats, batch.requested, len(candidates), operators))
    for i, candidate in enumerate(candidates):
        procedural.derive_verifier(validator, spec, candidate)
        bug = _save_candidate(batch, repo, candidate)
        _hand_on(batch, bug, i + 1, len(candidates), validate_inline, progress)


def _planned(batch: InjectionBatch, planned: int, note: str = "") -> None:
    """How many candidates the batch will try, and why fewer than asked (shown on the batch)."""
    batch.planned, batch.note = planned, note
    batch.save(update_fields=["planned", "note"])


def _hand_on(batch, bug, done, total, validate_inline, progress) -> None:
    """Count the candidate on the batch and send it to validation."""
    InjectionBatch.objects.filter(pk=batch.pk).update(produced=done)
    if bug is not None and bug.status == Bug.Status.CANDIDATE:
        if validate_inline:
            started = time.monotonic()
            try:
                jobs.validate_bug(bug.pk)
            except Exception:  # recorded on the bug; the batch goes on
                pass
            batch.validation_s += time.monotonic() - started
            if batch.options.get("statement_style"):  # an LLM writes the valid bug's statement
                from episodes.injection import statements
                statements.after_validation(bug.pk, batch.pk)
        else:
            job_id = jobs.enqueue_validation(bug)
            if batch.options.get("statement_style"):
                from episodes.injection import statements
                statements.enqueue_after_validation(bug, batch, job_id)
    if progress:
        progress(done, total, bug)


def _run_llm(batch: InjectionBatch, repo: Repository, validate_inline: bool, progress) -> None:
    """Ask the batch's endpoint for a bug in each chosen function (modify or rewrite mode);
    every call is stored as an LLMCall; a reply that cannot be used costs a retry, and a
    candidate whose retries all fail is counted on the batch with its reasons."""
    from episodes.engine.inject import InjectionRequest, inject
    from episodes.engine.llm import LLMClient

    endpoint = LLMEndpoint.objects.get(pk=batch.options["endpoint"])
    spec = repo_spec(repo)
    validator = sandboxes.validator(repo)
    with workspaces().checkout(spec.mirror, spec.commit) as checkout:
        sources = procedural.read_sources(checkout, repo.coverage)
        test_files = {t.split("::")[0] for t in repo.coverage.get("tests", [])}
        test_sources = {p: (checkout / p).read_text() for p in test_files if (checkout / p).is_file()}
    targets = procedural.covered_targets(sources, repo.coverage)
    wanted = set(batch.options.get("targets") or ())
    if wanted:
        targets = [t for t in targets if f"{t.path}::{t.qualname}" in wanted]
    if not targets:
        raise RuntimeError(
            f"no function to inject into: {'none of the asked targets is' if wanted else 'no function is'} executed by a "
            f"passing test and above the complexity floor ({procedural.MIN_COMPLEXITY} branches) in the "
            f"{len(sources)} covered file(s)")
    rng = random.Random(batch.seed)
    chosen = [rng.choice(targets) for _ in range(batch.requested)]
    _planned(batch, len(chosen))
    mode = {Bug.Method.LLM_MODIFY: "modify", Bug.Method.LLM_REWRITE: "rewrite"}.get(batch.method, "remove")
    failures = []
    record = LLMCall.recorder(endpoint, batch)

    client = LLMClient(endpoint.engine_config())
    for i, target in enumerate(chosen):
        started = time.perf_counter()
        covering = target.covering_tests
        request = InjectionRequest.for_function(
            "rewrite" if mode == "remove" else mode, target.path, target.qualname, sources[target.path], covering_tests=covering,
            test_sources={p: s for p, s in test_sources.items() if any(t.startswith(p + "::") for t in covering)},
            seed=rng.randrange(2**31),
        )
        if mode == "remove":
            from episodes.engine.inject import feature_removal
            outcome = feature_removal.remove(client, request, retries=2, on_call=record)
        else:
            outcome = inject(client, request, retries=2, on_call=record)
        bug = None
        if not outcome.ok:
            failures.append({"target": f"{target.path}::{target.qualname}", "reasons": outcome.failures})
        else:
            problem = outcome.problem_statement or _statement_from_tests(validator, spec, outcome.patch, target)
            try:
                with transaction.atomic():
                    bug = Bug.objects.create(
                        repository=repo, batch=batch, base_commit=repo.pinned_commit, method=batch.method,
                        operator=mode, injector=endpoint.model, target=f"{target.path}::{target.qualname}",
                        seed=request.seed, patch=outcome.patch, verifier=outcome.verifier, problem_statement=problem,
                        statement_source=Bug.StatementSource.LLM if outcome.problem_statement else Bug.StatementSource.TEMPLATE,
                        generation_s=round(time.perf_counter() - started, 3),
                    )
            except IntegrityError:
                failures.append({"target": f"{target.path}::{target.qualname}", "reasons": ["duplicate patch"]})
        InjectionBatch.objects.filter(pk=batch.pk).update(options={**batch.options, "failures": failures})
        _hand_on(batch, bug, i + 1, len(chosen), validate_inline, progress)


def _run_combine(batch: InjectionBatch, repo: Repository, validate_inline: bool, progress) -> None:
    """Merge 2–3 valid bugs of one module into harder ones, validated again."""
    from episodes.engine.inject import combine
    from episodes.engine.git.workspace import PatchError

    size = int(batch.options.get("size") or 2)
    if not 2 <= size <= 3:
        raise ValueError("combine merges 2 or 3 bugs")
    valid = Bug.objects.filter(
        repository=repo, base_commit=repo.pinned_commit, status__in=[Bug.Status.VALID, Bug.Status.APPROVED]
    ).exclude(method=Bug.Method.COMBINE)
    rows = list(valid.exclude(target="").only("id", "target", "patch", "verifier", "problem_statement", "operator"))
    components = [combine.Component(b.pk, b.target, b.patch, b.verifier, b.problem_statement) for b in rows]
    operator_of = {b.pk: b.operator for b in rows}
    wanted = set(batch.options.get("operators") or [])  # prefer bugs of these operators, where there are enough
    if wanted:
        chosen, whole = combine.preferring(components, size, batch.requested, batch.seed,
                                           {pk for pk, op in operator_of.items() if op in wanted})
    else:
        chosen = combine.groups(components, size, batch.requested, batch.seed)
        whole = len(chosen)
    if not chosen:
        raise RuntimeError(f"no module has {size} valid bugs in different functions to combine "
                           f"({len(components)} valid bug(s) at this pin)")
    notes = [] if len(chosen) >= batch.requested else [
        f"{len(chosen)} of {batch.requested}: only so many groups of {size} valid bugs of one module"]
    if whole < len(chosen):
        notes.append(f"{len(chosen) - whole} of {len(chosen)} mix in other operators than {', '.join(sorted(wanted))}: "
                     f"too few valid bugs of {'them' if len(wanted) > 1 else 'it'} in different functions of one module")
    _planned(batch, len(chosen), "; ".join(notes))
    spec = repo_spec(repo)
    failures = []
    for i, group in enumerate(chosen):
        started, bug = time.perf_counter(), None
        try:
            patch = combine.merged_patch(workspaces(), spec.mirror, spec.commit, group)
            with transaction.atomic():
                bug = Bug.objects.create(
                    repository=repo, batch=batch, base_commit=repo.pinned_commit, method=Bug.Method.COMBINE,
                    operator=f"combine{size}", injector="bugforge.combine", target=group[0].module,
                    seed=batch.seed, patch=patch, verifier=combine.merged_verifier(group),
                    problem_statement=combine.merged_statement(group), generation_s=round(time.perf_counter() - started, 3),
                    provenance={"components": [c.bug_id for c in group],
                                "component_operators": [operator_of[c.bug_id] for c in group]},
                )
        except (PatchError, IntegrityError) as exc:
            failures.append({"bugs": [c.bug_id for c in group], "reasons": [str(exc)[:500]]})
        InjectionBatch.objects.filter(pk=batch.pk).update(options={**batch.options, "failures": failures})
        _hand_on(batch, bug, i + 1, len(chosen), validate_inline, progress)


def _run_history(batch: InjectionBatch, repo: Repository, validate_inline: bool, progress) -> None:
    """Revert the source half of past commits that changed source and tests."""
    from episodes.engine.inject import history

    spec = repo_spec(repo)
    validator = sandboxes.validator(repo)
    known = set(Bug.objects.filter(repository=repo, base_commit=repo.pinned_commit).values_list("patch_hash", flat=True))
    commits = history.find(spec.mirror, spec.commit, limit=batch.requested * 3)
    found = [c for c in commits if Bug.hash_patch(c.patch) not in known][: batch.requested]
    _planned(batch, len(found), "" if len(found) >= batch.requested else
             f"{len(found)} of {batch.requested}: the history has {len(commits)} commit(s) changing both source and "
             f"tests, {len(commits) - len(found)} of them already planted")
    for i, candidate in enumerate(found):
        started = time.perf_counter()
        history.derive_verifier(validator, spec, candidate)
        bug = None
        try:
            with transaction.atomic():
                bug = Bug.objects.create(
                    repository=repo, batch=batch, base_commit=repo.pinned_commit, method=Bug.Method.HISTORY,
                    operator="revert_fix", injector=f"commit {candidate.commit[:12]}: {candidate.subject}"[:200],
                    target=candidate.source_files[0], patch=candidate.patch,
                    verifier=candidate.verifier or "raise SystemExit(1)\n",
                    problem_statement=candidate.problem_statement, fail_to_pass=candidate.failing_tests,
                    status=Bug.Status.INVALID if candidate.reject_reason else Bug.Status.CANDIDATE,
                    invalid_reason=candidate.reject_reason,
                    invalid_kind="history_unusable" if candidate.reject_reason else "",
                    generation_s=round(time.perf_counter() - started, 3),
                )
        except IntegrityError:
            pass
        _hand_on(batch, bug, i + 1, len(found), validate_inline, progress)


def _statement_from_tests(validator, spec, patch: str, target) -> str:
    """A rewrite's problem statement: the template built from the covering tests' failures."""
    from episodes.engine.inject import problem_statement_from_failure

    with workspaces().checkout(spec.mirror, spec.commit, patch=patch) as path:
        record = validator.run_suite(spec, path, "buggy", "injection", tests=target.covering_tests)
    return problem_statement_from_failure(record.log_excerpt, target.qualname, target.path)


def _save_candidate(batch, repo, candidate) -> Bug | None:
    m = candidate.mutation
    try:
        with transaction.atomic():  # a savepoint: a duplicate must not spoil the caller's transaction
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
                statement_source=Bug.StatementSource.TEMPLATE if candidate.problem_statement else "",
                fail_to_pass=candidate.failing_tests,
                status=Bug.Status.INVALID if candidate.reject_reason else Bug.Status.CANDIDATE,
                invalid_reason=candidate.reject_reason,
                invalid_kind=candidate.reject_kind,
                generation_s=round(candidate.seconds, 3),
                realism=getattr(candidate, "realism", None),
                realism_notes=getattr(candidate, "realism_notes", []),
            )
    except IntegrityError:  # the same patch arrived from another batch meanwhile
        return None


def figures(repo: Repository | None = None) -> list[dict]:
    """Per repository and method (every batch of it, failed ones too): the figures of
    ``group_figures`` — what `manage.py inject --report` prints and the repository page shows."""
    batches = InjectionBatch.objects.all()
    if repo is not None:
        batches = batches.filter(repository=repo)
    rows = []
    for name, method in batches.values_list("repository__name", "method").distinct().order_by("repository__name", "method"):
        these = batches.filter(repository__name=name, method=method)
        rows.append({"repository": name, "method": method,
                     **group_figures(Bug.objects.filter(batch__in=these), these)})
    return rows


def batch_figures(batch: InjectionBatch) -> dict:
    """One batch's own figures (what `inject --sync` prints when it is done)."""
    these = InjectionBatch.objects.filter(pk=batch.pk)
    return {"repository": batch.repository.name, "method": batch.method, **group_figures(batch.bugs.all(), these)}


def group_figures(bugs, batches) -> dict:
    """Honest yield and cost over some batches and the bugs they made.

    attempts: candidates the batches tried to make (an LLM reply that never became a bug, a
    duplicate, a mutant no test notices: each counts); yield = valid bugs per attempt (bugs a
    curator rejected are not valid); cost: every LLM call of the batches, failed ones included;
    seconds: generation (failed attempts included) plus validation, per candidate and per valid bug."""
    by_status = dict(bugs.values_list("status").annotate(c=Count("id")).order_by())
    candidates = sum(by_status.values())
    valid = by_status.get("valid", 0) + by_status.get("approved", 0)
    approved = by_status.get("approved", 0)
    reasons = {reason or "other": c for reason, c in
               bugs.filter(status="invalid").values_list("invalid_kind").annotate(c=Count("id")).order_by("-c")}
    calls = LLMCall.objects.filter(batch__in=batches)
    call_figures = calls.aggregate(n=Count("id"), cost=Sum("cost_usd"),
                                   failed=Count("id", filter=~Q(error="") | Q(status_code__gte=300) | Q(status_code__isnull=True)))
    cost = float(call_figures["cost"] or 0)
    totals = batches.aggregate(attempts=Sum("planned"), generation=Sum("generation_s"))
    attempts = max(totals["attempts"] or 0, candidates)
    seconds = float(totals["generation"] or 0) + float(bugs.aggregate(s=Sum("validation_s"))["s"] or 0)
    pending = by_status.get("candidate", 0) + by_status.get("validating", 0)
    return {
        "batches": batches.count(),
        "attempts": attempts,
        "llm_calls": call_figures["n"],
        "failed_llm_calls": call_figures["failed"],
        "candidates": candidates,
        "valid": valid,
        "approved": approved,
        "rejected": by_status.get("rejected", 0),
        "flaky": by_status.get("flaky", 0),
        "invalid": by_status.get("invalid", 0),
        "pending": pending,
        "invalid_by_reason": reasons,
        "yield": valid / attempts if attempts else None,
        "cost_usd": cost,
        "cost_per_valid_usd": cost / valid if valid else None,
        "cost_per_approved_usd": cost / approved if approved else None,
        "seconds_per_candidate": seconds / candidates if candidates else None,
        "seconds_per_valid": seconds / valid if valid else None,
        "by_operator": _by_operator(bugs),
    }


def _by_operator(bugs) -> dict[str, dict]:
    out = {}
    for op, status, c in bugs.values_list("operator", "status").annotate(c=Count("id")).order_by("operator"):
        row = out.setdefault(op or "-", {"candidates": 0, "valid": 0})
        row["candidates"] += c
        if status in ("valid", "approved"):
            row["valid"] += c
    return out
