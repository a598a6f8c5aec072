"""Training pages: datasets, the launch form, runs with live curves. Thin: rows are read here,
datasets are built by `training.datasets`, runs are started and cancelled by `training.runs`."""
import json
import math

from django.contrib import messages
from django.db.models import OuterRef, Q, Subquery
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from bugforge_web.auth import staff_required
from episodes.models import AuditEvent, Teacher

from training import datasets, evaluations
from training.runs import request_cancel, start_run
from training.engine import hyperparameters as hp
from training.engine.eval_maths import headline
from training.forms import LORA_RANK_KEY, OTHER, TINY, DatasetBuildForm, EvaluationForm, LaunchForm, local_model_choices
from training.models import Dataset, Evaluation, MetricPoint, TrainingRun
from training.tiny import ensure_tiny_model, tiny_model_path

ACTIVE = (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)
POINTS_PER_RESPONSE = 20_000  # a long run's first fetch comes in pages rather than one huge body
MAX_OVERLAY = 8


def _latest(name: str):
    """The value of a run's metric at its latest step, as a subquery (one query for the whole list)."""
    points = MetricPoint.objects.filter(run=OuterRef("pk"), name=name).order_by("-step")
    return Subquery(points.values("value")[:1])


# Runs -------------------------------------------------------------------------------------------

def _runs_for_list():
    return TrainingRun.objects.select_related("dataset", "created_by").annotate(
        latest_reward=_latest("reward"), latest_loss=_latest("loss")
    )


@require_GET
def run_list(request):
    runs = _runs_for_list()[:200]
    return render(
        request,
        "training/run_list.html",
        {"runs": runs, "has_datasets": Dataset.objects.exists()},
    )


@require_GET
def run_row(request, pk):
    """One row of the run list, polled by htmx while the run is active."""
    return render(request, "training/partials/run_row.html", {"run": get_object_or_404(_runs_for_list(), pk=pk)})


@require_GET
def run_detail(request, pk):
    run = get_object_or_404(TrainingRun.objects.select_related("dataset", "created_by"), pk=pk)
    others = TrainingRun.objects.exclude(pk=run.pk).only("name", "method", "status")[:50]
    return render(request, "training/run_detail.html", {
        "run": run, "runs": [run], "others": others, "curves_config": _curves_config([run]),
        "log": run.log_tail(100), "checkpoints": run.checkpoints(),
    })


@require_GET
def run_compare(request):
    """Several runs' curves overlaid: one trace per run on each chart."""
    try:
        ids = [int(v) for v in request.GET.getlist("runs")][:MAX_OVERLAY]
    except ValueError:
        ids = []
    runs = list(TrainingRun.objects.select_related("dataset").filter(pk__in=ids).order_by("pk"))
    if not runs:
        messages.error(request, "Pick one or more runs to compare (tick them in the list).")
        return redirect("training_run_list")
    return render(request, "training/run_compare.html", {"runs": runs, "curves_config": _curves_config(runs)})


def _curves_config(runs) -> dict:
    """What static/js/curves.js needs: per run its metrics endpoint and the points so far, so the
    charts draw at once and the polls then fetch only what is new."""
    return {
        "poll_ms": 2000,
        "runs": [
            {"id": run.pk, "name": run.name, "url": reverse("training_run_metrics", args=[run.pk]),
             "grpo_from_step": _grpo_from_step(run), "initial": _metrics_payload(run, after=0)}
            for run in runs
        ],
    }


def _grpo_from_step(run) -> int | None:
    """SFT then GRPO logs both phases on one step axis: the first GRPO step, marked on the charts."""
    if run.method != TrainingRun.Method.SFT_GRPO:
        return None
    try:
        return int(hp.phase(run.resolved_hyperparameters(), "sft")["max_steps"]) + 1
    except (KeyError, TypeError, ValueError):  # hyperparameters edited by hand: no marker rather than no page
        return None


