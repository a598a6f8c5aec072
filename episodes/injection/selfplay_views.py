"""Self-play pages: the list with a staff-only start form, and one run's rounds (a plotly chart of
the band hit rate per round and a table), refreshed by htmx while it runs."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from bugforge_web.auth import staff_required

from episodes.injection import selfplay
from episodes.models import AuditEvent, Repository, SelfPlay


class StartForm(forms.Form):
    repository = forms.ModelChoiceField(Repository.objects.filter(status=Repository.Status.READY).order_by("name"))
    solver = forms.CharField(max_length=300, help_text='"teacher:<name>" or "checkpoint:<model dir>"')
    band_low = forms.FloatField(min_value=0, max_value=1, initial=0.2)
    band_high = forms.FloatField(min_value=0, max_value=1, initial=0.8)
    rounds = forms.IntegerField(min_value=1, max_value=50, initial=4)
    bugs_per_round = forms.IntegerField(min_value=1, max_value=200, initial=8)
    attempts_per_bug = forms.IntegerField(min_value=1, max_value=32, initial=4)

    def clean(self):
        data = super().clean()
        if data.get("band_low") is not None and data.get("band_high") is not None and data["band_low"] > data["band_high"]:
            self.add_error("band_high", "the band's high end must not be below its low end")
        problem = selfplay.solver_problem(data.get("solver") or "")
        if problem:
            self.add_error("solver", problem)
        return data


def _list(request, form=None, status=200):
    return render(request, "episodes/selfplay_list.html", {
        "selfplays": SelfPlay.objects.select_related("repository", "created_by")[:100],
        "form": form or StartForm(),
    }, status=status)


@require_GET
def selfplay_list(request):
    return _list(request)


@staff_required
def selfplay_start(request):
    form = StartForm(request.POST)
    if not form.is_valid():
        return _list(request, form, status=400)
    d = form.cleaned_data
    try:
        sp = selfplay.start(d["repository"], d["solver"], band=(d["band_low"], d["band_high"]), rounds=d["rounds"],
                            bugs_per_round=d["bugs_per_round"], attempts_per_bug=d["attempts_per_bug"], user=request.user)
    except ValueError as exc:
        form.add_error(None, str(exc))
        return _list(request, form, status=400)
    AuditEvent.record(request.user, "start_selfplay", sp.repository, after={"selfplay": sp.pk, "solver": sp.solver})
    messages.info(request, f"Self-play {sp.pk} queued on the {selfplay.queue_for(sp.solver)} queue.")
    return redirect("selfplay_detail", sp.pk)


@staff_required
def selfplay_cancel(request, pk):
    sp = get_object_or_404(SelfPlay, pk=pk)
    if selfplay.cancel(sp):
        messages.info(request, f"Self-play {sp.pk} stops after the round in progress.")
    return redirect("selfplay_detail", sp.pk)


def _context(sp):
    return {"sp": sp, "chart": selfplay.chart(sp), "live": sp.status in (SelfPlay.Status.QUEUED, SelfPlay.Status.RUNNING)}


@require_GET
def selfplay_detail(request, pk):
    sp = get_object_or_404(SelfPlay.objects.select_related("repository", "created_by"), pk=pk)
    return render(request, "episodes/selfplay_detail.html", _context(sp))


@require_GET
def selfplay_progress(request, pk):
    sp = get_object_or_404(SelfPlay.objects.select_related("repository"), pk=pk)
    return render(request, "episodes/partials/selfplay_rounds.html", _context(sp))
