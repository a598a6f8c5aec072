"""Teachers & endpoints, launching solve batches and watching them: thin views over ``solving``."""
from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from bugforge_web.auth import staff_required

from episodes.solving import episodes as solving
from episodes.engine.llm.ping import ping
from episodes.models import AuditEvent, Episode, LLMEndpoint, SolveBatch, Teacher
from episodes.solving.teacher_forms import EndpointForm, LaunchForm, TeacherForm, approved_count


def _endpoint_facts(endpoint: LLMEndpoint) -> dict:
    """What the audit trail keeps of an endpoint: never the key, only whether one is set."""
    return {"protocol": endpoint.protocol, "base_url": endpoint.base_url, "model": endpoint.model,
            "key": "set" if endpoint.api_key else "unset"}


def _page(request, status=200, **forms):
    teachers = list(Teacher.objects.select_related("endpoint"))
    batches = list(SolveBatch.objects.select_related("teacher")[:10])
    context = {
        "teachers": [(t, solving.teacher_figures(t)) for t in teachers],
        "endpoints": LLMEndpoint.objects.annotate(teacher_count=Count("teacher")),
        "batches": [(b, solving.batch_figures(b)) for b in batches],
        "approved": approved_count(),
        "endpoint_form": forms.get("endpoint_form") or EndpointForm(),
        "teacher_form": forms.get("teacher_form") or TeacherForm(),
        "launch_form": forms.get("launch_form") or LaunchForm(),
    }
    return render(request, "teachers/teacher_list.html", context, status=status)


@require_GET
def teacher_list(request):
    return _page(request)


@require_GET
def teacher_detail(request, pk):
    teacher = get_object_or_404(Teacher.objects.select_related("endpoint"), pk=pk)
    return _teacher_page(request, teacher, TeacherForm(instance=teacher))


def _teacher_page(request, teacher, form, status=200):
    per_bug = list(
        teacher.episodes.filter(status__in=solving.GRADED)  # errors are not attempts
        .values("bug_id", "bug__repository__name")
        .annotate(attempts=Count("id"), solved=Count("id", filter=Q(status=Episode.Status.SOLVED)))
        .order_by("bug_id")
    )
    for row in per_bug:
        row["pass_at_1"] = row["solved"] / row["attempts"]
    return render(request, "teachers/teacher_detail.html", {
        "teacher": teacher, "figures": solving.teacher_figures(teacher), "per_bug": per_bug,
        "batches": [(b, solving.batch_figures(b)) for b in teacher.solve_batches.all()[:20]],
        "problem": solving.teacher_problem(teacher), "form": form,
    }, status=status)


@staff_required
def endpoint_add(request):
    form = EndpointForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, endpoint_form=form)
    endpoint = form.save()
    AuditEvent.record(request.user, "add_endpoint", endpoint, after=_endpoint_facts(endpoint))
    messages.info(request, f"Endpoint {endpoint.name} added. Test its connection below.")
    return redirect(reverse("teacher_list") + "#endpoints")


@require_GET
def endpoint_edit(request, pk):
    endpoint = get_object_or_404(LLMEndpoint, pk=pk)
    return render(request, "teachers/endpoint_edit.html", {"endpoint": endpoint, "form": EndpointForm(instance=endpoint)})


@staff_required
def endpoint_save(request, pk):
    endpoint = get_object_or_404(LLMEndpoint, pk=pk)
    before = _endpoint_facts(endpoint)
    key_before = endpoint.api_key
    form = EndpointForm(request.POST, instance=endpoint)
    if not form.is_valid():
        return render(request, "teachers/endpoint_edit.html", {"endpoint": endpoint, "form": form}, status=400)
    lapsed = endpoint.key_lapses  # new address, old key: the save clears it
    endpoint = form.save()
    after = _endpoint_facts(endpoint)
    if lapsed:
        after["key"] = "cleared: the base URL or protocol changed"
    elif endpoint.api_key != key_before:
        after["key"] = "replaced"
    AuditEvent.record(request.user, "change_endpoint", endpoint, before=before, after=after)
    if lapsed:
        messages.warning(request, f"Endpoint {endpoint.name} saved. Its key was cleared because the endpoint now "
                                  "points elsewhere: enter the key for the new address.")
    else:
        messages.info(request, f"Endpoint {endpoint.name} saved.")
    return redirect(reverse("teacher_list") + "#endpoints")


