"""Evaluations: a model as the built-in agent over a dataset's held-out bugs, and the
student-vs-teacher-vs-base comparison (the database side of training.engine.eval_runner).

Subjects: a trained checkpoint or a base model (served locally by ``training.engine.serve``
in a child process, on the `train` queue), a teacher's endpoint (on the `solve` queue; called
directly, not through the recording gateway, since these attempts are measurements, not
training data), or the teacher's existing episodes on those bugs (no new attempts).
"""
from __future__ import annotations

import traceback
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from bugforge_web.queues import enqueue
from training.engine import eval_maths as maths
from training.datasets import rl_task
from training.models import Evaluation

DEFAULT_OPTIONS = {"max_steps": 10, "max_new_tokens": 256, "max_wall_s": 600, "temperature": 1.0}


def heldout_bugs(dataset):
    from episodes.models import Bug

    return list(Bug.objects.select_related("repository").filter(pk__in=dataset.heldout_bug_ids).order_by("id"))


def validate(ev: Evaluation) -> None:
    if not ev.dataset_id:
        raise ValueError("choose the dataset whose held-out bugs are evaluated")
    if not ev.dataset.heldout_bug_ids:
        raise ValueError(f"dataset {ev.dataset.name} has no held-out bugs")
    if ev.k < 1:
        raise ValueError("k must be at least 1")
    if ev.subject in (Evaluation.Subject.CHECKPOINT, Evaluation.Subject.BASE):
        if not ev.model_path and ev.run_id:
            ev.model_path = ev.run.final_model if ev.subject == "checkpoint" else ev.run.base_model
        if not ev.model_path or not (Path(ev.model_path) / "config.json").is_file():
            raise ValueError(f"model not found: {ev.model_path or '(none)'} holds no saved model")
    elif ev.subject == Evaluation.Subject.TEACHER:
        if not ev.teacher_id or not ev.teacher.endpoint_id:
            raise ValueError("a teacher evaluation needs a teacher with an LLM endpoint")
    elif ev.subject == Evaluation.Subject.EPISODES:
        if not ev.teacher_id:
            raise ValueError("choose the teacher whose episodes are counted")
    else:
        raise ValueError(f"unknown subject {ev.subject!r}")


def start_evaluation(ev: Evaluation) -> None:
    """Validate (ValueError with a clear message) and enqueue the evaluation."""
    validate(ev)
    ev.status, ev.error, ev.progress = Evaluation.Status.QUEUED, "", {"done": 0, "total": len(ev.dataset.heldout_bug_ids) * ev.k}
    ev.save()
    queue = "train" if ev.subject in ("checkpoint", "base") else "solve"
    ev.job_id = enqueue(queue, run_evaluation, ev.pk, job_timeout=settings.RQ_QUEUES[queue]["DEFAULT_TIMEOUT"])
    ev.save(update_fields=["job_id"])


def _sandbox_config() -> dict:
    from training.runs import sandbox_config

    return sandbox_config()


def run_evaluation(evaluation_id: int) -> str:
    ev = Evaluation.objects.select_related("dataset", "teacher__endpoint", "run").get(pk=evaluation_id)
    Evaluation.objects.filter(pk=ev.pk).update(status=Evaluation.Status.RUNNING)
    try:
        bugs = heldout_bugs(ev.dataset)
        missing = sorted(set(ev.dataset.heldout_bug_ids) - {b.pk for b in bugs})
        if ev.subject == Evaluation.Subject.EPISODES:
            attempts = episode_attempts(ev.teacher, bugs)
        else:
            attempts = new_attempts(ev, bugs)
        ks = tuple(sorted({1, ev.k}))
        results = maths.report(attempts, ks=ks)
        if missing:
            results["missing_bugs"] = missing
        if ev.subject == Evaluation.Subject.EPISODES:
            attempted = {a["bug_id"] for a in attempts}
            results["unattempted_bugs"] = [b.pk for b in bugs if b.pk not in attempted]
        Evaluation.objects.filter(pk=ev.pk).update(
            status=Evaluation.Status.SUCCEEDED, attempts=attempts, results=results, finished_at=timezone.now(),
        )
        from episodes.curation.difficulty import record_evaluation

        ev.attempts = attempts
        record_evaluation(ev)
    except Exception as exc:
        Evaluation.objects.filter(pk=ev.pk).update(
            status=Evaluation.Status.FAILED, finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}",
        )
        raise
    return Evaluation.Status.SUCCEEDED


def episode_attempts(teacher, bugs) -> list[dict]:
    from episodes.models import Episode

    by_id = {b.pk: b for b in bugs}
    episodes = Episode.objects.filter(teacher=teacher, bug_id__in=list(by_id), reward__isnull=False).order_by("id")
    return [{"bug_id": e.bug_id, "repository": by_id[e.bug_id].repository.name,
             "difficulty": by_id[e.bug_id].difficulty or "", "attempt": e.attempt, "reward": float(e.reward),
             "episode_id": e.pk} for e in episodes]


def new_attempts(ev: Evaluation, bugs) -> list[dict]:
    from episodes.engine.solve.agent.loop import AgentLimits
    from training.engine.eval_runner import LocalModelServer, evaluate

    options = {**DEFAULT_OPTIONS, **(ev.options or {})}
    limits = AgentLimits(max_steps=int(options["max_steps"]), max_wall_s=float(options["max_wall_s"]))
    tasks = [rl_task(b) for b in bugs]
    done: list[dict] = []

    def on_attempt(attempt, n, total):
        done.append(attempt.to_dict())
        Evaluation.objects.filter(pk=ev.pk).update(progress={"done": n, "total": total}, attempts=done)

    if ev.subject == Evaluation.Subject.TEACHER:
        evaluate(ev.teacher.endpoint.engine_config(), tasks, ev.k, _sandbox_config(), limits, on_attempt)
    else:
        log_dir = Path(settings.VAR_DIR) / "training" / "evaluations"
        log_dir.mkdir(parents=True, exist_ok=True)
        with LocalModelServer(ev.model_path, int(options["max_new_tokens"]), cwd=settings.BASE_DIR,
                              log_path=log_dir / f"{ev.pk}-server.log",
                              temperature=float(options["temperature"])) as endpoint:
            evaluate(endpoint, tasks, ev.k, _sandbox_config(), limits, on_attempt)
    return done


def comparison(dataset) -> list[dict]:
    """One row per finished evaluation on ``dataset``'s held-out bugs, labelled student /
    base / teacher, with the figures the evaluation pages show (``maths.headline``: pass@1
    with its interval, pass@k)."""
    rows = []
    for ev in Evaluation.objects.filter(dataset=dataset, status=Evaluation.Status.SUCCEEDED).select_related(
            "teacher", "run").order_by("created_at"):
        role = {"checkpoint": "student", "base": "base", "teacher": "teacher", "episodes": "teacher"}[ev.subject]
        rows.append({"evaluation": ev, "role": role, "name": ev.name,
                     **maths.headline(ev.results.get("overall", {}), [ev.k])})
    order = {"student": 0, "teacher": 1, "base": 2}
    return sorted(rows, key=lambda r: (order[r["role"]], r["name"]))
