from django.db.models import Count
from django.shortcuts import render
from django.views.decorators.http import require_GET

from episodes.models import Bug, Episode, Repository
from training.models import TrainingRun

from bugforge_web.queues import queue_lengths, worker_count


def _counts() -> dict:
    by_status = dict(Bug.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {
        "repositories": Repository.objects.count(),
        "bugs": sum(by_status.values()),
        "bugs_by_status": [(s.label, by_status.get(s.value, 0), s.value) for s in Bug.Status],
        "episodes": Episode.objects.count(),
        "solved": Episode.objects.filter(status=Episode.Status.SOLVED).count(),
        "training_runs": TrainingRun.objects.count(),
        "queues": queue_lengths(),
        "workers": worker_count(),
    }


@require_GET
def home(request):
    return render(request, "home.html", {"counts": _counts()})


@require_GET
def home_counts(request):
    """The live part of the home page, polled by htmx."""
    return render(request, "partials/home_counts.html", {"counts": _counts()})