def _metrics_payload(run, after: int) -> dict:
    """Metric points with an id above ``after`` (a cursor, so a poll sends only new points),
    grouped per metric as {"x": steps, "y": values}, plus the run's state. ``run`` was read before
    the points: the job stores a run's last points before it marks the run finished, so a payload
    that says "not active" carries every point. Non-finite values (a NaN grad norm) become null:
    JSON has no NaN, and the charts leave a gap."""
    rows = list(
        MetricPoint.objects.filter(run=run, pk__gt=after).order_by("pk")
        .values_list("pk", "name", "step", "value")[:POINTS_PER_RESPONSE]
    )
    series: dict[str, dict[str, list]] = {}
    for _, name, step, value in rows:
        s = series.setdefault(name, {"x": [], "y": []})
        s["x"].append(step)
        s["y"].append(value if math.isfinite(value) else None)
    return {
        "run": run.pk,
        "status": run.status,
        "step": run.step,
        "max_steps": run.max_steps,
        "active": run.status in ACTIVE,
        "cursor": rows[-1][0] if rows else after,
        "more": len(rows) == POINTS_PER_RESPONSE,
        "series": series,
    }


@require_GET
def run_metrics(request, pk):
    """JSON for the live charts: ?after=<cursor> returns only the points logged since."""
    run = get_object_or_404(TrainingRun, pk=pk)
    try:
        after = max(0, int(request.GET.get("after") or 0))
    except ValueError:
        return JsonResponse({"error": "after must be an integer cursor"}, status=400)
    return JsonResponse(_metrics_payload(run, after))


@require_GET
def run_status(request, pk):
    """Status, progress, error and the cancel button: polled by htmx while the run is active."""
    run = get_object_or_404(TrainingRun, pk=pk)
    return render(request, "training/partials/run_status.html", {"run": run})


@require_GET
def run_log(request, pk):
    """The log tail and the checkpoints: polled by htmx while the run is active."""
    run = get_object_or_404(TrainingRun, pk=pk)
    return render(request, "training/partials/run_log.html", {
        "run": run, "log": run.log_tail(100), "checkpoints": run.checkpoints(),
    })


@staff_required
def run_cancel(request, pk):
    run = get_object_or_404(TrainingRun, pk=pk)
    if run.status not in ACTIVE:
        messages.error(request, f"{run.name} is {run.status}: there is nothing to cancel.")
        return redirect(run)
    before = run.status  # request_cancel reloads the row (a queued run is cancelled at once)
    request_cancel(run)
    AuditEvent.record(request.user, "cancel_training_run", run, before={"status": before},
                      after={"status": run.status, "cancel_requested": True})
    messages.info(request, f"Cancel requested: {run.name} stops at its next optimizer step.")
    return redirect(run)


# Launch -----------------------------------------------------------------------------------------

@require_GET
def run_new(request):
    form = LaunchForm(initial=_launch_initial(request))
    return _launch_page(request, form)


def _launch_initial(request) -> dict:
    """?dataset=<pk> (from a dataset page) preselects it and a method that trains on it;
    ?from=<run pk> copies that run's settings, to launch a variant of it."""
    value = request.GET.get("from") or ""
    source = TrainingRun.objects.filter(pk=value).first() if value.isdigit() else None
    if source is not None:
        return _initial_from_run(source)
    value = request.GET.get("dataset") or ""
    dataset = Dataset.objects.filter(pk=value).first() if value.isdigit() else None
    if dataset is None:
        return {}
    method = TrainingRun.Method.GRPO if dataset.kind == Dataset.Kind.RL else TrainingRun.Method.SFT
    return {"dataset": dataset.pk, "method": method}


def _initial_from_run(run) -> dict:
    offered = {value for value, _ in local_model_choices()}
    if run.base_model == str(tiny_model_path()):
        model = {"base_model": TINY}
    elif run.base_model in offered:
        model = {"base_model": run.base_model}
    else:
        model = {"base_model": OTHER, "base_model_path": run.base_model}
    initial = {
        "name": f"{run.name} (copy)"[:200], "method": run.method, "dataset": run.dataset_id,
        "rl_dataset": run.rl_dataset_id, "use_lora": run.use_lora, "device": run.device, **model,
    }
    for key, value in run.hyperparameters.items():
        if key == LORA_RANK_KEY:
            initial["lora_rank"] = value
        else:
            initial[LaunchForm.HP_PREFIX + key] = ("true" if value else "false") if isinstance(value, bool) else value
    return initial


