"""Solving: teachers attempt approved bugs, k times each; the verifier grades every attempt.

The Django shell around ``engine.solve.agent`` (the built-in agent), ``engine.solve.runners`` (Claude Code,
Codex) and ``engine.solve.reward``: load rows, run the engine, store what came out. One episode:

1. mark it running and issue its gateway token (only the hash is stored);
2. check out the buggy code (the bug's patch on the pinned commit) into a fresh workspace;
3. let the teacher work there, talking to its model only through the recording gateway with
   that token — the agent never sees the endpoint's key; every call becomes an ``LLMCall``
   (without the gateway module the built-in agent calls the endpoint directly and this module
   records its calls the same way);
4. grade the workspace (``engine.solve.reward.grade``) and store the filtered patch, the runs, the
   reward, the exit reason and the status (solved | unsolved | failed);
5. store the canonical trajectory, derived from the recorded calls.

A batch is one Episode per (bug, attempt), each its own job on the `solve` queue, so any number
of workers share it. A worker killed mid-episode leaves it `running`: ``Episode.objects.
sweep_stale()`` (``manage.py sweep``, and before each CLI launch) fails it with the reason.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import traceback
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from episodes.engine import passk
from episodes.engine.solve.agent.loop import run_agent
from episodes.engine.solve.agent.tools import Workbench
from episodes.engine.solve.reward import grade
from episodes.engine.solve.runners import run_external_agent
from episodes.engine.sandbox.base import Limits
from episodes.engine.llm.scrub import Scrubber
from episodes.engine.solve.task_format import TOOL_SCHEMAS, task_prompt
from episodes.solving.gateway.budget import is_infrastructure_failure
from episodes.engine.validate.validator import BugSpec
from episodes.solving.gateway.server import gateway_url, serve_in_background
from episodes.models import Bug, Episode, SolveBatch, Teacher
from episodes.sandboxes import default_limits, executor, repo_spec, workspaces

log = logging.getLogger(__name__)

BUILTIN_PROTOCOLS = ("openai_chat", "anthropic")
EXTERNAL_PROTOCOL = {Teacher.Harness.CLAUDE_CODE: "anthropic", Teacher.Harness.CODEX: "openai_responses"}
FINISHED = (Episode.Status.SOLVED, Episode.Status.UNSOLVED, Episode.Status.FAILED)
GRADED = (Episode.Status.SOLVED, Episode.Status.UNSOLVED)  # what solve rate and pass@k count
LIMIT_REASONS = (Episode.ExitReason.STEP_LIMIT, Episode.ExitReason.TOKEN_LIMIT, Episode.ExitReason.COST_LIMIT)
SESSION_LOG_MAX_CHARS = 5_000_000
HEARTBEAT_S = 30.0


class SolveError(RuntimeError):
    """A launch or an episode that cannot go ahead, with the reason staff will read."""


# --- what a teacher can run -----------------------------------------------------------------


def teacher_problem(teacher: Teacher) -> str:
    """Why this teacher cannot attempt bugs ("" when it can)."""
    if teacher.harness == Teacher.Harness.IMPORTED:
        return "an imported-logs teacher does not run; it only holds imported episodes"
    endpoint = teacher.endpoint
    if endpoint is None:
        return f"teacher {teacher.name} has no endpoint"
    if teacher.harness == Teacher.Harness.BUILTIN and endpoint.protocol not in BUILTIN_PROTOCOLS:
        return f"the built-in agent speaks OpenAI Chat Completions or Anthropic Messages, not {endpoint.get_protocol_display()}"
    want = EXTERNAL_PROTOCOL.get(teacher.harness)
    if want and endpoint.protocol != want:
        return f"{teacher.get_harness_display()} needs an endpoint speaking {want}, not {endpoint.protocol}"
    return ""


# --- launching ------------------------------------------------------------------------------


def select_bugs(ids=None, repository=None, approved_only: bool = True):
    """Bugs to attempt: the given ids, or a repository's, or all; approved ones unless told."""
    bugs = Bug.objects.select_related("repository").order_by("id")
    if ids:
        bugs = bugs.filter(pk__in=list(ids))
    if repository is not None:
        bugs = bugs.filter(repository=repository)
    if approved_only:
        bugs = bugs.filter(status=Bug.Status.APPROVED)
    return bugs


