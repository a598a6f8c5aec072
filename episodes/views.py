"""Thin views: read rows, or enqueue a job and say so. The work lives in models and jobs."""
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from bugforge_web.auth import staff_required

from . import injection, jobs
from .forms import ReviewForm
from .engine.mutators import OPERATORS
from .models import AuditEvent, Bug, Episode, InjectionBatch, LLMEndpoint, Repository, Teacher


def _back(request, default: str) -> str:
    """Where a form asked to go back to, if it is on this site (no open redirects)."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


@require_GET
def repository_list(request):
    return render(request, "episodes/repository_list.html", {"repositories": Repository.objects.all()})


@require_GET
def repository_detail(request, pk):
    repo = get_object_or_404(Repository, pk=pk)
    baseline = sorted(repo.baseline_tests.items())
    return render(
        request,
        "episodes/repository_detail.html",
        {
            "repo": repo,
            "baseline": baseline,
            "figures": injection.figures(repo),
            "batches": repo.batches.with_progress()[:10],
            "methods": injection.METHODS,
            "endpoints": LLMEndpoint.objects.only("name", "model"),
            "operators": sorted(OPERATORS),
        },
    )


@staff_required
def repository_inject(request, pk):
    repo = get_object_or_404(Repository, pk=pk)
    method = request.POST.get("method", Bug.Method.PROCEDURAL)
    try:
        count = int(request.POST.get("count") or 10)
    except ValueError:
        count = 0
    endpoint = LLMEndpoint.objects.filter(pk=request.POST.get("endpoint") or None).first()
    if not 1 <= count <= 1000:
        messages.error(request, "Ask for between 1 and 1000 candidates.")
    elif method not in injection.METHODS:
        messages.error(request, f"Unknown injection method {method!r}.")
    elif method in (Bug.Method.LLM_MODIFY, Bug.Method.LLM_REWRITE) and endpoint is None:
        messages.error(request, "LLM injection needs an endpoint: add one in the admin first.")
    else:
        operators = [o for o in request.POST.getlist("operators") if o in OPERATORS]
        batch = injection.start_batch(repo, method, count, user=request.user, operators=operators, endpoint=endpoint)
        AuditEvent.record(request.user, "start_injection", batch, after={"method": method, "count": count})
        messages.info(request, f"Injection batch {batch.pk} queued: {count} {method} candidate(s).")
    return redirect(repo)


@require_GET
def batch_progress(request, pk):
    """One injection batch's live progress, polled by htmx while it runs."""
    batch = get_object_or_404(InjectionBatch.objects.with_progress(), pk=pk)
    return render(request, "episodes/partials/batch_row.html", {"batch": batch})


@staff_required
def repository_baseline(request, pk):
    repo = get_object_or_404(Repository, pk=pk)
    jobs.enqueue_baseline(repo)
    AuditEvent.record(request.user, "enqueue_baseline", repo)
    messages.info(request, f"Baseline of {repo} queued on the verify queue.")
    return redirect(repo)


@require_GET
def bug_list(request):
    bugs = Bug.objects.select_related("repository").only(
        "id", "status", "method", "operator", "target", "created_at", "flake_upper_bound", "repository__name"
    )
    filters = {k: request.GET.get(k, "") for k in ("status", "repository", "method", "q")}
    if filters["status"]:
        bugs = bugs.filter(status=filters["status"])
    if filters["repository"]:
        bugs = bugs.filter(repository__name=filters["repository"])
    if filters["method"]:
        bugs = bugs.filter(method=filters["method"])
    if filters["q"]:
        bugs = bugs.filter(Q(problem_statement__icontains=filters["q"]) | Q(target__icontains=filters["q"]))
    page = Paginator(bugs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "episodes/bug_list.html",
        {
            "page": page,
            "filters": filters,
            "statuses": Bug.Status.choices,
            "methods": Bug.Method.choices,
            "repositories": Repository.objects.values_list("name", flat=True),
        },
    )


@require_GET
def bug_detail(request, pk):
    bug = get_object_or_404(Bug.objects.select_related("repository"), pk=pk)
    return render(
        request,
        "episodes/bug_detail.html",
        {
            "bug": bug,
            "runs": bug.runs.all(),
            "episodes": bug.episodes.select_related("teacher"),
            "reviews": bug.reviews.select_related("reviewer"),
            "review_form": ReviewForm(),
            "history": AuditEvent.objects.filter(target_type="episodes.bug", target_id=str(bug.pk)).select_related("actor")[:50],
        },
    )


@staff_required
def bug_review(request, pk):
    bug = get_object_or_404(Bug, pk=pk)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Review not saved: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    else:
        try:
            bug.review(request.user, **form.cleaned_data)
            messages.info(request, f"Bug {bug.pk} is now {bug.status}.")
        except ValueError as exc:
            messages.error(request, str(exc))
    return redirect(bug)


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


@require_GET
def bug_progress(request, pk):
    """Live validation status, polled by htmx while a job runs."""
    bug = get_object_or_404(Bug, pk=pk)
    return render(request, "episodes/partials/bug_progress.html", {"bug": bug})


@staff_required
def bug_validate(request, pk):
    bug = get_object_or_404(Bug, pk=pk)
    before = bug.status
    jobs.enqueue_validation(bug)
    AuditEvent.record(request.user, "enqueue_validation", bug, before={"status": before}, after={"status": "validating"})
    messages.info(request, f"Validation of bug {bug.pk} queued.")
    return redirect(bug)


@staff_required
def bug_rerun(request, pk):
    bug = get_object_or_404(Bug, pk=pk)
    n = max(1, min(int(request.POST.get("n") or settings.BUGFORGE_FLAKY_RERUNS), 100))
    jobs.enqueue_reruns(bug, n)
    AuditEvent.record(request.user, "enqueue_reruns", bug, after={"n": n})
    messages.info(request, f"{n} more clean and {n} more buggy runs of bug {bug.pk} queued.")
    return redirect(_back(request, bug.get_absolute_url()))


@require_GET
def flaky_list(request):
    bugs = Bug.objects.filter(status=Bug.Status.FLAKY).select_related("repository").order_by("-flip_rate", "-id")
    return render(request, "episodes/flaky_list.html", {"bugs": bugs[:200]})


@require_GET
def episode_list(request):
    return render(
        request,
        "episodes/episode_list.html",
        {
            "teachers": Teacher.objects.all(),
            "episodes": Episode.objects.select_related("teacher", "bug")[:100],
        },
    )


@require_GET
def sandbox_status(request):
    from .sandboxes import probe_reports

    return render(
        request,
        "episodes/sandbox_status.html",
        {"reports": probe_reports(), "selected": settings.BUGFORGE_SANDBOX, "work_dir": settings.BUGFORGE_WORK_DIR},
    )