@staff_required
def endpoint_test(request, pk):
    """A 1-token request to the endpoint (directly, not through the gateway); the result inline."""
    endpoint = get_object_or_404(LLMEndpoint, pk=pk)
    result = ping(endpoint.protocol, endpoint.base_url, endpoint.model, endpoint.api_key)
    if request.htmx:
        return render(request, "teachers/partials/ping_result.html", {"result": result, "endpoint": endpoint})
    if result.ok:
        messages.info(request, f"{endpoint.name}: connection OK (HTTP {result.status_code}, {result.latency_ms:.0f} ms).")
    else:
        messages.error(request, f"{endpoint.name}: connection failed — {result.error}")
    return redirect(reverse("teacher_list") + "#endpoints")


@staff_required
def teacher_add(request):
    form = TeacherForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, teacher_form=form)
    teacher = form.save()
    AuditEvent.record(request.user, "add_teacher", teacher, after={
        "harness": teacher.harness, "endpoint": teacher.endpoint.name, "model": teacher.model,
        "provider": teacher.provider, "terms_allow_training": teacher.terms_allow_training, "config": teacher.config,
    })
    messages.info(request, f"Teacher {teacher.name} added.")
    return redirect(reverse("teacher_list") + "#teachers")


@staff_required
def teacher_save(request, pk):
    """Change a teacher: provenance (e.g. set the terms flag of an imported teacher), endpoint, limits."""
    teacher = get_object_or_404(Teacher, pk=pk)
    fields = ("name", "harness", "endpoint_id", "provider", "model", "terms_allow_training", "config")
    before = {f: getattr(teacher, f) for f in fields}
    form = TeacherForm(request.POST, instance=teacher)
    if not form.is_valid():
        return _teacher_page(request, teacher, form, status=400)
    teacher = form.save()
    after = {f: getattr(teacher, f) for f in fields}
    changed = [f for f in fields if before[f] != after[f]]
    AuditEvent.record(request.user, "change_teacher", teacher, before={f: before[f] for f in changed},
                      after={f: after[f] for f in changed})
    messages.info(request, f"Teacher {teacher.name} saved.")
    return redirect("teacher_detail", teacher.pk)


@staff_required
def solve_launch(request):
    form = LaunchForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, launch_form=form)
    bugs, selection = form.bugs()
    teacher, k = form.cleaned_data["teacher"], form.cleaned_data["k"]
    if selection["ids"]:
        missing = sorted(set(selection["ids"]) - {b.pk for b in bugs})
        if missing:
            form.add_error("ids", f"not approved or not there: {', '.join(map(str, missing))}")
            return _page(request, status=400, launch_form=form)
    try:
        batch = solving.launch(teacher, bugs, k, user=request.user, selection=selection)
    except solving.SolveError as exc:
        form.add_error(None, str(exc))
        return _page(request, status=400, launch_form=form)
    AuditEvent.record(request.user, "launch_solving", batch, after={"teacher": teacher.name, "k": k, **selection,
                                                                   "bugs": len(bugs)})
    messages.info(request, f"Solve batch {batch.pk} queued: {len(bugs)} bug(s) × {k} attempt(s) by {teacher.name}.")
    return redirect("solve_batch_detail", batch.pk)


@staff_required
def solve_batch_cancel(request, pk):
    batch = get_object_or_404(SolveBatch, pk=pk)
    n = solving.cancel(batch)
    AuditEvent.record(request.user, "cancel_solving", batch, after={"cancelled": n})
    messages.info(request, f"{n} queued episode(s) cancelled; running ones finish.")
    return redirect("solve_batch_detail", batch.pk)


@require_GET
def solve_batch_detail(request, pk):
    batch = get_object_or_404(SolveBatch.objects.select_related("teacher", "created_by"), pk=pk)
    episodes = batch.episodes.select_related("bug__repository").order_by("bug_id", "attempt")
    return render(request, "teachers/batch_detail.html", {
        "batch": batch, "figures": solving.batch_figures(batch), "episodes": episodes,
    })


@require_GET
def solve_batch_progress(request, pk):
    """One solve batch's progress panel, polled by htmx until every episode is over. Episodes
    whose job died are failed here too, so a watched batch never sits at "running" forever."""
    batch = get_object_or_404(SolveBatch.objects.select_related("teacher"), pk=pk)
    try:
        batch.episodes.all().sweep_stale()
    except Exception:  # Redis down: the panel still shows what the database knows
        pass
    return render(request, "teachers/partials/batch_progress.html", {"batch": batch, "figures": solving.batch_figures(batch)})
