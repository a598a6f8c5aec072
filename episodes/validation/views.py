"""A bug's validation: queue it again, its live status, and the sandbox backends' status page."""
from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from bugforge_web.auth import staff_required
from episodes.models import AuditEvent, Bug
from episodes.validation import jobs


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
