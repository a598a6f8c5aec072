"""Repository pages: register, prepare, re-pin, archive, baseline; thin views over intake.py."""
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from bugforge_web.auth import staff_required
from episodes.engine.git.workspace import GitError
from episodes.engine.inject import procedural
from episodes.engine.inject.issue_text import STYLES
from episodes.engine.inject.mutators import OPERATORS
from episodes.injection import batches as injection
from episodes.models import AuditEvent, LLMEndpoint, Repository
from episodes.repositories import intake as repo_intake
from episodes.repositories.forms import AddRepositoryForm
from episodes.validation import jobs


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
def repository_baseline(request, pk):
    repo = get_object_or_404(Repository, pk=pk)
    jobs.enqueue_baseline(repo)
    AuditEvent.record(request.user, "enqueue_baseline", repo)
    messages.info(request, f"Baseline of {repo} queued on the verify queue.")
    return redirect(repo)
