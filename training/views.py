from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from .models import Dataset, TrainingRun


@require_GET
def run_list(request):
    return render(
        request,
        "training/run_list.html",
        {"runs": TrainingRun.objects.select_related("dataset")[:100], "datasets": Dataset.objects.all()[:50]},
    )


@require_GET
def run_detail(request, pk):
    run = get_object_or_404(TrainingRun, pk=pk)
    series: dict[str, dict[str, list]] = {}
    for step, name, value in run.metrics.values_list("step", "name", "value").order_by("name", "step"):
        s = series.setdefault(name, {"x": [], "y": []})
        s["x"].append(step)
        s["y"].append(value)
    return render(request, "training/run_detail.html", {"run": run, "series": series})
