"""Measured difficulty: every graded attempt at a bug becomes a SolveAttempt row, and the bug's
solve rate (with a 95% Clopper–Pearson interval) is recomputed from those rows alone.

Solvers are named ``"teacher:<name>"``, ``"checkpoint:<path or run>"``, ``"scripted:<name>"``…
so one bug can be read per solver and overall.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from episodes.engine.stats import clopper_pearson
from episodes.models import Bug, SolveAttempt


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


def selfplay_key(selfplay_id: int, round_number: int, bug_id: int, attempt: int) -> str:
    return f"selfplay:{selfplay_id}:{round_number}:{bug_id}:{attempt}"


def record_episode(episode_id: int) -> bool:
    """A graded teacher episode (its reward set, not an error) as a SolveAttempt: ``episode:<pk>``,
    or, for an episode of a self-play round's batch, that round's self-play attempt (recorded once)."""
    from episodes.models import Episode

    ep = Episode.objects.select_related("teacher", "solve_batch").filter(pk=episode_id).first()
    if ep is None or ep.reward is None or ep.exit_reason == Episode.ExitReason.ERROR:
        return False
    selection = (ep.solve_batch.selection or {}) if ep.solve_batch_id else {}
    if selection.get("selfplay"):
        key = selfplay_key(selection["selfplay"], selection.get("round", 0), ep.bug_id, ep.attempt)
        return record(ep.bug_id, f"teacher:{ep.teacher.name}", SolveAttempt.Source.SELFPLAY, key, ep.reward)
    return record(ep.bug_id, f"teacher:{ep.teacher.name}", SolveAttempt.Source.EPISODE, f"episode:{ep.pk}", ep.reward)


def evaluation_solver(ev) -> str:
    if ev.subject in ("teacher", "episodes"):
        return f"teacher:{ev.teacher.name if ev.teacher_id else '?'}"
    return f"checkpoint:{ev.model_path or (f'run-{ev.run_id}' if ev.run_id else ev.name)}"


def record_evaluation(ev) -> int:
    """Each attempt of a finished evaluation as a SolveAttempt (an ``episodes`` evaluation
    re-counts existing episodes, which are recorded as episodes already). Returns how many were new."""
    if ev.subject == "episodes":
        return 0
    solver, new, bugs = evaluation_solver(ev), 0, set()
    for a in ev.attempts or []:
        if a.get("reward") is None or a.get("bug_id") is None:
            continue
        new += record(int(a["bug_id"]), solver, SolveAttempt.Source.EVALUATION,
                      f"evaluation:{ev.pk}:{a['bug_id']}:{a.get('attempt', 0)}", a["reward"], refresh_bug=False)
        bugs.add(int(a["bug_id"]))
    refresh(bugs)
    return new


def ingest_rollouts(run_id: int, path) -> int:
    """GRPO rollouts ({bug_id, reward} JSON lines written by the reward function) as SolveAttempts."""
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        return 0
    known = set(Bug.objects.values_list("pk", flat=True))
    new, bugs = 0, set()
    with p.open() as fh:
        for number, line in enumerate(fh, 1):
            try:
                row = json.loads(line)
                bug_id, reward = int(row["bug_id"]), float(row["reward"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short while being written
            if bug_id not in known:
                continue
            new += record(bug_id, f"checkpoint:run-{run_id}", SolveAttempt.Source.GRPO, f"grpo:{run_id}:{number}",
                          reward, refresh_bug=False)
            bugs.add(bug_id)
    refresh(bugs)
    return new


def backfill() -> int:
    """Record the graded episodes and finished evaluations made before recording began (idempotent)."""
    from training.models import Evaluation

    from episodes.models import Episode

    new = 0
    graded = Episode.objects.filter(reward__isnull=False).exclude(exit_reason=Episode.ExitReason.ERROR)
    for pk in graded.exclude(pk__in=_recorded("episode:")).values_list("pk", flat=True).iterator():
        new += record_episode(pk)
    for ev in Evaluation.objects.filter(status=Evaluation.Status.SUCCEEDED).select_related("teacher", "run"):
        new += record_evaluation(ev)
    return new


def _recorded(prefix: str):
    from django.db.models import IntegerField
    from django.db.models.functions import Cast, Substr

    return (SolveAttempt.objects.filter(key__startswith=prefix)
            .annotate(_pk=Cast(Substr("key", len(prefix) + 1), IntegerField())).values("_pk"))


def fmt(e: Estimate) -> str:
    """An estimate as the pages print it: ``3/8 = 38% (95% CI 9–76%)``, or ``unmeasured``."""
    if not e.attempts:
        return "unmeasured"
    return f"{e.successes}/{e.attempts} = {e.rate:.0%} (95% CI {e.low * 100:.0f}–{e.high * 100:.0f}%)"


def band_select(bug_ids, solver: str, band: tuple[float, float], min_attempts: int = 1):
    """Curriculum: keep the bugs whose estimated solve rate by ``solver`` lies in ``band``.
    Returns (kept ids, {bug id: reason dropped})."""
    low, high = band
    rates = solver_rates(solver, bug_ids)
    kept, dropped = [], {}
    for bug_id in bug_ids:
        e = rates.get(bug_id)
        if e is None or e.attempts < max(1, min_attempts):
            dropped[bug_id] = f"unmeasured by {solver} ({e.attempts if e else 0} attempts, need {max(1, min_attempts)})"
        elif e.successes == e.attempts:
            dropped[bug_id] = f"always solved {e.successes}/{e.attempts}"
        elif e.successes == 0:
            dropped[bug_id] = f"never solved 0/{e.attempts}"
        elif not (low <= e.rate <= high):
            dropped[bug_id] = f"outside band {low:.0%}–{high:.0%}: {e.successes}/{e.attempts} = {e.rate:.0%}"
        else:
            kept.append(bug_id)
    return kept, dropped