def launch(teacher: Teacher, bugs, k: int = 1, *, user=None, selection: dict | None = None,
           sync: bool = False, progress=None) -> SolveBatch:
    """One SolveBatch of ``k`` attempts at each bug: queued on `solve`, or run here (``sync``,
    ``progress(episode)`` after each)."""
    from episodes.solving import jobs as solve_jobs
    bugs = list(bugs)
    problem = teacher_problem(teacher)
    if problem:
        raise SolveError(problem)
    if not 1 <= k <= 100:
        raise SolveError("k (attempts per bug) must be between 1 and 100")
    if not bugs:
        raise SolveError("no bug to attempt: the selection is empty")
    unusable = [b.pk for b in bugs if not b.patch or not b.verifier]
    if unusable:
        raise SolveError(f"bug(s) {', '.join(map(str, unusable))} have no patch or verifier")
    with transaction.atomic():
        batch = SolveBatch.objects.create(
            teacher=teacher, attempts_per_bug=k, bug_count=len(bugs), created_by=user, selection=selection or {},
        )
        episodes = Episode.objects.bulk_create(
            Episode(bug=bug, teacher=teacher, solve_batch=batch, attempt=attempt)
            for bug in bugs for attempt in range(1, k + 1)
        )
        if not sync:
            for episode in episodes:
                solve_jobs.enqueue_episode(episode)
    if sync:
        for episode in episodes:
            try:
                run_episode(episode.pk)
            except Exception:  # stored on the episode; go on with the next
                log.exception("episode %s failed", episode.pk)
            if progress is not None:
                progress(Episode.objects.get(pk=episode.pk))
    return batch


def cancel(batch: SolveBatch) -> int:
    """Cancel the batch's episodes that have not started (their jobs then do nothing); running
    ones finish. Returns how many were cancelled."""
    return batch.episodes.filter(status=Episode.Status.QUEUED).update(
        status=Episode.Status.CANCELLED, finished_at=timezone.now(), error="cancelled before it started"
    )


# --- one episode ----------------------------------------------------------------------------


@dataclass
class Attempt:
    """What a harness run left behind, whichever harness it was. Its steps, tokens and cost are
    not here: the gateway's per-call records are the one source of those."""

    exit_reason: str
    error: str = ""
    messages: list[dict] = field(default_factory=list)  # the agent's own view (built-in only)
    events: list = field(default_factory=list)  # the CLI's JSON events (external only)
    stats: dict = field(default_factory=dict)
    session_log: str = ""  # the CLI's own log (external only)


def run_episode(episode_id: int) -> str:
    """Run one episode to the end; returns its status. Failures are stored on the row (status
    failed, the error) and re-raised, so RQ records them too."""
    episode = Episode.objects.select_related("bug__repository", "teacher__endpoint").get(pk=episode_id)
    now = timezone.now()
    started = Episode.objects.filter(pk=episode.pk, status__in=[Episode.Status.QUEUED, Episode.Status.RUNNING]).update(
        status=Episode.Status.RUNNING, started_at=now, heartbeat_at=now, error=""
    )
    if not started:  # cancelled or swept meanwhile: nothing to do
        return Episode.objects.values_list("status", flat=True).get(pk=episode.pk)
    episode.status = Episode.Status.RUNNING
    try:
        with _heartbeat(episode):
            return _run(episode)
    except Exception as exc:
        Episode.objects.filter(pk=episode.pk).update(
            status=Episode.Status.FAILED, exit_reason=Episode.ExitReason.ERROR,
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"[:20000], finished_at=timezone.now(),
        )
        raise


