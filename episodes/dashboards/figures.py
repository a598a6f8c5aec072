"""Pass-rate dashboards: every figure is one aggregate query in the database (values +
annotate), filtered by repository and date range, shaped as plotly traces whose points carry
the URL of the rows behind them (the page makes bars clickable with it).

Statuses are kept apart in the charts (approved / valid / rejected all passed validation) so a
click on a bar lands on exactly the bugs it counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from datetime import date
from decimal import Decimal
from urllib.parse import urlencode

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse

from episodes.models import Bug, Episode, LLMCall, Review

# Usable bugs: a bug a curator rejected passed validation but is not one (it lowers the yield).
VALID = ("approved", "valid")
STACK = ("approved", "valid", "rejected", "flaky", "invalid")  # settled bugs, stacked in this order
COLORS = {"approved": "#15803d", "valid": "#4ade80", "rejected": "#9ca3af", "flaky": "#b45309", "invalid": "#b91c1c"}


@dataclass
class Scope:
    """The dashboard filter: a repository name and a date range (inclusive), all optional."""

    repository: str = ""
    since: date | None = None
    until: date | None = None

    def params(self) -> dict:
        return {k: v.isoformat() if isinstance(v, date) else v
                for k, v in (("repository", self.repository), ("since", self.since), ("until", self.until)) if v}

    def q(self, repository_path: str, created_path: str = "created_at") -> Q:
        q = Q()
        if self.repository:
            q &= Q(**{repository_path: self.repository})
        if self.since:
            q &= Q(**{f"{created_path}__date__gte": self.since})
        if self.until:
            q &= Q(**{f"{created_path}__date__lte": self.until})
        return q


def _url(name: str, scope: Scope, **params) -> str:
    return reverse(name) + "?" + urlencode({**scope.params(), **{k: v for k, v in params.items() if v not in ("", None)}})


def _status_counts():
    return {s: Count("id", filter=Q(status=s)) for s in STACK}


class Groups:
    """The two grouped scans several charts share, each run at most once per page: bugs per
    (method, operator, status) and episodes per (teacher, repository). A few hundred grouped
    rows come back; charts roll them up (sums over groups, never loops over bugs)."""

    def __init__(self, scope: Scope):
        self.scope = scope

    @cached_property
    def bugs(self) -> list[dict]:
        return list(Bug.objects.filter(self.scope.q("repository__name")).values("method", "operator", "status")
                    .annotate(n=Count("id"), batched=Count("id", filter=Q(batch__isnull=False))).order_by())

    @cached_property
    def episodes(self) -> list[dict]:
        return list(
            Episode.objects.filter(self.scope.q("bug__repository__name"))
            .values("teacher__name", "bug__repository__name").annotate(
                solved=Count("id", filter=Q(status=Episode.Status.SOLVED)),
                unsolved=Count("id", filter=Q(status=Episode.Status.UNSOLVED)),
                errors=Count("id", filter=Q(status=Episode.Status.FAILED)),
                # a bug is in one repository, so distinct solved bugs add up across repositories
                solved_bugs=Count("bug", filter=Q(status=Episode.Status.SOLVED), distinct=True),
                suspicious=Count("id", filter=Q(integrity=Episode.Integrity.SUSPICIOUS)),
                tampered=Count("id", filter=Q(integrity=Episode.Integrity.TAMPERED)),
                cost=Sum("cost_usd"),
            ).order_by()
        )

    def status_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for g in self.bugs:
            totals[g["status"]] = totals.get(g["status"], 0) + g["n"]
        return totals

    def by_status(self, key: str, where=None) -> list[dict]:
        rows: dict[str, dict] = {}
        for g in self.bugs:
            if where and not where(g):
                continue
            row = rows.setdefault(g[key], {key: g[key], **{s: 0 for s in STACK}})
            if g["status"] in row:
                row[g["status"]] += g["n"]
        return [rows[k] for k in sorted(rows)]

    def solve_rows(self, key: str) -> list[dict]:
        rows: dict[str, dict] = {}
        for g in self.episodes:
            row = rows.setdefault(g[key], {key: g[key], "solved": 0, "unsolved": 0, "errors": 0, "solved_bugs": 0,
                                           "suspicious": 0, "tampered": 0, "cost": Decimal(0)})
            for k in ("solved", "unsolved", "errors", "solved_bugs", "suspicious", "tampered"):
                row[k] += g[k]
            row["cost"] += g["cost"] or Decimal(0)
        return [rows[k] for k in sorted(rows)]


def _stacked(rows: list[dict], key: str, scope: Scope, link_key: str, extra: dict | None = None) -> dict:
    """Stacked status bars over ``rows`` (one per category), with yield per category."""
    cats = [r[key] or "(none)" for r in rows]
    traces = []
    for status in STACK:
        traces.append({
            "type": "bar", "name": status, "x": cats, "y": [r[status] for r in rows],
            "marker": {"color": COLORS[status]},
            "customdata": [_url("bug_list", scope, status=status, **{link_key: r[key]}, **(extra or {})) for r in rows],
        })
    yields = []
    for r in rows:
        settled = sum(r[s] for s in STACK)
        yields.append(round(sum(r[s] for s in VALID) / settled, 3) if settled else None)
    return {"traces": traces, "categories": cats, "yield": yields, "rows": rows}


def yield_by_method(scope: Scope, groups: Groups | None = None) -> dict:
    groups = groups or Groups(scope)
    return _stacked(groups.by_status("method"), "method", scope, "method")


def yield_by_operator(scope: Scope, groups: Groups | None = None) -> dict:
    groups = groups or Groups(scope)
    rows = groups.by_status("operator", where=lambda g: g["method"] == Bug.Method.PROCEDURAL and g["operator"])
    return _stacked(rows, "operator", scope, "operator", {"method": Bug.Method.PROCEDURAL})


def verdicts_over_time(scope: Scope, groups: Groups | None = None) -> dict:
    rows = list(Bug.objects.filter(scope.q("repository__name")).annotate(day=TruncDate("created_at"))
                .values("day").annotate(**_status_counts()).order_by("day"))
    cats = [r["day"].isoformat() for r in rows]
    traces = [{
        "type": "bar", "name": status, "x": cats, "y": [r[status] for r in rows], "marker": {"color": COLORS[status]},
        "customdata": [_url("bug_list", Scope(scope.repository, r["day"], r["day"]), status=status) for r in rows],
    } for status in STACK]
    return {"traces": traces, "categories": cats, "rows": rows}


def _rate(r) -> float | None:
    attempted = r["solved"] + r["unsolved"]
    return round(r["solved"] / attempted, 3) if attempted else None


def solve_rate_by_teacher(scope: Scope, groups: Groups | None = None) -> dict:
    rows = (groups or Groups(scope)).solve_rows("teacher__name")
    names = [r["teacher__name"] for r in rows]
    return {
        "traces": [{
            "type": "bar", "name": "solve rate", "x": names, "y": [_rate(r) for r in rows],
            "text": [f"{r['solved']}/{r['solved'] + r['unsolved']}" for r in rows], "textposition": "auto",
            "customdata": [_url("episode_list", scope, teacher=n, status="solved") for n in names],
        }],
        "rows": rows,
    }


def flagged_by_teacher(scope: Scope, groups: Groups | None = None) -> dict:
    """Episodes whose graded change the reward's screen flagged, or whose run was tampered."""
    rows = (groups or Groups(scope)).solve_rows("teacher__name")
    names = [r["teacher__name"] for r in rows]
    return {
        "traces": [
            {"type": "bar", "name": kind, "x": names, "y": [r[kind] for r in rows],
             "customdata": [_url("episode_list", scope, teacher=n, integrity=kind) for n in names]}
            for kind in ("suspicious", "tampered")
        ],
        "rows": rows,
    }


