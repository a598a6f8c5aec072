"""The dashboards page: every chart for one scope (a repository, a date range)."""
from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_GET

from episodes.dashboards import figures
from episodes.dashboards.forms import DashboardFilterForm
from episodes.models import Repository


@require_GET
def dashboards(request):
    form = DashboardFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    scope = figures.Scope(data.get("repository") or "", data.get("since"), data.get("until"))
    return render(
        request,
        "dashboards.html",
        {
            "form": form,
            "scope": scope,
            "repositories": Repository.objects.order_by("name").values_list("name", flat=True),
            **figures.all_charts(scope, use_cache=request.GET.get("fresh") != "1"),
            "sandbox_backend": settings.BUGFORGE_SANDBOX,
        },
    )