def _launch_page(request, form, status=200):
    return render(request, "training/run_new.html", {
        "form": form, "defaults": form.defaults, "has_datasets": Dataset.objects.exists(),
    }, status=status)


@staff_required
def run_launch(request):
    form = LaunchForm(request.POST)
    if not form.is_valid():
        return _launch_page(request, form, status=400)
    data = form.cleaned_data
    try:
        base_model = _resolve_base_model(data["base_model"], data.get("base_model_path", ""))
        run = TrainingRun(
            name=data["name"] or f"{data['method']}-{data['dataset'].name}-{timezone.now():%Y%m%d-%H%M%S}",
            method=data["method"], base_model=base_model, dataset=data["dataset"], rl_dataset=data.get("rl_dataset"),
            hyperparameters=form.hyperparameters(), use_lora=data["use_lora"], device=data["device"],
            created_by=request.user,
        )
        start_run(run)
    except (ValueError, RuntimeError) as exc:  # RuntimeError: the tiny model could not be built
        form.add_error(form.field_for_error(str(exc)) if isinstance(exc, ValueError) else "base_model", str(exc))
        return _launch_page(request, form, status=400)
    AuditEvent.record(request.user, "launch_training_run", run, after={
        "method": run.method, "dataset": run.dataset.name, "base_model": run.base_model, "device": run.device,
        "hyperparameters": run.hyperparameters,
    })
    messages.info(request, f"{run.name} queued on the train queue; its curves appear here as it logs.")
    return redirect(run)


def _resolve_base_model(choice: str, typed_path: str) -> str:
    if choice == TINY:
        return str(ensure_tiny_model())
    if choice == OTHER:
        return typed_path.strip()
    return choice


# Datasets ---------------------------------------------------------------------------------------

@require_GET
def dataset_list(request):
    return _dataset_page(request, DatasetBuildForm(initial={"name": f"set-{timezone.now():%Y%m%d-%H%M}"}))


def _dataset_page(request, form, status=200):
    teachers = list(Teacher.objects.only("name", "provider", "model", "terms_allow_training"))
    built = list(Dataset.objects.select_related("created_by")[:200])
    for dataset in built:
        dataset.filter_items = _filter_items(dataset.filters)
    return render(request, "training/dataset_list.html", {
        "datasets": built,
        "form": form,
        "unvetted": [t for t in teachers if t.terms_allow_training is not True],
    }, status=status)


def _filter_items(filters: dict) -> list[str]:
    """The filters that narrowed a dataset, as short key=value strings (empty ones left out)."""
    items = []
    for key, value in sorted((filters or {}).items()):
        if value in (None, "", [], {}):
            continue
        items.append(f"{key}={','.join(map(str, value)) if isinstance(value, (list, tuple)) else value}")
    return items


@staff_required
def dataset_build(request):
    form = DatasetBuildForm(request.POST)
    if not form.is_valid():
        return _dataset_page(request, form, status=400)
    data = form.cleaned_data
    build = datasets.build_sft_dataset if data["kind"] == Dataset.Kind.SFT else datasets.build_rl_dataset
    try:
        dataset = build(data["name"], form.filters(), user=request.user)
    except ValueError as exc:
        form.add_error(None, str(exc))
        return _dataset_page(request, form, status=400)
    AuditEvent.record(request.user, "build_dataset", dataset, after={"kind": dataset.kind, "filters": dataset.filters})
    unvetted = form.unvetted_teachers()
    if unvetted:
        messages.warning(request, "This dataset may include data from teachers whose terms do not (or may not) "
                                  "allow training: " + ", ".join(t.name for t in unvetted) + ".")
    messages.info(request, f"Dataset {dataset.name} built: {dataset.train_rows} train / {dataset.heldout_rows} held-out rows.")
    return redirect("training_dataset_detail", pk=dataset.pk)