def invalid_by_reason(scope: Scope, groups: Groups | None = None) -> dict:
    """Invalid bugs per injection method, stacked by the reason code of their verdict (a hang,
    a limit, a verifier that runs no test, an undetected mutant… kept apart)."""
    counts = list(Bug.objects.filter(scope.q("repository__name"), status=Bug.Status.INVALID)
                  .values_list("method", "invalid_kind").annotate(n=Count("id")).order_by("method", "invalid_kind"))
    methods = sorted({m for m, _, _ in counts})
    reasons = sorted({k or "other" for _, k, _ in counts})
    table = {(m, k or "other"): n for m, k, n in counts}
    return {
        "traces": [
            {"type": "bar", "name": reason, "x": methods, "y": [table.get((m, reason), 0) for m in methods],
             "customdata": [_url("bug_list", scope, status="invalid", method=m,
                                 reason="" if reason == "other" else reason) for m in methods]}
            for reason in reasons
        ],
        "rows": [{"method": m, "reason": k, "bugs": n} for (m, k), n in sorted(table.items())],
    }


def solve_rate_by_repository(scope: Scope, groups: Groups | None = None) -> dict:
    rows = (groups or Groups(scope)).solve_rows("bug__repository__name")
    names = [r["bug__repository__name"] for r in rows]
    return {
        "traces": [{
            "type": "bar", "name": "solve rate", "x": names, "y": [_rate(r) for r in rows],
            "text": [f"{r['solved']}/{r['solved'] + r['unsolved']}" for r in rows], "textposition": "auto",
            "customdata": [_url("episode_list", Scope(n, scope.since, scope.until), status="solved") for n in names],
        }],
        "rows": rows,
    }


