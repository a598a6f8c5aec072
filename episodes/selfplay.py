"""Self-play (the `inject` queue): rounds of plant → attempt → shift generation toward a target
solve-rate band. The Django shell around ``engine.selfplay``: each round the controller allocates
draws (arm = method:operator × size), this module plants them with ``injection.start_batch``
(inline validation), lets the solver attempt every valid one, records each reward as a
SolveAttempt (source "selfplay"), and stores the round report and the updated policy on the row.

Solvers: ``teacher:<name>`` runs the teacher through ``solving.launch`` (its episodes are the
attempts); ``scripted:<name>`` draws rewards from a known skill table registered in
:data:`SCRIPTED_SOLVERS` — empty in production, filled only by tests and simulations.
``checkpoint:<path>`` is not wired yet (it needs the local model server on the `train` queue).
"""
from __future__ import annotations

import random
import traceback

from django.db import transaction
from django.utils import timezone

from bugforge_web.queues import enqueue

from . import difficulty, injection
from .engine.selfplay import Config, Controller, Draw, Outcome, Policy, ScriptedSolver, default_arms, parse_arm, run
from .models import Bug, InjectionBatch, Repository, SelfPlay, SolveAttempt

SCRIPTED_SOLVERS: dict[str, ScriptedSolver] = {}  # test-only: name -> known skill per arm
DEFAULT_SIZES = (1, 2)
VALID = (Bug.Status.VALID, Bug.Status.APPROVED)


class SelfPlayError(ValueError):
    """A self-play that cannot start, with the reason staff will read."""


def solver_problem(solver: str) -> str:
    kind, _, name = solver.partition(":")
    if kind == "teacher":
        from . import solving
        from .models import Teacher

        teacher = Teacher.objects.filter(name=name).first()
        return f"no teacher named {name!r}" if teacher is None else solving.teacher_problem(teacher)
    if kind == "scripted":
        return "" if name in SCRIPTED_SOLVERS else f"no scripted solver named {name!r} (test-only)"
    if kind == "checkpoint":
        return "checkpoint solvers are not available for self-play yet; use teacher:<name>"
    return f'solver must be "teacher:<name>" or "checkpoint:<path>", not {solver!r}'


def start(repo: Repository, solver: str, *, band=(0.2, 0.8), rounds: int = 4, bugs_per_round: int = 8,
          attempts_per_bug: int = 4, seed: int | None = None, operators=None, sizes=DEFAULT_SIZES,
          user=None, sync: bool = False) -> SelfPlay:
    problem = solver_problem(solver)
    if problem:
        raise SelfPlayError(problem)
    Config(band=tuple(band), bugs_per_round=bugs_per_round, attempts_per_bug=attempts_per_bug, sizes=tuple(sizes))
    if not 1 <= rounds <= 50:
        raise SelfPlayError("rounds must be between 1 and 50")
    sp = SelfPlay.objects.create(
        repository=repo, solver=solver, band_low=band[0], band_high=band[1], rounds_planned=rounds,
        bugs_per_round=bugs_per_round, attempts_per_bug=attempts_per_bug,
        seed=random.randrange(2**31) if seed is None else seed, created_by=user,
        policy=Policy.uniform(default_arms(operators), tuple(sizes)).to_json())
    if sync:
        try:
            run_selfplay(sp.pk)
        except Exception:  # stored on the row (status failed, the error)
            pass
        sp.refresh_from_db()
    else:
        sp.job_id = enqueue("inject", run_selfplay, sp.pk, job_timeout=6 * 3600)
        sp.save(update_fields=["job_id"])
    return sp


def cancel(sp: SelfPlay) -> bool:
    """Stop after the round in progress."""
    return bool(SelfPlay.objects.filter(pk=sp.pk, status__in=[SelfPlay.Status.QUEUED, SelfPlay.Status.RUNNING])
                .update(status=SelfPlay.Status.CANCELLED, finished_at=timezone.now()))


