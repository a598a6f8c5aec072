"""Curation and flaky-triage pages: thin views over episodes.curation.actions."""
from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from bugforge_web.auth import staff_required

from episodes.curation import actions as curation
from episodes.engine.inject.mutators import OPERATORS
from episodes.curation.forms import BugFilterForm, BulkReviewForm, ReviewForm, VerifierForm
from episodes.models import AuditEvent, Bug, LLMEndpoint, Repository, Review


def _back(request, default: str) -> str:
    """Where a form asked to go back to, if it is on this site (no open redirects)."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


def _filter(request) -> tuple[BugFilterForm, dict]:
    present = {k: v for k, v in request.GET.items() if k in BugFilterForm.FIELDS}
    form = BugFilterForm(present or None)
    return form, form.filter_data()


def _has_url(name: str) -> bool:
    try:
        reverse(name, args=[0])
        return True
    except NoReverseMatch:
        return False


def _history(bug):
    return AuditEvent.objects.filter(target_type="episodes.bug", target_id=str(bug.pk)).select_related("actor")[:50]


# --- bugs -------------------------------------------------------------------------------


@require_GET
def bug_list(request):
    form, data = _filter(request)
    bugs = curation.filtered_bugs(data)
    page = curation.paginate(curation.list_rows(bugs), request.GET.get("page"), counted=bugs)
    return render(request, "episodes/bug_list.html", {
        "columns": _sort_columns(data),
        "form": form,
        "filters": data,
        "qs": curation.query_string(data),
        "page": page,
        "repositories": Repository.objects.order_by("name").values_list("name", flat=True),
        "operators": sorted(OPERATORS),
        "bulk_cap": curation.BULK_CAP,
    })


COLUMNS = [("#", "id"), ("repository", "repository"), ("method", "method"), ("target", None), ("status", "status"),
           ("reviews", None), ("difficulty", "difficulty"), ("flake bound", "bound"),
           ("solve rate", "solve"), ("realism", "realism"), ("created", "created")]


def _sort_columns(data: dict) -> list[tuple]:
    """Table headers as (label, link that sorts by it or flips its direction, arrow)."""
    current = data.get("sort") or curation.DEFAULT_SORT
    rest = {k: v for k, v in data.items() if k != "sort"}
    columns = []
    for label, key in COLUMNS:
        if key is None:
            columns.append((label, None, ""))
            continue
        arrow = "↓" if current == f"-{key}" else "↑" if current == key else ""
        flipped = key if current == f"-{key}" else f"-{key}"
        columns.append((label, "?" + curation.query_string(rest, sort=flipped), arrow))
    return columns


@require_GET
def bug_detail(request, pk):
    bug = get_object_or_404(Bug.objects.select_related("repository"), pk=pk)
    form, data = _filter(request)
    previous_id, next_id = curation.neighbours(bug, data)
    qs = curation.query_string(data)
    reviews = list(bug.reviews.select_related("reviewer").order_by("created_at"))
    mine = next((r for r in reviews if r.reviewer_id == request.user.pk), None)
    grid = curation.run_grid(bug)
    from episodes.curation import difficulty
    return render(request, "episodes/bug_detail.html", {
        "bug": bug,
        "solve_overall": difficulty.fmt(difficulty.estimate(bug.solve_successes, bug.solve_attempts)),
        "solve_per_solver": [(s, difficulty.fmt(e)) for s, e in difficulty.per_solver(bug.pk).items()]
        if bug.solve_attempts else [],  # one query, only for a measured bug
        # the staff-only "Rewrite statement" form: the endpoints (a lazy queryset: read only for staff)
        "statement_endpoints": LLMEndpoint.objects.only("name", "model"),
        "statement_styles": Bug.StatementStyle.choices,
        "qs": qs,
        "previous_id": previous_id,
        "next_id": next_id,
        # after a review the reviewer moves on to the next bug of the filter (or back to the list)
        "after_review": (reverse("bug_detail", args=[next_id]) if next_id else reverse("bug_list")) + (f"?{qs}" if qs else ""),
        "grid": grid,
        "other_runs": curation.other_runs(bug).only(
            "id", "bug_id", "code", "scope", "purpose", "outcome", "exit_code", "killed_by", "duration_s", "seed", "log_excerpt",
        ),
        "tests": curation.test_statuses(bug),
        "episodes": bug.episodes.select_related("teacher").only(
            "id", "bug_id", "status", "reward", "created_at", "cost_usd", "teacher__name",
        ).order_by("-created_at")[:100],
        "episode_links": _has_url("episode_detail"),
        "reviews": reviews,
        "aggregate": curation.review_aggregate(reviews),
        "page_kind": "detail",
        "review_form": ReviewForm(instance=mine) if mine else ReviewForm(),
        "verifier_form": VerifierForm(initial={"verifier": bug.verifier}),
        "history": _history(bug),
        "flake_target": f"{settings.BUGFORGE_FLAKE_TARGET:.1%}",
        "stable": bug.stable_at(settings.BUGFORGE_FLAKE_TARGET),
    })


@staff_required
def bug_review(request, pk):
    bug = get_object_or_404(Bug, pk=pk)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Review not saved: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect(bug)
    try:
        bug.review(request.user, **form.cleaned_data)
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect(bug)
    messages.info(request, f"Bug {bug.pk}: your {form.cleaned_data['verdict']} is saved; the bug is now {bug.status}.")
    return redirect(_back(request, bug.get_absolute_url()))


@require_GET
def bug_bulk(request):
    """Confirmation of a bulk review over the current filter: what it will touch, counted."""
    form, data = _filter(request)
    verdict = request.GET.get("action", "approve")  # not "verdict": that is a filter field
    if verdict not in Review.Verdict.values:
        verdict = "approve"
    candidates = curation.bulk_candidates(data)
    ids = list(candidates.values_list("id", flat=True)[:curation.BULK_CAP + 1])
    qs = curation.query_string(data)
    return render(request, "episodes/bug_bulk.html", {
        "recent_bulk": curation.recent_bulk_reviews(),
        "form": form,
        "filters": data,
        "qs": qs,
        "verdict": verdict,
        "ids": ids[:curation.BULK_CAP],
        "more": len(ids) > curation.BULK_CAP,
        "bulk_cap": curation.BULK_CAP,
        "matching": curation.filtered_bugs(data).order_by().values("pk")[:curation.COUNT_CAP].count(),
        "bulk_form": BulkReviewForm(initial={"verdict": verdict, "ids": ",".join(map(str, ids[:curation.BULK_CAP]))}),
    })


@staff_required
def bug_bulk_apply(request):
    _, data = _filter(request)
    qs = curation.query_string(data)
    back = reverse("bug_list") + (f"?{qs}" if qs else "")
    form = BulkReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Nothing changed: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect(back)
    ids = form.cleaned_data["ids"]
    try:
        done = curation.bulk_review(request.user, ids, data, form.cleaned_data["verdict"],
                                    notes=form.cleaned_data["notes"], difficulty=form.cleaned_data["difficulty"])
    except ValueError as exc:  # e.g. a reject without a reason: nothing was changed (one transaction)
        messages.error(request, f"Nothing changed: {exc}")
        return redirect(back)
    skipped = len(ids[:curation.BULK_CAP]) - len(done)
    messages.info(request, f"{curation.PAST[form.cleaned_data['verdict']].capitalize()} {len(done)} bug(s)"
                  + (f"; {skipped} changed since you confirmed and were left alone" if skipped else "")
                  + ". To undo it: Bulk review → recent bulk reviews.")
    return redirect(back)


@staff_required
def audit_undo(request, pk):
    """Undo a review or a bulk review from its audit event (itself audited)."""
    event = get_object_or_404(AuditEvent, pk=pk)
    try:
        left = curation.undo(request.user, event)
    except (ValueError, Bug.DoesNotExist) as exc:
        messages.error(request, f"Nothing undone: {exc}")
    else:
        messages.info(request, f"Undone {event.action.replace('_', ' ')} {event.pk}"
                      + (f"; left as they are: {'; '.join(left)}" if left else "") + ".")
    target = reverse("bug_bulk") if event.target_id == "bulk" else reverse("bug_detail", args=[event.target_id])
    return redirect(_back(request, target))


@staff_required
def bug_quarantine(request, pk):
    bug = get_object_or_404(Bug, pk=pk)
    bug.set_quarantined(request.user, request.POST.get("quarantined") == "1")
    messages.info(request, f"Bug {bug.pk} {'quarantined' if bug.quarantined else 'back from quarantine'}.")
    return redirect(_back(request, bug.get_absolute_url()))


@staff_required
def bug_mark_stable(request, pk):
    bug = get_object_or_404(Bug, pk=pk)
    try:
        bug.mark_stable(request.user, request.POST.get("reason", ""))
        messages.info(request, f"Bug {bug.pk} marked stable.")
    except ValueError as exc:
        messages.error(request, str(exc))
    return redirect(_back(request, bug.get_absolute_url()))


@staff_required
def bug_rerun(request, pk):
    bug = get_object_or_404(Bug, pk=pk)
    try:
        n = int(request.POST.get("n") or settings.BUGFORGE_FLAKY_RERUNS)
    except ValueError:
        n = 0
    if not 1 <= n <= 100:
        messages.error(request, "Rerun between 1 and 100 times per side.")
    elif bug.status == Bug.Status.VALIDATING:
        messages.error(request, f"Bug {bug.pk} is being validated; rerun it once the verdict is in.")
    else:
        curation.enqueue_reruns(request.user, bug, n)
        messages.info(request, f"{n} more clean and {n} more buggy runs of bug {bug.pk} queued.")
    return redirect(_back(request, bug.get_absolute_url()))


def _target(request) -> float | None:
    """The flake-rate target posted as a percentage ("1" = 1%), or None when unusable."""
    try:
        target = float(request.POST.get("target_percent", "")) / 100
    except ValueError:
        return None
    return target if 0 < target < 1 else None


@staff_required
def bug_stabilize(request, pk):
    bug = get_object_or_404(Bug, pk=pk)
    target = _target(request)
    if target is None:
        messages.error(request, "Give the flake-rate target as a percentage between 0 and 100.")
    else:
        try:
            curation.enqueue_stabilize(request.user, [bug], target)
            messages.info(request, f"Reruns of bug {bug.pk} queued until it is stable at < {target:.1%}.")
        except ValueError as exc:
            messages.error(request, str(exc))
    return redirect(_back(request, bug.get_absolute_url()))


@staff_required
def bugs_stabilize(request):
    """A stricter flake target for every valid/approved bug of the current filter."""
    _, data = _filter(request)
    qs = curation.query_string(data)
    target = _target(request)
    if target is None:
        messages.error(request, "Give the flake-rate target as a percentage between 0 and 100.")
    else:
        queued = curation.enqueue_stabilize(request.user, curation.stabilize_candidates(data, target), target)
        messages.info(request, f"Reruns of {len(queued)} bug(s) queued until stable at < {target:.1%}"
                               + (f" (at most {curation.BULK_CAP} at a time)" if len(queued) >= curation.BULK_CAP else "")
                               + ".")
    return redirect(reverse("bug_list") + (f"?{qs}" if qs else ""))


@staff_required
def bug_edit_verifier(request, pk):
    bug = get_object_or_404(Bug, pk=pk)
    form = VerifierForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Verifier not saved: it cannot be empty.")
    else:
        try:
            curation.edit_verifier(request.user, bug, form.cleaned_data["verifier"])
            messages.info(request, f"Verifier of bug {bug.pk} saved; validation queued.")
        except ValueError as exc:
            messages.error(request, f"Verifier not saved: {exc}.")
    return redirect(_back(request, bug.get_absolute_url()))


# --- flaky triage -----------------------------------------------------------------------


def _queue_context(request):
    queue = curation.flaky_queue()
    page = curation.paginate(queue, request.GET.get("page"), counted=queue)
    return {"bugs": page.rows, "page": page, "quarantined": sum(b.quarantined for b in page.rows)}


@require_GET
def flaky_list(request):
    return render(request, "episodes/flaky_list.html", _queue_context(request))


@require_GET
def flaky_rows(request):
    """The queue's rows, polled by htmx so new flaky verdicts and reruns show up live."""
    return render(request, "episodes/partials/flaky_rows.html", _queue_context(request))


def _triage_context(bug):
    grid = curation.run_grid(bug)
    rerun = curation.rerun_progress(bug, grid["count"])
    if rerun is not None and rerun.active:
        bug.measure_flakiness()  # the stored figures are the last job's: show the runs so far
    return {"bug": bug, "grid": grid, "rerun": rerun}


@require_GET
def flaky_detail(request, pk):
    bug = get_object_or_404(Bug.objects.select_related("repository"), pk=pk)
    return render(request, "episodes/flaky_detail.html", {
        **_triage_context(bug),
        "verifier_form": VerifierForm(initial={"verifier": bug.verifier}),
        "history": _history(bug),
        "default_reruns": settings.BUGFORGE_FLAKY_RERUNS,
    })


@require_GET
def flaky_live(request, pk):
    """Figures, rerun progress and the run grid of one bug, polled while a rerun runs."""
    bug = get_object_or_404(Bug.objects.select_related("repository"), pk=pk)
    return render(request, "episodes/partials/flaky_live.html", _triage_context(bug))
