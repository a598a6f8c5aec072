"""Thin views: read rows, or enqueue a job and say so. The work lives in models and jobs."""
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from bugforge_web.auth import staff_required

from episodes.injection import batches as injection

from episodes.validation import jobs

from episodes.repositories import intake as repo_intake
from episodes.engine.git.workspace import GitError
from episodes.forms import AddRepositoryForm, InjectOptionsForm
from episodes.engine.inject import procedural
from episodes.engine.inject.issue_text import STYLES
from episodes.engine.inject.mutators import OPERATORS
from episodes.models import AuditEvent, Bug, InjectionBatch, LLMEndpoint, Repository


@require_GET
def repository_list(request):
    archived = request.GET.get("archived") == "1"
    repositories = Repository.objects.with_figures().select_related("previous_pin")
    if not archived:
        repositories = repositories.filter(archived_at__isnull=True)
    return render(request, "episodes/repository_list.html", {"repositories": repositories, "archived": archived})


@require_GET
def repository_new(request):
    return render(request, "episodes/repository_add.html", {"form": AddRepositoryForm()})


@staff_required
def repository_add(request):
    form = AddRepositoryForm(request.POST)
    if not form.is_valid():
        return render(request, "episodes/repository_add.html", {"form": form}, status=400)
    repo = repo_intake.register(form.request())
    repo_intake.enqueue_prepare(repo, first_batch=form.cleaned_data["first_batch"] or 0)
    AuditEvent.record(request.user, "add_repository", repo, after={"source": repo.source, "ref": repo.ref,
                                                                  "overridden": repo.overridden})
    messages.info(request, f"{repo.name} added: fetching, building its environment and running its baseline.")
    return redirect(repo)


@require_GET
def repository_progress(request, pk):
    """The preparation's live progress, polled by htmx while it runs."""
    repo = get_object_or_404(Repository, pk=pk)
    response = render(request, "episodes/partials/repository_progress.html", {"repo": repo})
    if not repo.busy and request.headers.get("HX-Request"):
        response["HX-Refresh"] = "true"  # finished: the page shows the report
    return response


@staff_required
def repository_prepare(request, pk):
    repo = get_object_or_404(Repository, pk=pk)
    repo_intake.enqueue_prepare(repo)
    AuditEvent.record(request.user, "prepare_repository", repo)
    messages.info(request, f"{repo.name}: environment and baseline queued again.")
    return redirect(repo)


@staff_required
def repository_repin(request, pk):
    repo = get_object_or_404(Repository, pk=pk)
    try:
        new = repo_intake.repin(repo, request.POST.get("ref", "").strip())
    except (ValueError, GitError) as exc:
        messages.error(request, f"Not re-pinned: {exc}")
        return redirect(repo)
    repo_intake.enqueue_prepare(new)
    AuditEvent.record(request.user, "repin_repository", new, before={"pin": repo.pinned_commit, "repository": repo.name},
                      after={"pin": new.pinned_commit or new.ref})
    messages.info(request, f"{new.name}: a new pin of {repo.source}; {repo.name} and its bugs stay as they are.")
    return redirect(new)


@staff_required
def repository_archive(request, pk):
    repo = get_object_or_404(Repository, pk=pk)
    repo.archive()
    AuditEvent.record(request.user, "archive_repository", repo)
    messages.info(request, f"{repo.name} removed from use: no new batches; its {repo.bugs.count()} bug(s) stay reproducible.")
    return redirect("repository_list")


@require_GET
def repository_detail(request, pk):
    repo = get_object_or_404(Repository, pk=pk)
    baseline = sorted(repo.baseline_tests.items())
    return render(
        request,
        "episodes/repository_detail.html",
        {
            "repo": repo,
            "counts": repo.baseline_counts,
            "coverage": repo.coverage_summary,
            "baseline": baseline,
            "figures": injection.figures(repo),
            "batches": repo.batches.with_progress()[:10],
            "methods": injection.METHODS,
            "endpoints": LLMEndpoint.objects.only("name", "model"),
            "operators": sorted(OPERATORS),
            "statement_styles": STYLES,
            "planning_defaults": {"min_realism": procedural.MIN_REALISM, "max_per_function": procedural.MAX_PER_FUNCTION},
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
    options_form, options = InjectOptionsForm(request.POST), None
    if options_form.is_valid():
        try:
            options = options_form.batch_options(endpoint)
        except ValidationError as exc:
            options_form.add_error(None, exc)
    if repo.archived_at:
        messages.error(request, f"{repo.name} is removed from use; re-pin it to plant new bugs.")
    elif not 1 <= count <= 1000:
        messages.error(request, "Ask for between 1 and 1000 candidates.")
    elif method not in injection.METHODS:
        messages.error(request, f"Unknown injection method {method!r}.")
    elif method in injection.LLM_METHODS and endpoint is None:
        messages.error(request, "LLM injection needs an endpoint: add one in the admin first.")
    elif options is None:
        messages.error(request, "; ".join(f"{'' if f == '__all__' else f.replace('_', ' ') + ': '}{e}"
                                          for f, errs in options_form.errors.items() for e in errs))
    else:
        operators = [o for o in request.POST.getlist("operators") if o in OPERATORS]
        batch = injection.start_batch(repo, method, count, user=request.user, operators=operators, endpoint=endpoint,
                                      **options)
        AuditEvent.record(request.user, "start_injection", batch, after={"method": method, "count": count, **{
            k: getattr(v, "name", v) for k, v in options.items()}})
        messages.info(request, f"Injection batch {batch.pk} queued: {count} {method} candidate(s).")
    return redirect(repo)


@require_GET
def batch_progress(request, pk):
    """One injection batch's live progress, polled by htmx while it runs."""
    batch = get_object_or_404(InjectionBatch.objects.with_progress(), pk=pk)
    response = render(request, "episodes/partials/batch_row.html", {"batch": batch})
    if request.htmx and batch.status not in ("queued", "running") and not batch.settling:
        # finished and every bug settled: reload the page once, so its figures (bugs, yield,
        # "no injected bug yet") catch up; the reloaded row no longer polls
        response["HX-Refresh"] = "true"
    return response


@staff_required
def repository_baseline(request, pk):
    repo = get_object_or_404(Repository, pk=pk)
    jobs.enqueue_baseline(repo)
    AuditEvent.record(request.user, "enqueue_baseline", repo)
    messages.info(request, f"Baseline of {repo} queued on the verify queue.")
    return redirect(repo)


@require_GET
def bug_status_cell(request, pk):
    """A bug list row's status, polled by htmx while the bug is still being validated."""
    bug = get_object_or_404(Bug.objects.only("pk", "status", "quarantined"), pk=pk)
    return render(request, "episodes/partials/bug_status_cell.html", {"bug": bug})


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


@require_GET
def sandbox_status(request):
    from episodes.sandboxes import probe_reports

    return render(
        request,
        "episodes/sandbox_status.html",
        {"reports": probe_reports(), "selected": settings.BUGFORGE_SANDBOX, "work_dir": settings.BUGFORGE_WORK_DIR},
    )