def _per(cost, n) -> float | None:
    return round(float(cost or Decimal(0)) / n, 4) if n else None


def cost_per_valid_bug(scope: Scope, groups: Groups | None = None) -> dict:
    """LLM spend of injection batches per method, over the bugs of those batches that passed
    validation (the spend on failed candidates is part of what a valid bug costs)."""
    spend = dict(LLMCall.objects.filter(batch__isnull=False).filter(scope.q("batch__repository__name"))
                 .values_list("batch__method").annotate(cost=Sum("cost_usd")).order_by())
    valid: dict[str, int] = {}
    for g in (groups or Groups(scope)).bugs:
        if g["status"] in VALID and g["batched"]:
            valid[g["method"]] = valid.get(g["method"], 0) + g["batched"]
    methods = sorted(set(spend) | set(valid))
    rows = [{"method": m, "cost": float(spend.get(m) or 0), "valid": valid.get(m, 0),
             "per_valid": _per(spend.get(m), valid.get(m, 0))} for m in methods]
    return {
        "traces": [{
            "type": "bar", "name": "USD per valid bug", "x": methods, "y": [r["per_valid"] for r in rows],
            "customdata": [_url("bug_list", scope, method=m, status="valid") for m in methods],
        }],
        "rows": rows,
    }


def cost_per_solved_bug(scope: Scope, groups: Groups | None = None) -> dict:
    """Every episode's cost (solved or not) per teacher, over the distinct bugs it solved."""
    rows = (groups or Groups(scope)).solve_rows("teacher__name")
    names = [r["teacher__name"] for r in rows]
    table = [{"teacher": r["teacher__name"], "cost": float(r["cost"] or 0), "solved_bugs": r["solved_bugs"],
              "per_solved": _per(r["cost"], r["solved_bugs"])} for r in rows]
    return {
        "traces": [{
            "type": "bar", "name": "USD per solved bug", "x": names, "y": [r["per_solved"] for r in table],
            "customdata": [_url("episode_list", scope, teacher=n, status="solved") for n in names],
        }],
        "rows": table,
    }


def difficulty_mix(scope: Scope, groups: Groups | None = None) -> dict:
    """Bugs per difficulty bucket reviewers gave (Review.difficulty; a bug rated differently
    by two reviewers counts in both buckets), in bucket order."""
    counts = dict(Review.objects.filter(scope.q("bug__repository__name")).values_list("difficulty")
                  .annotate(n=Count("bug", distinct=True)).order_by())
    buckets = [(v, str(label)) for v, label in Bug.Difficulty.choices] + [("", "not rated")]
    shown = [(v, label) for v, label in buckets if counts.get(v)]
    return {
        "traces": [{
            "type": "bar", "name": "bugs", "x": [label for _, label in shown], "y": [counts[v] for v, _ in shown],
            "customdata": [_url("bug_list", scope, rated=v or "none") for v, _ in shown],
        }],
        "rows": [{"difficulty": label, "bugs": counts[v]} for v, label in shown],
    }