@contextlib.contextmanager
def _heartbeat(episode: Episode, every_s: float = HEARTBEAT_S):
    """Beat every ``every_s`` while the block runs: a CLI teacher or a long grading run gives
    no other sign of life, and the sweeper fails episodes that are silent too long."""
    stop = threading.Event()

    def beat():
        try:
            while not stop.wait(every_s):
                episode.beat()
        finally:
            connection.close()  # this thread's own database connection

    thread = threading.Thread(target=beat, name=f"episode-{episode.pk}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _run(episode: Episode) -> str:
    bug, teacher = episode.bug, episode.teacher
    problem = teacher_problem(teacher)
    if problem:
        raise SolveError(problem)
    repo = bug.repository
    spec = repo_spec(repo)
    token = episode.issue_gateway_token()
    task = task_prompt(bug.problem_statement, harness=teacher.harness)
    with workspaces().task_checkout(spec.mirror, spec.commit, patch=bug.patch) as workspace:
        if teacher.harness == Teacher.Harness.BUILTIN:
            attempt = _run_builtin(episode, workspace, spec.environment, task, token)
        else:
            attempt = _run_external(episode, workspace, spec.environment, task, token)
        result = grade(
            executor(), workspaces(), spec, BugSpec(bug.patch, bug.verifier),
            fail_to_pass=bug.fail_to_pass, pass_to_pass=bug.pass_to_pass, workspace=workspace,
            limits=default_limits(repo), suspicious=settings.BUGFORGE_SUSPICIOUS_EPISODES,
        )
    return _store(episode, attempt, result, secrets=(token, teacher.endpoint.api_key))


def _run_builtin(episode: Episode, workspace: Path, environment: str | None, task: str, token: str) -> Attempt:
    endpoint = episode.teacher.endpoint
    limits = episode.teacher.limits()
    bench = Workbench(executor(), workspace, _command_limits(), environment=environment)
    with gateway_url() as base:
        config = endpoint.engine_config()
        config.base_url, config.api_key = base, token  # the agent only ever holds the token
        run = run_agent(config, bench, task, limits=limits)
    return Attempt(
        exit_reason=run.exit_reason, error=run.error, messages=run.messages,
        stats={"calls": run.calls, "malformed": run.malformed, "tool_errors": run.tool_errors,
               "elapsed_s": run.elapsed_s, "gateway": True},
    )


def _run_external(episode: Episode, workspace: Path, environment: str | None, task: str, token: str) -> Attempt:
    teacher = episode.teacher
    limits = teacher.limits()
    sandbox = Limits(timeout_s=limits.max_wall_s, memory_mb=4096, pids=512)
    socket_dir = Path(workspace).parent / f".gw-{episode.pk}-{Path(workspace).name}"
    socket_dir.mkdir(mode=0o755, exist_ok=True)
    try:
        with serve_in_background(uds=str(socket_dir / "gateway.sock")) as sock:
            run = run_external_agent(
                teacher.harness, executor=executor(), workspace=workspace, task=task, gateway=Path(sock), token=token,
                model=teacher.model or teacher.endpoint.model, limits=sandbox, environment=environment,
                max_turns=limits.max_steps,
            )
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
    summary = run.summary or {}
    return Attempt(  # steps, tokens and cost: the gateway's records (the CLI's own are in the summary)
        exit_reason=run.exit_reason, error=run.error, events=run.events, session_log=run.session_log,
        stats={"exit_code": run.exit_code, "duration_s": run.duration_s, "summary": summary,
               "stderr_tail": run.stderr_tail, "gateway": True},
    )


def _command_limits() -> Limits:
    """Each shell command of the built-in agent: the run cap, the sandbox's other caps."""
    return Limits(timeout_s=settings.BUGFORGE_RUN_TIMEOUT)


def outcome(calls: list[dict], attempt: Attempt, rewarded: bool) -> tuple[str, str, str]:
    """(status, exit reason, error) of a finished attempt.

    The gateway's records decide what the harness cannot be trusted to say: a call refused
    for a limit makes the exit reason that limit (whatever the CLI then printed), and the
    attempt is graded as usual. An infrastructure failure — the upstream down, a 5xx to the
    last call, the harness or the sandbox failing — makes the episode an *error*: not a
    failed attempt, so it never counts in solve rate or pass@k. Its reason is the first clear
    one: the gateway's record of the first failing call, else the harness's own error line."""
    limit = next((c["refused"] for c in calls if c.get("refused") in LIMIT_REASONS), "")
    if rewarded:
        return Episode.Status.SOLVED, limit or attempt.exit_reason, ""
    if limit:
        return Episode.Status.UNSOLVED, limit, ""
    answered = [c for c in calls if not c.get("refused") and c.get("error") != "client disconnected"]
    if answered and (is_infrastructure_failure(answered[-1]) or any(c.get("refused") for c in calls)):
        streak = []  # the failures that ended the episode, in order
        for c in reversed(answered):
            if not is_infrastructure_failure(c):
                break
            streak.insert(0, c)
        first = streak[0] if streak else answered[-1]
        reason = f"upstream failure: {first.get('error') or 'HTTP %s' % first.get('status_code')}"
        return Episode.Status.FAILED, Episode.ExitReason.ERROR, "\n".join(filter(None, [reason, attempt.error]))
    if attempt.exit_reason == Episode.ExitReason.ERROR:
        return Episode.Status.FAILED, Episode.ExitReason.ERROR, attempt.error
    return Episode.Status.UNSOLVED, attempt.exit_reason, attempt.error


def _store(episode: Episode, attempt: Attempt, result, secrets=()) -> str:
    """Store what the attempt left. Steps, tokens and cost are not set here: the gateway adds
    every call to the episode's totals as it records it (the one source of those figures)."""
    calls = list(episode.llm_calls.order_by("sequence").values("protocol", "path", "request", "response", "status_code",
                                                                "error", "refused"))
    status, exit_reason, error = outcome(calls, attempt, bool(result.reward))
    scrub = Scrubber(*secrets)  # e.g. an agent that printed its environment: the token is in its events
    Episode.objects.filter(pk=episode.pk).update(
        status=status,
        exit_reason=exit_reason,
        error=scrub.text(error)[:20000],
        final_patch=scrub.text(result.patch),
        reward=1.0 if result.reward else 0.0,
        grading=scrub.obj(result.to_dict()),
        integrity=Episode.integrity_of(result.to_dict()),
        trajectory=scrub.obj(_trajectory(calls, attempt)),
        agent_events=scrub.obj(attempt.events),
        agent_stats=scrub.obj(attempt.stats),
        session_log=_capped(scrub.text(attempt.session_log), SESSION_LOG_MAX_CHARS),
        finished_at=timezone.now(),
    )
    if exit_reason != Episode.ExitReason.ERROR:  # an error is not a graded attempt
        from episodes.curation.difficulty import record_episode

        record_episode(episode.pk)
    return status


def _capped(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[bugforge: session log cut at {limit} of {len(text)} characters]\n"


def _trajectory(calls: list[dict], attempt: Attempt) -> dict:
    """The canonical trajectory from the recorded calls; the agent's own messages if none can
    be derived (e.g. no call completed)."""
    try:
        from episodes.engine.trajectories.canonical import TrajectoryError, canonical_from_calls
    except ImportError:
        canonical_from_calls, TrajectoryError = None, ValueError
    if canonical_from_calls is not None and calls:
        try:
            return canonical_from_calls(calls)
        except TrajectoryError:
            pass
    if not attempt.messages:
        return {}
    from episodes.engine.trajectories.canonical import decode_arguments

    messages = []
    for m in attempt.messages:
        m = dict(m)
        if m.get("tool_calls"):
            m["tool_calls"] = [
                {**c, "function": {**c["function"], "arguments": decode_arguments(c["function"]["arguments"])}}
                for c in m["tool_calls"]
            ]
        messages.append(m)
    return {"messages": messages, "tools": TOOL_SCHEMAS}


# --- figures --------------------------------------------------------------------------------


def figures(episodes, k: int | None = None) -> dict:
    """Totals over a set of episodes: counts by status, solve rate (solved / graded), tokens,
    cost, and per-bug pass@1 / pass@k (graded attempts only: errors are apart, with their
    commonest reasons) with tokens and cost per solved bug."""
    counts = dict(episodes.values_list("status").annotate(n=Count("id")).order_by())
    totals = episodes.aggregate(tin=Sum("tokens_in"), tout=Sum("tokens_out"), cost=Sum("cost_usd"))
    per_bug = {
        row["bug_id"]: (row["n"], row["c"])
        for row in episodes.filter(status__in=GRADED).values("bug_id").annotate(
            n=Count("id"), c=Count("id", filter=Q(status=Episode.Status.SOLVED))
        ).order_by()
    }
    k = k or max((n for n, _ in per_bug.values()), default=1)  # default: the most attempts any bug had
    bugs = passk.summarize(per_bug, k)
    solved, unsolved = counts.get(Episode.Status.SOLVED, 0), counts.get(Episode.Status.UNSOLVED, 0)
    graded = solved + unsolved
    tokens = (totals["tin"] or 0) + (totals["tout"] or 0)
    cost = totals["cost"] or Decimal(0)
    return {
        "episodes": sum(counts.values()),
        "counts": {s: counts.get(s, 0) for s in Episode.Status.values},
        "done": sum(counts.get(s, 0) for s in (*FINISHED, Episode.Status.CANCELLED)),
        "solved": solved,
        "graded": graded,
        "solve_rate": solved / graded if graded else None,
        "errors": counts.get(Episode.Status.FAILED, 0),
        "error_reasons": error_reasons(episodes),
        "tokens": tokens,
        "cost_usd": cost,
        **bugs,
        "tokens_per_solved_bug": tokens / bugs["bugs_solved"] if bugs["bugs_solved"] else None,
        "cost_per_solved_bug": cost / bugs["bugs_solved"] if bugs["bugs_solved"] else None,
    }


def error_reasons(episodes, top: int = 5) -> list[tuple[str, int]]:
    """The commonest first lines of the errors among ``episodes``, with their counts."""
    reasons: dict[str, int] = {}
    for error in episodes.filter(status=Episode.Status.FAILED).values_list("error", flat=True)[:2000]:
        line = (error or "no reason recorded").strip().splitlines()[0][:300]
        reasons[line] = reasons.get(line, 0) + 1
    return sorted(reasons.items(), key=lambda kv: -kv[1])[:top]


def teacher_figures(teacher: Teacher) -> dict:
    return figures(teacher.episodes.all())


def batch_figures(batch: SolveBatch) -> dict:
    result = figures(batch.episodes.all(), k=batch.attempts_per_bug)
    result["bugs"] = batch.bug_count
    return result