@require_GET
def dataset_detail(request, pk):
    dataset = get_object_or_404(Dataset.objects.select_related("created_by"), pk=pk)
    return render(request, "training/dataset_detail.html", {
        "dataset": dataset,
        "runs": TrainingRun.objects.filter(Q(dataset=dataset) | Q(rl_dataset=dataset)).order_by("-created_at")[:50],
        "manifest_json": json.dumps(dataset.manifest, indent=2, sort_keys=True),
    })


# Evaluations ------------------------------------------------------------------------------------

SUBJECT_ORDER = {"checkpoint": 0, "teacher": 1, "episodes": 2, "base": 3}


def _evaluation_row(ev) -> dict:
    results = ev.results or {}
    ks = results.get("ks") or [ev.k]
    row = headline(results.get("overall") or {}, ks)
    row["evaluation"] = ev
    row["breakdown"] = [
        (group, name, headline(summary, ks))
        for group in ("by_repository", "by_difficulty")
        for name, summary in (results.get(group) or {}).items()
    ]
    return row


EVALUATION_ROWS = ("dataset", "run", "teacher")


@require_GET
def evaluation_list(request):
    """Student vs teacher vs base model on each dataset's held-out bugs: one table per dataset."""
    return _evaluation_page(request, EvaluationForm(initial=_evaluation_initial(request)))


def _evaluation_initial(request) -> dict:
    """?run=<pk> (from a run page) proposes evaluating that run's final model on its held-out bugs."""
    value = request.GET.get("run") or ""
    run = TrainingRun.objects.filter(pk=value).first() if value.isdigit() else None
    if run is None:
        return {}
    dataset = run.rl_dataset_id or run.dataset_id
    return {"subject": "checkpoint", "run": run.pk, "dataset": dataset, "name": f"{run.name} (student)"}


def _evaluation_page(request, form, status=200):
    evaluations = sorted(
        Evaluation.objects.select_related(*EVALUATION_ROWS).order_by("-created_at")[:500],
        key=lambda ev: (-ev.dataset_id, SUBJECT_ORDER.get(ev.subject, 9)),  # newest sets first; student, teacher, base
    )
    tables: dict[int, dict] = {}
    for ev in evaluations:
        tables.setdefault(ev.dataset_id, {"dataset": ev.dataset, "rows": []})["rows"].append(_evaluation_row(ev))
    return render(request, "training/evaluation_list.html", {"tables": list(tables.values()), "form": form},
                  status=status)


@require_GET
def evaluation_row(request, pk):
    """One evaluation's rows, polled by htmx while it runs."""
    ev = get_object_or_404(Evaluation.objects.select_related(*EVALUATION_ROWS), pk=pk)
    return render(request, "training/partials/evaluation_row.html", {"row": _evaluation_row(ev)})


@staff_required
def evaluation_start(request):
    form = EvaluationForm(request.POST)
    if not form.is_valid():
        return _evaluation_page(request, form, status=400)
    data = form.cleaned_data
    subject = Evaluation.Subject(data["subject"])
    who = data["run"].name if data.get("run") else data["teacher"].name if data.get("teacher") else data.get("model_path")
    ev = Evaluation(
        name=data["name"] or f"{who} ({subject.label})"[:200], subject=subject, dataset=data["dataset"],
        run=data.get("run"), model_path=(data.get("model_path") or "").strip(), teacher=data.get("teacher"),
        k=data["k"], options=form.options(), created_by=request.user,
    )
    try:
        evaluations.start_evaluation(ev)
    except ValueError as exc:
        form.add_error(form.field_for_error(str(exc)), str(exc))
        return _evaluation_page(request, form, status=400)
    AuditEvent.record(request.user, "start_evaluation", ev, after={
        "subject": ev.subject, "dataset": ev.dataset.name, "k": ev.k, "model_path": ev.model_path,
    })
    messages.info(request, f"Evaluation {ev.name} queued: {ev.progress.get('total', '?')} attempts on the held-out bugs "
                           f"of {ev.dataset.name}.")
    return redirect(f"{reverse('training_evaluation_list')}#evaluation-{ev.pk}")
