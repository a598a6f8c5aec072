"""Measured difficulty: every graded attempt at a bug becomes a SolveAttempt row, and the bug's
solve rate (with a 95% Clopper–Pearson interval) is recomputed from those rows alone.

Solvers are named ``"teacher:<name>"``, ``"checkpoint:<path or run>"``, ``"scripted:<name>"``…
so one bug can be read per solver and overall.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from training.engine.evaluation import clopper_pearson

from .models import Bug, SolveAttempt


@dataclass(frozen=True)
class Estimate:
    attempts: int
    successes: int
    rate: float | None
    low: float | None
    high: float | None


def estimate(successes: int, attempts: int) -> Estimate:
    if not attempts:
        return Estimate(0, 0, None, None, None)
    low, high = clopper_pearson(successes, attempts)
    return Estimate(attempts, successes, successes / attempts, low, high)


def record(bug_id: int, solver: str, source: str, key: str, reward: float, *, refresh_bug: bool = True) -> bool:
    """Record one graded attempt (idempotent on ``key``); returns True when it was new."""
    _, created = SolveAttempt.objects.get_or_create(
        key=key[:200], defaults={"bug_id": bug_id, "solver": solver[:300], "source": source, "reward": float(reward)})
    if created and refresh_bug:
        refresh([bug_id])
    return created


def refresh(bug_ids) -> None:
    """Recompute the overall estimate on each bug from its SolveAttempt rows."""
    rows = (SolveAttempt.objects.filter(bug_id__in=list(bug_ids)).values("bug_id")
            .annotate(n=Count("id"), solved=Count("id", filter=Q(reward__gt=0.5))))
    seen = set()
    for row in rows:
        seen.add(row["bug_id"])
        e = estimate(row["solved"], row["n"])
        Bug.objects.filter(pk=row["bug_id"]).update(
            solve_attempts=e.attempts, solve_successes=e.successes, solve_rate=e.rate, solve_low=e.low, solve_high=e.high)
    missing = set(bug_ids) - seen
    if missing:
        Bug.objects.filter(pk__in=missing).update(
            solve_attempts=0, solve_successes=0, solve_rate=None, solve_low=None, solve_high=None)


def per_solver(bug_id: int) -> dict[str, Estimate]:
    rows = (SolveAttempt.objects.filter(bug_id=bug_id).values("solver")
            .annotate(n=Count("id"), solved=Count("id", filter=Q(reward__gt=0.5))).order_by("solver"))
    return {row["solver"]: estimate(row["solved"], row["n"]) for row in rows}


def solver_rates(solver: str, bug_ids=None) -> dict[int, Estimate]:
    """Each bug's estimate for one solver (the curriculum's input)."""
    qs = SolveAttempt.objects.filter(solver=solver)
    if bug_ids is not None:
        qs = qs.filter(bug_id__in=list(bug_ids))
    rows = qs.values("bug_id").annotate(n=Count("id"), solved=Count("id", filter=Q(reward__gt=0.5)))
    return {row["bug_id"]: estimate(row["solved"], row["n"]) for row in rows}