CHARTS = [
    ("yield-method", "Yield per injection method", yield_by_method, "bugs",
     "No bug here yet: open a repository and plant a batch (Repositories → inject), then validate."),
    ("yield-operator", "Yield per procedural operator", yield_by_operator, "bugs",
     "No procedural bug here yet: run a procedural injection batch from a repository page."),
    ("invalid-reason", "Invalid bugs by reason", invalid_by_reason, "bugs",
     "No invalid bug here: every validated candidate passed."),
    ("verdicts-time", "Verdicts over time (by creation day)", verdicts_over_time, "bugs",
     "No bug in this range: widen the dates or plant a batch."),
    ("solve-teacher", "Solve rate per teacher", solve_rate_by_teacher, "episodes",
     "No episode yet: launch solving for approved bugs from Teachers."),
    ("flagged-teacher", "Suspicious and tampered episodes per teacher", flagged_by_teacher, "episodes",
     "No suspicious or tampered episode: the grader has refused nothing here."),
    ("solve-repository", "Solve rate per repository", solve_rate_by_repository, "episodes",
     "No episode yet: launch solving for approved bugs from Teachers."),
    ("cost-valid", "LLM cost per valid bug (USD, injection)", cost_per_valid_bug, "bugs",
     "No LLM injection spend recorded: LLM modify/rewrite batches record every call's cost."),
    ("cost-solved", "Cost per solved bug (USD, episodes)", cost_per_solved_bug, "episodes",
     "No episode cost yet: teachers' episodes record the cost of every LLM call."),
    ("difficulty", "Difficulty mix (reviews)", difficulty_mix, "reviews",
     "No review yet: approve or reject valid bugs on the bug pages (keyboard: a / r)."),
]


def all_charts(scope: Scope, use_cache: bool = True) -> dict:
    """Every chart for ``scope`` with the status totals and when they were computed.

    The aggregates scan every bug, so results are cached per filter in the queues' Redis,
    shared by every web process, and refreshed when older than BUGFORGE_DASHBOARD_CACHE_S
    seconds (default 60; 0 turns caching off). Only one request refreshes a stale entry (a
    short Redis lock); the others keep serving the previous figures meanwhile, so a busy page
    never waits on a stampede. ``use_cache=False`` recomputes (the page's "refresh now")."""
    from django.conf import settings
    from django.utils import timezone

    ttl = getattr(settings, "BUGFORGE_DASHBOARD_CACHE_S", 60)
    key = "dashboards:" + urlencode(scope.params())
    cache = _cache(settings.RQ_QUEUES["verify"]["URL"]) if ttl else None
    if cache is not None and use_cache:
        try:
            cached = cache.get(key)
            if cached is not None:
                age = (timezone.now() - cached["as_of"]).total_seconds()
                if age < ttl or not cache.add(key + ":refreshing", 1, timeout=120):
                    return cached
        except Exception:  # Redis away: compute, the page still works
            pass
    result = {**_compute(scope), "as_of": timezone.now(), "ttl": ttl}
    if cache is not None:
        try:
            cache.set(key, result, ttl * 30)  # kept well past its freshness, to serve while refreshing
            cache.delete(key + ":refreshing")
        except Exception:
            pass
    return result


@lru_cache(maxsize=4)
def _cache(url: str):
    from django.core.cache.backends.redis import RedisCache

    return RedisCache(url, {"KEY_PREFIX": "bugforge", "OPTIONS": {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}})


def _compute(scope: Scope) -> dict:
    groups = Groups(scope)
    charts = []
    for key, title, figure, unit, empty in CHARTS:
        data = figure(scope, groups)
        has_data = any(any(v for v in (t["y"] or []) if v) for t in data["traces"])
        charts.append({"id": key, "title": title, "data": data, "empty": None if has_data else empty, "unit": unit,
                       "table": _table(data["traces"]), "stacked": len(data["traces"]) > 1,
                       "yields": list(zip(data.get("categories", []), data.get("yield", [])))})
    totals = groups.status_totals()
    return {"charts": charts, "status_chart": {"x": [s.value for s in Bug.Status], "y": [totals.get(s.value, 0) for s in Bug.Status]},
            "total_bugs": sum(totals.values())}


def _table(traces: list[dict]) -> dict:
    """The chart's numbers as a table (same links as the bars): header, then one row per x."""
    xs = list(dict.fromkeys(x for t in traces for x in t["x"]))
    cells = {(t["name"], x): (y, url) for t in traces for x, y, url in zip(t["x"], t["y"], t["customdata"])}
    return {"header": [t["name"] for t in traces],
            "rows": [(x, [cells.get((t["name"], x), (None, None)) for t in traces]) for x in xs]}
