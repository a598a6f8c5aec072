"""Curation queries and staff actions on bugs, shared by the views and the commands.

The bug list, the bug page's next/previous links and the bulk actions all work on the same
"current filter" (a validated `BugFilterForm`), so what a reviewer sees is what a bulk action
touches. Pagination never counts more than `COUNT_CAP` rows: an exact COUNT(*) over a large
unselective filter is the slow part of a list page on PostgreSQL, and "10,000+" says enough.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Substr
from django.utils import timezone

from episodes.models import AuditEvent, Bug, Review, VerificationRun

PER_PAGE = 50
COUNT_CAP = 10_000
BULK_CAP = 200  # bugs per bulk action: each gets its own review and audit event

# sort key → (ordering field or alias, annotation it needs)
SORTS = {
    "created": "created_at",
    "id": "id",
    "status": "status",
    "method": "method",
    "repository": "repository__name",
    "difficulty": "difficulty",
    "bound": "_bound",  # nullable: unmeasured bugs sort below every measured one
    "solve": "_solve",  # measured solve rate; unmeasured below every measured one
    "realism": "_realism",
}
DEFAULT_SORT = "-created"


def _annotate_sort(bugs, key: str):
    if key == "bound":
        return bugs.annotate(_bound=Coalesce("flake_upper_bound", Value(-1.0)))
    if key in ("solve", "realism"):
        return bugs.annotate(**{SORTS[key]: Coalesce("solve_rate" if key == "solve" else "realism", Value(-1.0))})
    return bugs


def sort_ordering(sort: str) -> tuple[str, str]:
    """("-created_at", "-id") for "-created": the id breaks ties in the same direction."""
    desc = sort.startswith("-")
    field = SORTS[sort.lstrip("-")]
    sign = "-" if desc else ""
    return f"{sign}{field}", f"{sign}id"


def filtered_bugs(data: dict):
    """Bugs matching a cleaned BugFilterForm, in its sort order (no columns restricted)."""
    bugs = Bug.objects.all()
    if data.get("repository"):
        bugs = bugs.filter(repository__name=data["repository"])
    if data.get("status"):
        bugs = bugs.filter(status=data["status"])
    if data.get("method"):
        bugs = bugs.filter(method=data["method"])
    if data.get("operator"):
        bugs = bugs.filter(operator=data["operator"])
    if data.get("reason"):
        bugs = bugs.filter(invalid_kind=data["reason"])
    flaky = data.get("flaky")
    if flaky == "flaky":
        bugs = bugs.filter(status=Bug.Status.FLAKY)
    elif flaky == "quarantined":
        bugs = bugs.filter(quarantined=True)
    elif flaky == "stable":
        bugs = bugs.exclude(stable_reason="")
    elif flaky == "measured":
        bugs = bugs.filter(flake_upper_bound__isnull=False)
    verdict = data.get("verdict")
    if verdict == "unreviewed":
        bugs = bugs.filter(~Exists(Review.objects.filter(bug=OuterRef("pk"))))
    elif verdict in (Review.Verdict.APPROVE, Review.Verdict.REJECT):
        bugs = bugs.filter(Exists(Review.objects.filter(bug=OuterRef("pk"), verdict=verdict)))
    difficulty = data.get("difficulty")
    if difficulty == "none":
        bugs = bugs.filter(difficulty="")
    elif difficulty:
        bugs = bugs.filter(difficulty=difficulty)
    rated = data.get("rated")
    if rated:
        bugs = bugs.filter(Exists(Review.objects.filter(bug=OuterRef("pk"), difficulty="" if rated == "none" else rated)))
    if data.get("measured"):
        bugs = bugs.filter(solve_rate__isnull=data["measured"] == "unmeasured")
    if data.get("min_solve") is not None:
        bugs = bugs.filter(solve_rate__gte=data["min_solve"] / 100)
    if data.get("max_solve") is not None:
        bugs = bugs.filter(solve_rate__lte=data["max_solve"] / 100)
    if data.get("min_realism") is not None:
        bugs = bugs.filter(realism__gte=data["min_realism"])
    if data.get("since"):
        bugs = bugs.filter(created_at__date__gte=data["since"])
    if data.get("until"):
        bugs = bugs.filter(created_at__date__lte=data["until"])
    if data.get("q"):
        # ILIKE over the text a reviewer remembers: statement, patch, target. On PostgreSQL a
        # pg_trgm GIN index on these columns would make this an index scan (not in the schema yet).
        q = data["q"]
        bugs = bugs.filter(Q(problem_statement__icontains=q) | Q(patch__icontains=q) | Q(target__icontains=q))
    sort = data.get("sort") or DEFAULT_SORT
    return _annotate_sort(bugs, sort.lstrip("-")).order_by(*sort_ordering(sort))


STATEMENT_PREVIEW_CHARS = 240


def list_rows(bugs):
    """The columns the list shows, with each bug's review tally (subqueries run per shown row)."""
    tally = lambda verdict: Subquery(  # noqa: E731
        Review.objects.filter(bug=OuterRef("pk"), verdict=verdict).order_by().values("bug")
        .annotate(n=Count("id")).values("n")
    )
    return bugs.select_related("repository").only(
        "id", "status", "method", "operator", "target", "created_at", "flake_upper_bound", "difficulty",
        "quarantined", "repository__name", "solve_rate", "solve_attempts", "solve_successes", "realism",
    ).annotate(approvals=tally(Review.Verdict.APPROVE), rejections=tally(Review.Verdict.REJECT),
               # what the bug asks, under its row: `a` on the list never approves a bug unseen
               statement=Substr("problem_statement", 1, STATEMENT_PREVIEW_CHARS))


