"""Self-play (the `inject` queue): rounds of plant → attempt → shift generation toward a target
solve-rate band. The Django shell around ``engine.inject.selfplay``: each round the controller allocates
draws (arm = method:operator × size), this module plants them with ``injection.start_batch``
(inline validation), lets the solver attempt every valid one, records each reward as a
SolveAttempt (source "selfplay"), and stores the round report and the updated policy on the row.

Solvers: ``teacher:<name>`` runs the teacher through ``solving.launch`` (its episodes are the
attempts, each recorded once, as it is stored, under the round's self-play key);
``checkpoint:<path>`` (or ``checkpoint:run-<id>``, that run's final model) serves the saved model
with ``training.engine.serve`` in a child process and runs it as the built-in agent, graded like an
evaluation — such a self-play runs on the `train` queue (GPU hosts), the others on `inject`;
``scripted:<name>`` draws rewards from a known skill table registered in :data:`SCRIPTED_SOLVERS` —
empty in production, filled only by tests and simulations.
"""
from __future__ import annotations

import random
import traceback
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bugforge_web.queues import enqueue

from episodes.curation import difficulty

from episodes.injection import batches as injection
from episodes.engine.inject.selfplay import Config, Controller, Draw, Outcome, Policy, ScriptedSolver, default_arms, parse_arm, run
from episodes.models import Bug, InjectionBatch, Repository, SelfPlay, SolveAttempt

SCRIPTED_SOLVERS: dict[str, ScriptedSolver] = {}  # test-only: name -> known skill per arm
DEFAULT_SIZES = (1, 2)
VALID = (Bug.Status.VALID, Bug.Status.APPROVED)
# the checkpoint solver's agent and server (settings.BUGFORGE_SELFPLAY_CHECKPOINT overrides any of them)
CHECKPOINT_OPTIONS = {"max_steps": 10, "max_new_tokens": 256, "max_wall_s": 600, "temperature": 1.0}


class SelfPlayError(ValueError):
    """A self-play that cannot start, with the reason staff will read."""


def solver_problem(solver: str) -> str:
    kind, _, name = solver.partition(":")
    if kind == "teacher":
        from episodes.solving import episodes as solving
        from episodes.models import Teacher

        teacher = Teacher.objects.filter(name=name).first()
        return f"no teacher named {name!r}" if teacher is None else solving.teacher_problem(teacher)
    if kind == "scripted":
        return "" if name in SCRIPTED_SOLVERS else f"no scripted solver named {name!r} (test-only)"
    if kind == "checkpoint":
        path = checkpoint_path(name)
        if not path:
            return f"no saved model for {solver!r}: give checkpoint:<model directory> or checkpoint:run-<id>"
        if not (Path(path) / "config.json").is_file():
            return f"model not found: {path} holds no saved model"
        return ""
    return f'solver must be "teacher:<name>" or "checkpoint:<path>", not {solver!r}'


def checkpoint_path(name: str) -> str:
    """The model directory a ``checkpoint:`` solver names: a path, or ``run-<id>`` (its final model)."""
    if name.startswith("run-") and name[4:].isdigit():
        from training.models import TrainingRun

        run = TrainingRun.objects.filter(pk=int(name[4:])).first()
        return run.final_model if run else ""
    return name


