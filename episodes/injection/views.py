"""Planting a batch from the repository page and its live progress."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from bugforge_web.auth import staff_required
from episodes.engine.inject.mutators import OPERATORS
from episodes.injection import batches as injection
from episodes.injection.forms import InjectOptionsForm
from episodes.models import AuditEvent, Bug, InjectionBatch, LLMEndpoint, Repository


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
