"""The episode viewer: filterable episode list, one episode step by step, one raw LLM call.

Read-only pages (GET). The conversation shown is the episode's canonical trajectory (what SFT
reads); when an episode has none stored yet, it is derived from its recorded calls on the fly.
Each assistant step links to the recorded call that produced it, with that call's tokens.
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.db.models.functions import Length
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET

from bugforge_web.auth import staff_required

from episodes.engine.llm.scrub import Scrubber
from episodes.engine.trajectories.canonical import TrajectoryError, canonical_from_calls, check_canonical, response_message, step_key
from episodes.models import Episode, LLMCall, Teacher

PAGE_SIZE = 50
LONG_OUTPUT_CHARS = 1500
LONG_OUTPUT_LINES = 25
MAX_EVENTS_SHOWN = 500
REWARD_FILTERS = {"1": "reward True", "0": "reward False", "none": "not graded"}


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@require_GET
def episode_list(request):
    filters = {
        "teacher": request.GET.get("teacher", ""),
        "bug": request.GET.get("bug", ""),
        "reward": request.GET.get("reward", ""),
        "status": request.GET.get("status", ""),
        "integrity": request.GET.get("integrity", ""),  # suspicious | tampered (the dashboards link here)
        # the dashboards' solve-rate bars link here with their repository and date range
        "repository": request.GET.get("repository", ""),
        "since": request.GET.get("since", ""),
        "until": request.GET.get("until", ""),
    }
    episodes = Episode.objects.select_related("teacher", "bug__repository").annotate(calls=Count("llm_calls"))
    if filters["repository"]:
        episodes = episodes.filter(bug__repository__name=filters["repository"])
    for key, lookup in (("since", "created_at__date__gte"), ("until", "created_at__date__lte")):
        try:
            day = parse_date(filters[key]) if filters[key] else None
        except ValueError:  # well formed but impossible (2026-02-30)
            day = None
        if day:
            episodes = episodes.filter(**{lookup: day})
        else:
            filters[key] = ""  # unreadable dates are dropped, not passed on to the pager
    if filters["teacher"]:
        episodes = episodes.filter(teacher__name=filters["teacher"])
    if _int(filters["bug"]) is not None:
        episodes = episodes.filter(bug_id=_int(filters["bug"]))
    if filters["reward"] == "1":
        episodes = episodes.filter(reward__gt=0)
    elif filters["reward"] == "0":
        episodes = episodes.filter(reward__isnull=False, reward__lte=0)
    elif filters["reward"] == "none":
        episodes = episodes.filter(reward__isnull=True)
    if filters["status"] in Episode.Status.values:
        episodes = episodes.filter(status=filters["status"])
    if filters["integrity"] in (Episode.Integrity.SUSPICIOUS, Episode.Integrity.TAMPERED):
        episodes = episodes.filter(integrity=filters["integrity"])
    else:
        filters["integrity"] = ""
    page = Paginator(episodes.order_by("-created_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode({k: v for k, v in filters.items() if v})
    teachers = Teacher.objects.only("pk", "name").order_by("name")
    selected = None
    if filters["teacher"]:
        selected = Teacher.objects.annotate(
            episode_count=Count("episodes"), solved=Count("episodes", filter=Q(episodes__reward__gt=0)),
        ).filter(name=filters["teacher"]).first()
    return render(request, "episodes/episode_list.html", {
        "page": page, "filters": filters, "query": query, "teachers": teachers, "selected_teacher": selected,
        "statuses": Episode.Status.choices, "reward_filters": REWARD_FILTERS,
    })


def _call_rows(episode) -> list:
    """The episode's calls without their big bodies (request, raw stream): the list and the
    step → call mapping need only the response."""
    return list(episode.llm_calls.defer("request", "raw_stream").order_by("sequence", "id"))


def _as_call(row, with_request: bool = False) -> dict:
    call = {"protocol": row.protocol, "path": row.path, "response": row.response,
            "status_code": row.status_code, "error": row.error}
    if with_request:
        call["request"] = row.request
    return call


def _steps(messages: list[dict], calls_by_key: dict) -> list[dict]:
    steps = []
    for i, m in enumerate(messages):
        content = m.get("content") or ""
        lines = content.count("\n") + 1 if content else 0
        step = {
            "index": i, "role": m.get("role"), "content": content, "lines": lines,
            "long": len(content) > LONG_OUTPUT_CHARS or lines > LONG_OUTPUT_LINES,
            "preview": content.split("\n", 1)[0][:160],
            "reasoning": m.get("reasoning_content") or "",
            "tool_call_id": m.get("tool_call_id"),
            "tool_calls": [
                {"id": c.get("id"), "name": (c.get("function") or {}).get("name"),
                 "arguments": _pretty((c.get("function") or {}).get("arguments"))}
                for c in m.get("tool_calls") or ()
            ],
            "call": calls_by_key.get(step_key(m)) if m.get("role") == "assistant" else None,
        }
        steps.append(step)
    return steps


def _pretty(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


@require_GET
def episode_detail(request, pk):
    episode = get_object_or_404(
        Episode.objects.select_related("teacher", "bug__repository", "solve_batch").defer("session_log")
        .annotate(session_log_chars=Length("session_log")), pk=pk)
    trajectory = episode.trajectory or {}
    derived = False
    problem = ""
    if trajectory.get("messages"):
        calls = _call_rows(episode)
    else:  # derive it from the recorded calls, which then need their requests too (one query)
        calls = list(episode.llm_calls.defer("raw_stream").order_by("sequence", "id"))
        if calls:
            try:
                trajectory = canonical_from_calls([_as_call(c, with_request=True) for c in calls])
                derived = True
            except TrajectoryError as exc:
                problem = str(exc)
    calls_by_key = {}
    for row in calls:
        message = response_message(_as_call(row))
        if message is not None:
            calls_by_key.setdefault(step_key(message), row)
    messages = trajectory.get("messages") or []
    grading = episode.grading or {}
    events = episode.agent_events if isinstance(episode.agent_events, list) else []
    return render(request, "episodes/episode_detail.html", {
        "episode": episode, "bug": episode.bug, "teacher": episode.teacher,
        "steps": _steps(messages, calls_by_key), "tools": [
            {"name": (t.get("function") or {}).get("name"), "description": (t.get("function") or {}).get("description", ""),
             "parameters": _pretty((t.get("function") or {}).get("parameters"))}
            for t in trajectory.get("tools") or ()
        ],
        "derived": derived, "trajectory_problem": problem, "calls": calls,
        "totals": {"tokens_in": sum(c.tokens_in for c in calls), "tokens_out": sum(c.tokens_out for c in calls)},
        "agent_patch": grading.get("patch") or episode.final_patch,
        "grading": grading, "grading_runs": grading.get("runs") or [], "grading_tests": sorted((grading.get("tests") or {}).items()),
        "grading_dropped": sorted((grading.get("dropped") or {}).items()),
        "events": [{"type": _event_type(e), "json": json.dumps(e, ensure_ascii=False)[:4000]} for e in events[:MAX_EVENTS_SHOWN]],
        "events_total": len(events),
        "provenance_warning": episode.teacher.terms_allow_training is not True,
        "sft_problems": check_canonical(trajectory) if messages else [],
        "agent_stats": _flat_stats(getattr(episode, "agent_stats", None)),
        "import_format": SESSION_LOG_FORMAT.get(episode.teacher.harness, ""),
        # the first clear reason up front; the rest (the CLI's own words, a traceback) on demand
        "error_reason": episode.error.strip().partition("\n")[0], "error_detail": episode.error.strip().partition("\n")[2],
    })


# The importer that reads each CLI harness's own session log (``Episode.session_log``).
SESSION_LOG_FORMAT = {Teacher.Harness.CLAUDE_CODE: "claude_code", Teacher.Harness.CODEX: "codex"}


@require_GET
def episode_session_log(request, pk):
    """The CLI's own session log of an episode, as it wrote it (secrets scrubbed): a file
    ``manage.py import_episodes`` reads back into the same trajectory."""
    episode = get_object_or_404(Episode.objects.select_related("teacher").only("pk", "session_log", "teacher__harness"), pk=pk)
    if not episode.session_log:
        raise Http404("this episode has no session log (only CLI teachers write one)")
    response = HttpResponse(episode.session_log, content_type="application/x-ndjson; charset=utf-8")
    fmt = SESSION_LOG_FORMAT.get(episode.teacher.harness, "session")
    response["Content-Disposition"] = f'attachment; filename="episode-{episode.pk}-{fmt}.jsonl"'
    return response


def _flat_stats(stats) -> list[tuple[str, str]]:
    """The harness's own counters (calls, malformed replies, tool errors…) as label/value pairs;
    nested summaries and long text (stderr) stay out of the facts list."""
    if not isinstance(stats, dict):
        return []
    return [(k.replace("_", " "), str(v)) for k, v in stats.items()
            if isinstance(v, (int, float, str, bool)) and len(str(v)) <= 80]


def _event_type(event) -> str:
    if not isinstance(event, dict):
        return type(event).__name__
    kind = str(event.get("type") or event.get("role") or "?")
    item = event.get("item")
    sub = event.get("subtype") or (item.get("type") if isinstance(item, dict) else None)
    return f"{kind}/{sub}" if sub else kind


@require_GET
def llm_call_detail(request, pk):
    call = get_object_or_404(LLMCall.objects.select_related("episode__teacher", "endpoint", "batch"), pk=pk)
    # safe to show: the endpoint's key, credential-named fields and key-shaped values masked
    scrub = Scrubber(call.endpoint.api_key if call.endpoint_id else "", credentials=True)
    return render(request, "episodes/episode_call.html", {
        "call": call,
        "request_json": json.dumps(scrub.obj(call.request), indent=2, ensure_ascii=False),
        "response_json": json.dumps(scrub.obj(call.response), indent=2, ensure_ascii=False),
        "raw_stream": scrub.obj(call.raw_stream),
        "error": scrub.obj(call.error),
    })


__all__ = ["episode_detail", "episode_list", "llm_call_detail"]


@staff_required
def episode_review(request, pk):
    """Staff clear or refuse an episode that was graded past the static screen."""
    episode = get_object_or_404(Episode, pk=pk)
    try:
        episode.review_integrity(request.user, request.POST.get("decision", ""), request.POST.get("notes", "")[:2000])
    except ValueError as exc:
        messages.error(request, f"Nothing changed: {exc}")
    else:
        messages.info(request, f"Episode {episode.pk}: {'cleared' if episode.integrity == '' else 'reward refused'}.")
    return redirect("episode_detail", pk=episode.pk)