@dataclass
class Page:
    """One page of a list, counted up to a cap (see the module docstring)."""

    rows: list
    number: int
    per_page: int
    count: int
    capped: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number * self.per_page < self.count or (self.capped and len(self.rows) == self.per_page)

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def num_pages(self) -> int | None:
        return None if self.capped else max(1, -(-self.count // self.per_page))

    @property
    def start_index(self) -> int:
        return (self.number - 1) * self.per_page + 1 if self.rows else 0

    @property
    def end_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.rows)


MAX_PAGE = 1_000_000


def paginate(queryset, page: str | int | None, per_page: int = PER_PAGE, cap: int = COUNT_CAP, counted=None) -> Page:
    """``counted``: the same rows without the display annotations (cheaper to count)."""
    try:
        number = min(max(1, int(page or 1)), MAX_PAGE)  # a 30-digit page would overflow the OFFSET
    except (TypeError, ValueError):
        number = 1
    counted = queryset if counted is None else counted
    offset = (number - 1) * per_page
    rows = list(queryset[offset:offset + per_page])
    if rows and len(rows) < per_page or (not rows and number == 1):
        # the last page is in hand: the count is known without a second scan (a search that
        # matches little would otherwise be read twice)
        return Page(rows, number, per_page, offset + len(rows), False)
    # COUNT over a LIMITed subquery of ids only: at most `cap` index entries read
    count = counted.order_by().values("pk")[:cap].count()
    capped = count >= cap
    last = None if capped else max(1, -(-count // per_page))
    if last is not None and number > last:  # past the end: show the last page
        number = last
        offset = (number - 1) * per_page
        rows = list(queryset[offset:offset + per_page])
    return Page(rows, number, per_page, count, capped)


def neighbours(bug: Bug, data: dict) -> tuple[int | None, int | None]:
    """(previous, next) bug ids around ``bug`` in the filtered list's order. Keyset lookups,
    no OFFSET and no count; each side is two simple index-friendly queries (same sort value
    with a smaller/larger id first, then the next sort value) because PostgreSQL does not use
    an index for `a < x OR (a = x AND id < y)`."""
    sort = data.get("sort") or DEFAULT_SORT
    key = sort.lstrip("-")
    desc = sort.startswith("-")
    bugs = filtered_bugs(data)
    field = SORTS[key]
    if key == "bound":
        value = bug.flake_upper_bound if bug.flake_upper_bound is not None else -1.0
    elif key in ("solve", "realism"):
        value = getattr(bug, "solve_rate" if key == "solve" else "realism")
        value = -1.0 if value is None else value
    elif key == "repository":
        value = bug.repository.name
    else:
        value = getattr(bug, field)

    def step(forward: bool) -> int | None:
        down = desc == forward  # walking towards smaller values
        op = "lt" if down else "gt"
        sign = "-" if down else ""
        tie = bugs.filter(**{field: value, f"id__{op}": bug.pk}).order_by(f"{sign}id")
        found = tie.values_list("id", flat=True).first()
        if found is None:
            found = (bugs.filter(**{f"{field}__{op}": value}).order_by(f"{sign}{field}", f"{sign}id")
                     .values_list("id", flat=True).first())
        return found

    return step(False), step(True)


def query_string(data: dict, **extra) -> str:
    """The filter as a query string (empty values left out), for links that keep it."""
    pairs = {k: v for k, v in {**data, **extra}.items() if v not in (None, "", [])}
    return urlencode({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in pairs.items()})


# --- staff actions ----------------------------------------------------------------------

PAST = {"approve": "approved", "reject": "rejected"}
BULK_RUBRIC = {"underspecified": 0, "rejects_valid_fixes": 0, "other_major_issue": False}


def bulk_candidates(data: dict):
    """The bugs of a filter a bulk review may touch: curatable ones, list order, capped."""
    return filtered_bugs(data).filter(status__in=Bug.CURATABLE)


def undo(actor, event: AuditEvent) -> list[str]:
    """Undo a review or a bulk review from its audit event; returns what could not be undone
    (a bug reviewed again since, or no longer curatable) — the rest is undone. Audited."""
    if event.action == "review":
        Bug.objects.get(pk=int(event.target_id)).undo_review(actor, event)
        return []
    if event.action != "bulk_review":
        raise ValueError(f"a {event.action} cannot be undone here (reviews and bulk reviews can)")
    if AuditEvent.objects.filter(action="undo_bulk_review", after__undoes=event.pk).exists():
        raise ValueError(f"bulk review {event.pk} was already undone")
    left, undone = [], []
    with transaction.atomic():
        for bug_id in event.after.get("bugs") or []:
            review = (AuditEvent.objects.filter(action="review", actor=event.actor, target_type="episodes.bug",
                                                target_id=str(bug_id), pk__lt=event.pk).order_by("-pk").first())
            bug = Bug.objects.filter(pk=bug_id).first()
            try:
                if review is None or bug is None:
                    raise ValueError("its review is gone")
                bug.undo_review(actor, review)
                undone.append(bug_id)
            except ValueError as exc:
                left.append(f"bug {bug_id}: {exc}")
        AuditEvent.objects.create(actor=actor if getattr(actor, "is_authenticated", False) else None,
                                  action="undo_bulk_review", target_type="episodes.bug", target_id="bulk",
                                  after={"undoes": event.pk, "bugs": undone, "left": left})
    return left


def recent_bulk_reviews(n: int = 5) -> list[tuple[AuditEvent, bool]]:
    """The latest bulk reviews, each with whether it was undone."""
    events = list(AuditEvent.objects.filter(action="bulk_review").select_related("actor").order_by("-pk")[:n])
    undone = set(AuditEvent.objects.filter(action="undo_bulk_review", after__undoes__in=[e.pk for e in events])
                 .values_list("after__undoes", flat=True))
    return [(e, e.pk in undone) for e in events]


def bulk_review(actor, ids: list[int], data: dict, verdict: str, notes: str = "", difficulty: str = "") -> list[int]:
    """Review each confirmed bug that still matches the filter with the default rubric and
    ``verdict``; each goes through Bug.review (the Verified rule, a Review, an audit event).
    Returns the ids reviewed. Bugs that changed since confirmation are left alone."""
    if verdict not in Review.Verdict.values:
        raise ValueError(f"unknown verdict {verdict!r}")
    ids = ids[:BULK_CAP]
    done = []
    with transaction.atomic():
        for bug in bulk_candidates(data).filter(pk__in=ids).select_for_update(of=("self",)):
            bug.review(actor, **BULK_RUBRIC, difficulty=difficulty, notes=notes, verdict=verdict)
            done.append(bug.pk)
        # one event for the action itself (each bug also has its own "review" event)
        AuditEvent.objects.create(actor=actor, action="bulk_review", target_type="episodes.bug", target_id="bulk",
                                  after={"verdict": verdict, "bugs": done, "filter": query_string(data)})
    return done


def edit_verifier(actor, bug: Bug, verifier: str):
    """Replace a bug's verifier and send it back through validation (runs made by the old
    verifier stop counting: validation restarts the run window). Returns the job id."""
    from episodes.validation import jobs
    verifier = verifier.replace("\r\n", "\n")
    if not verifier.strip():
        raise ValueError("the verifier cannot be empty")
    if verifier == bug.verifier:
        raise ValueError("the verifier is unchanged; use Validate again to rerun it as it is")
    if bug.status == Bug.Status.VALIDATING:
        raise ValueError("this bug is being validated now; wait for the verdict, then edit")
    before = {"verifier": bug.verifier, "status": bug.status}
    with transaction.atomic():
        Bug.objects.filter(pk=bug.pk).update(verifier=verifier, stable_reason="", updated_at=timezone.now())
        bug.verifier, bug.stable_reason = verifier, ""
        job_id = jobs.enqueue_validation(bug)
        AuditEvent.record(actor, "edit_verifier", bug, before=before,
                          after={"verifier": verifier, "status": Bug.Status.VALIDATING, "job": job_id})
    return job_id


def enqueue_reruns(actor, bug: Bug, n: int) -> str:
    """n more clean and n more buggy verifier runs, queued; the audit event remembers how many
    counted runs there were, so the page can show this rerun's progress."""
    from episodes.validation import jobs
    before = bug.verifier_runs().count()
    job_id = jobs.enqueue_reruns(bug, n)
    AuditEvent.record(actor, "enqueue_reruns", bug, before={"runs": before},
                      after={"n": n, "job": job_id, "expect_runs": before + 2 * n})
    return job_id


def stabilize_candidates(data: dict, target: float):
    """The bugs of a filter a stricter flake target applies to: valid or approved, not yet
    below it (a flaky verifier already disagreed: more runs cannot make it stable)."""
    from django.db.models import Q

    return (filtered_bugs(data).filter(status__in=[Bug.Status.VALID, Bug.Status.APPROVED])
            .filter(Q(flake_upper_bound__isnull=True) | Q(flake_upper_bound__gte=target)))


def enqueue_stabilize(actor, bugs, target: float) -> list[int]:
    """Sequential reruns of each bug (up to BULK_CAP) until stable at < ``target``, queued
    and audited. Returns the bug ids queued."""
    from episodes.validation import jobs
    if not 0 < target < 1:
        raise ValueError("a flake-rate target is between 0% and 100%")
    queued = []
    for bug in list(bugs[:BULK_CAP]):
        if bug.status not in (Bug.Status.VALID, Bug.Status.APPROVED):
            raise ValueError(f"bug {bug.pk} is {bug.status}: only valid or approved bugs can be made stable")
        job_id = jobs.enqueue_stabilize(bug, target)
        AuditEvent.record(actor, "enqueue_stabilize", bug, before={"flake_target": bug.flake_target,
                                                                   "flake_upper_bound": bug.flake_upper_bound},
                          after={"flake_target": target, "job": job_id})
        queued.append(bug.pk)
    return queued


@dataclass
class RerunProgress:
    n: int
    done: int
    total: int
    state: str  # queued, started, finished, failed, unknown
    requested_at: object

    @property
    def active(self) -> bool:
        return self.state in ("queued", "started", "deferred", "scheduled") and self.done < self.total


def rerun_progress(bug: Bug, counted_runs: int) -> RerunProgress | None:
    """The latest rerun request of ``bug`` and how far it got (None if never rerun)."""
    event = (AuditEvent.objects.filter(target_type="episodes.bug", target_id=str(bug.pk), action="enqueue_reruns")
             .order_by("-id").first())
    if event is None or "job" not in event.after:
        return None
    n = int(event.after.get("n", 0))
    done = max(0, min(2 * n, counted_runs - int(event.before.get("runs", 0))))
    return RerunProgress(n, done, 2 * n, _job_state(event.after["job"], done >= 2 * n), event.created_at)


def _job_state(job_id: str, complete: bool) -> str:
    import django_rq
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        status = Job.fetch(job_id, connection=django_rq.get_connection("verify")).get_status()
        return str(getattr(status, "value", status))
    except NoSuchJobError:
        return "finished" if complete else "unknown"
    except Exception:  # Redis down: the page says so rather than failing
        return "unknown"


# --- flaky triage -----------------------------------------------------------------------


def flaky_queue():
    """Flaky verifiers, worst first: the ones that flip most, then the least evidence."""
    return (Bug.objects.filter(status=Bug.Status.FLAKY).select_related("repository")
            .only("id", "target", "status", "quarantined", "clean_runs", "clean_passes", "buggy_runs",
                  "buggy_fails", "flip_rate", "flake_upper_bound", "validation_progress", "updated_at",
                  "repository__name")
            .order_by(F("flip_rate").desc(nulls_last=True), "-id"))


def run_grid(bug: Bug) -> dict:
    """The counted verifier runs per side, in run order, and for each side one run that went
    as expected next to one that did not (the logs worth comparing)."""
    runs = list(bug.verifier_runs().only(  # bug_id too: the related manager sets .bug on each row
        "id", "bug_id", "code", "scope", "purpose", "outcome", "exit_code", "killed_by", "duration_s", "seed",
        "log_excerpt", "created_at",
    ))
    sides = {"clean": [], "buggy": []}
    for run in runs:
        run.expected = run.outcome == ("failed" if run.code == "buggy" else "passed")
        sides["buggy" if run.code == "buggy" else "clean"].append(run)
    pairs = []
    for side, side_runs in sides.items():
        good = next((r for r in side_runs if r.expected), None)
        bad = next((r for r in side_runs if not r.expected), None)
        if good and bad:
            pairs.append({"side": side, "expected": good, "unexpected": bad})
    return {"sides": sides, "pairs": pairs, "count": len(runs)}


def other_runs(bug: Bug):
    """Runs that are not counted verifier runs (suite runs, older verifiers), newest first."""
    counted = bug.verifier_runs().values("id")
    return bug.runs.exclude(id__in=counted).order_by("-id")


def test_statuses(bug: Bug) -> list[dict]:
    """FAIL_TO_PASS / PASS_TO_PASS with each test's status on clean code (the baseline) and on
    buggy code (the latest buggy suite run)."""
    suite = (bug.runs.filter(code=VerificationRun.Code.BUGGY, scope__in=["suite", "tests"])
             .only("bug_id", "tests").order_by("-id").first())
    buggy = suite.tests if suite else {}
    baseline = bug.repository.baseline_tests or {}
    rows = []
    for kind, tests in (("F2P", bug.fail_to_pass), ("P2P", bug.pass_to_pass)):
        for test in tests:
            clean = (baseline.get(test) or {}).get("status", "missing" if baseline else "")
            rows.append({"test": test, "kind": kind, "clean": clean,
                         "buggy": buggy.get(test, "missing" if suite else "")})
    return rows


def review_aggregate(reviews: list) -> dict | None:
    """Several reviewers' rubrics as one line, with the outcome SWE-bench Verified's rule gives."""
    if not reviews:
        return None
    worst_spec = max(r.underspecified for r in reviews)
    worst_fix = max(r.rejects_valid_fixes for r in reviews)
    other = any(r.other_major_issue for r in reviews)
    rejects = sum(r.verdict == Review.Verdict.REJECT for r in reviews)
    return {
        "reviewers": len(reviews), "approvals": len(reviews) - rejects, "rejections": rejects,
        "underspecified": worst_spec, "rejects_valid_fixes": worst_fix, "other_major_issue": other,
        "outcome": Review.outcome(reviews),
    }