def queue_for(solver: str) -> str:
    """A checkpoint is served next to the GPU: its self-play runs on `train`; the others on `inject`."""
    return "train" if solver.partition(":")[0] == "checkpoint" else "inject"


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
        sp.job_id = enqueue(queue_for(solver), run_selfplay, sp.pk, job_timeout=6 * 3600)
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

    logs: dict[int, list[str]] = {}  # round -> what its planting could not do as drawn

    def on_round(report):
        sp.rounds = [*(sp.rounds or []), {**report.to_json(), "log": logs.pop(report.round, [])}]
        sp.policy = report.policy
        SelfPlay.objects.filter(pk=sp.pk).update(rounds=sp.rounds, policy=sp.policy)

    try:
        for r in range(done + 1, sp.rounds_planned + 1):
            if SelfPlay.objects.filter(pk=sp.pk, status=SelfPlay.Status.CANCELLED).exists():
                return SelfPlay.Status.CANCELLED
            run(controller, 1, lambda rnd, draws: play_round(sp, rnd, draws, logs.setdefault(rnd, [])),
                start=r, on_round=on_round)
    except Exception as exc:
        SelfPlay.objects.filter(pk=sp.pk).update(status=SelfPlay.Status.FAILED, finished_at=timezone.now(),
                                                 error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"[:20000])
        raise
    SelfPlay.objects.filter(pk=sp.pk, status=SelfPlay.Status.RUNNING).update(
        status=SelfPlay.Status.DONE, finished_at=timezone.now())
    return SelfPlay.Status.DONE


def play_round(sp: SelfPlay, round_number: int, draws: list[Draw], log: list[str] | None = None) -> list[Outcome]:
    """Plant the round's draws (one injection batch per arm), attempt the valid bugs, record.
    What could not be planted as drawn is said in ``log`` (the round's log)."""
    log = [] if log is None else log
    outcomes: dict[int, Outcome] = {}
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(draws):
        groups.setdefault(d.key, []).append(i)
    for key, indexes in sorted(groups.items()):
        draw = Draw.from_key(key)
        bugs = _plant(sp, round_number, draw, len(indexes), log)
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


def _plant(sp: SelfPlay, round_number: int, draw: Draw, count: int, log: list[str]) -> list[Bug]:
    method, operator = parse_arm(draw.arm)
    seed = random.Random(f"{sp.seed}:{round_number}:{draw.key}").randrange(2**31)
    if draw.size == 1:
        batch = injection.start_batch(sp.repository, method, count, seed=seed, sync=True,
                                      operators=[operator] if operator else None)
    else:  # combined bugs: merged from valid bugs of one module, of the drawn operator where there are enough
        try:
            batch = injection.start_batch(sp.repository, Bug.Method.COMBINE, count, seed=seed, sync=True,
                                          size=draw.size, operators=[operator] if operator else None)
        except RuntimeError as exc:  # too few valid bugs to combine yet: these draws plant nothing
            log.append(f"{draw.key}: nothing planted: {exc}")
            return []
    bugs = list(Bug.objects.filter(batch=batch).order_by("id"))
    if draw.size > 1 and operator:
        mixed = [b.pk for b in bugs if set((b.provenance or {}).get("component_operators") or []) != {operator}]
        if mixed:
            log.append(f"{draw.key}: {len(mixed)} of {len(bugs)} combined bug(s) ({', '.join(map(str, mixed))}) mix in "
                       f"other operators: too few valid {operator} bugs in different functions of one module")
    if len(bugs) < count:
        log.append(f"{draw.key}: {len(bugs)} of {count} planted" + (f" ({batch.note})" if batch.note else ""))
    with transaction.atomic():
        for bug in bugs:
            bug.provenance = {**(bug.provenance or {}), "selfplay": sp.pk, "round": round_number, "arm": draw.key}
            Bug.objects.filter(pk=bug.pk).update(provenance=bug.provenance)
    if batch.status == InjectionBatch.Status.FAILED and not bugs:
        return []
    return bugs


def _key(sp, round_number, bug_id, attempt) -> str:
    return difficulty.selfplay_key(sp.pk, round_number, bug_id, attempt)


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
        from episodes.solving import episodes as solving
        from episodes.models import Teacher

        teacher = Teacher.objects.get(name=name)
        bugs = Bug.objects.filter(pk__in=list(valid)).order_by("id")
        batch = solving.launch(teacher, bugs, k=sp.attempts_per_bug, sync=True,
                               selection={"selfplay": sp.pk, "round": round_number})
        # each graded episode is recorded once, as it is stored: difficulty.record_episode reads the
        # batch's selection and files it under this round's self-play key (source "selfplay")
        for ep in batch.episodes.filter(status__in=solving.GRADED).exclude(reward=None):
            rewards[ep.bug_id].append(ep.reward)
        return rewards
    if kind == "checkpoint":
        problem = solver_problem(sp.solver)
        if problem:
            raise RuntimeError(problem)
        for a in _checkpoint_attempts(sp, round_number, checkpoint_path(name), list(valid)):
            if a.exit_reason == "error":  # the server or the sandbox failed: not a graded attempt
                continue
            difficulty.record(a.bug_id, sp.solver, SolveAttempt.Source.SELFPLAY, _key(sp, round_number, a.bug_id, a.attempt),
                              a.reward, refresh_bug=False)
            rewards[a.bug_id].append(a.reward)
        return rewards
    raise RuntimeError(solver_problem(sp.solver) or f"solver {sp.solver!r} cannot attempt bugs")


def _checkpoint_attempts(sp: SelfPlay, round_number: int, model_dir: str, bug_ids: list[int]):
    """The saved model served by ``training.engine.serve`` (a child process, for this round) as the
    built-in agent's endpoint: ``attempts_per_bug`` graded attempts at each bug."""
    from episodes.engine.solve.agent.loop import AgentLimits
    from training.datasets import rl_task
    from training.engine.eval_runner import LocalModelServer, evaluate
    from training.runs import sandbox_config

    options = {**CHECKPOINT_OPTIONS, **getattr(settings, "BUGFORGE_SELFPLAY_CHECKPOINT", {})}
    limits = AgentLimits(max_steps=int(options["max_steps"]), max_wall_s=float(options["max_wall_s"]))
    tasks = [rl_task(b) for b in Bug.objects.select_related("repository").filter(pk__in=bug_ids).order_by("id")]
    log_dir = Path(settings.VAR_DIR) / "selfplay"
    log_dir.mkdir(parents=True, exist_ok=True)
    with LocalModelServer(model_dir, int(options["max_new_tokens"]), cwd=settings.BASE_DIR,
                          log_path=log_dir / f"{sp.pk}-round{round_number}-server.log",
                          temperature=float(options["temperature"])) as endpoint:
        return evaluate(endpoint, tasks, sp.attempts_per_bug, sandbox_config(), limits)


def chart(sp: SelfPlay) -> dict:
    """Per-round figures for the page: hit rate, planted, valid, in band."""
    rows = sp.rounds or []
    return {"x": [r["round"] for r in rows], "hit_rate": [r.get("hit_rate") for r in rows],
            "band": [sp.band_low, sp.band_high]}