def run_selfplay(selfplay_id: int) -> str:
    sp = SelfPlay.objects.select_related("repository").get(pk=selfplay_id)
    if sp.status not in (SelfPlay.Status.QUEUED, SelfPlay.Status.RUNNING):
        return sp.status
    SelfPlay.objects.filter(pk=sp.pk).update(status=SelfPlay.Status.RUNNING, error="")
    policy = Policy.from_json(sp.policy)
    sizes = tuple(sorted({Draw.from_key(k).size for k in policy.weights}))
    arms = sorted({Draw.from_key(k).arm for k in policy.weights})
    controller = Controller(arms, Config(band=(sp.band_low, sp.band_high), bugs_per_round=sp.bugs_per_round,
                                         attempts_per_bug=sp.attempts_per_bug, sizes=sizes, seed=sp.seed), policy)
    done = len(sp.rounds or [])

    def on_round(report):
        sp.rounds = [*(sp.rounds or []), report.to_json()]
        sp.policy = report.policy
        SelfPlay.objects.filter(pk=sp.pk).update(rounds=sp.rounds, policy=sp.policy)

    try:
        for r in range(done + 1, sp.rounds_planned + 1):
            if SelfPlay.objects.filter(pk=sp.pk, status=SelfPlay.Status.CANCELLED).exists():
                return SelfPlay.Status.CANCELLED
            run(controller, 1, lambda rnd, draws: play_round(sp, rnd, draws), start=r, on_round=on_round)
    except Exception as exc:
        SelfPlay.objects.filter(pk=sp.pk).update(status=SelfPlay.Status.FAILED, finished_at=timezone.now(),
                                                 error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"[:20000])
        raise
    SelfPlay.objects.filter(pk=sp.pk, status=SelfPlay.Status.RUNNING).update(
        status=SelfPlay.Status.DONE, finished_at=timezone.now())
    return SelfPlay.Status.DONE


def play_round(sp: SelfPlay, round_number: int, draws: list[Draw]) -> list[Outcome]:
    """Plant the round's draws (one injection batch per arm), attempt the valid bugs, record."""
    outcomes: dict[int, Outcome] = {}
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(draws):
        groups.setdefault(d.key, []).append(i)
    for key, indexes in sorted(groups.items()):
        draw = Draw.from_key(key)
        bugs = _plant(sp, round_number, draw, len(indexes))
        for i, bug in zip(indexes, bugs + [None] * len(indexes)):
            outcomes[i] = Outcome(draws[i], None if bug is None else bug.pk,
                                  valid=bug is not None and bug.status in VALID)
    valid = {o.bug: o for o in outcomes.values() if o.valid}
    if valid:
        for bug_id, rewards in _attempt(sp, round_number, valid).items():
            o = valid[bug_id]
            o.attempts, o.successes = len(rewards), sum(1 for x in rewards if x > 0.5)
        difficulty.refresh(list(valid))
    return [outcomes[i] for i in range(len(draws))]


def _plant(sp: SelfPlay, round_number: int, draw: Draw, count: int) -> list[Bug]:
    method, operator = parse_arm(draw.arm)
    seed = random.Random(f"{sp.seed}:{round_number}:{draw.key}").randrange(2**31)
    if draw.size == 1:
        batch = injection.start_batch(sp.repository, method, count, seed=seed, sync=True,
                                      operators=[operator] if operator else None)
    else:  # combined bugs: merged from valid bugs of one module (the operator is not enforced)
        try:
            batch = injection.start_batch(sp.repository, Bug.Method.COMBINE, count, seed=seed, sync=True,
                                          size=draw.size)
        except RuntimeError:  # too few valid bugs to combine yet: these draws plant nothing
            return []
    bugs = list(Bug.objects.filter(batch=batch).order_by("id"))
    with transaction.atomic():
        for bug in bugs:
            bug.provenance = {**(bug.provenance or {}), "selfplay": sp.pk, "round": round_number, "arm": draw.key}
            Bug.objects.filter(pk=bug.pk).update(provenance=bug.provenance)
    if batch.status == InjectionBatch.Status.FAILED and not bugs:
        return []
    return bugs


def _key(sp, round_number, bug_id, attempt) -> str:
    return f"selfplay:{sp.pk}:{round_number}:{bug_id}:{attempt}"


def _attempt(sp: SelfPlay, round_number: int, valid: dict[int, Outcome]) -> dict[int, list[float]]:
    """Each valid bug attempted ``attempts_per_bug`` times by the solver; returns the rewards."""
    kind, _, name = sp.solver.partition(":")
    rewards: dict[int, list[float]] = {b: [] for b in valid}
    if kind == "scripted":
        solver = SCRIPTED_SOLVERS[name]
        for bug_id, o in valid.items():
            p = solver.p_solve(o.draw)
            for a in range(1, sp.attempts_per_bug + 1):
                rng = random.Random(f"{sp.seed}:{round_number}:{bug_id}:{a}")
                reward = 1.0 if rng.random() < p else 0.0
                difficulty.record(bug_id, sp.solver, SolveAttempt.Source.SELFPLAY, _key(sp, round_number, bug_id, a),
                                  reward, refresh_bug=False)
                rewards[bug_id].append(reward)
        return rewards
    if kind == "teacher":
        from . import solving
        from .models import Teacher

        teacher = Teacher.objects.get(name=name)
        bugs = Bug.objects.filter(pk__in=list(valid)).order_by("id")
        batch = solving.launch(teacher, bugs, k=sp.attempts_per_bug, sync=True,
                               selection={"selfplay": sp.pk, "round": round_number})
        for ep in batch.episodes.filter(status__in=solving.GRADED).exclude(reward=None):
            key = _key(sp, round_number, ep.bug_id, ep.attempt)
            # the episode was recorded as "episode:<pk>": re-label that row so the attempt counts once
            moved = SolveAttempt.objects.filter(key=f"episode:{ep.pk}").update(source=SolveAttempt.Source.SELFPLAY, key=key)
            if not moved:
                difficulty.record(ep.bug_id, sp.solver, SolveAttempt.Source.SELFPLAY, key, ep.reward, refresh_bug=False)
            rewards[ep.bug_id].append(ep.reward)
        return rewards
    raise RuntimeError(solver_problem(sp.solver) or f"solver {sp.solver!r} cannot attempt bugs")


def chart(sp: SelfPlay) -> dict:
    """Per-round figures for the page: hit rate, planted, valid, in band."""
    rows = sp.rounds or []
    return {"x": [r["round"] for r in rows], "hit_rate": [r.get("hit_rate") for r in rows],
            "band": [sp.band_low, sp.band_high]}
