"""Start and cancel training runs (what the UI and `manage.py train` call)."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bugforge_web.queues import enqueue
from training.engine import hyperparameters as hp

from .models import Dataset, TrainingRun

# The dataset kind each method trains on: (TrainingRun.dataset, TrainingRun.rl_dataset).
NEEDS = {
    TrainingRun.Method.SFT: (Dataset.Kind.SFT, None),
    TrainingRun.Method.GRPO: (Dataset.Kind.RL, None),
    TrainingRun.Method.SFT_GRPO: (Dataset.Kind.SFT, Dataset.Kind.RL),
}


def allow_hub() -> bool:
    """Hub ids as base models only where the host reaches a hub (BUGFORGE_ALLOW_HUB_MODELS=1)."""
    return settings.BUGFORGE_ALLOW_HUB_MODELS


def validate(run: TrainingRun) -> None:
    """Raise ValueError with a clear message when the run cannot start as configured."""
    if run.method not in NEEDS:
        raise ValueError(f"unknown method {run.method!r}")
    kind, rl_kind = NEEDS[run.method]
    label = TrainingRun.Method(run.method).label
    if run.dataset is None:
        raise ValueError(f"{label} needs an {kind.upper()} dataset")
    if run.dataset.kind != kind:
        raise ValueError(f"{label} trains on an {kind.upper()} dataset; {run.dataset.name} is {run.dataset.kind.upper()}")
    if rl_kind:
        if run.rl_dataset is None:
            raise ValueError(f"{label} needs an RL dataset for its GRPO phase")
        if run.rl_dataset.kind != rl_kind:
            raise ValueError(f"the GRPO phase needs an RL dataset; {run.rl_dataset.name} is {run.rl_dataset.kind.upper()}")
    elif run.rl_dataset is not None:
        raise ValueError(f"{label} takes one dataset; leave the RL dataset empty")
    hparams = hp.resolve(run.method, run.hyperparameters)  # ValueError on a bad value
    for key in ("max_steps", "per_device_train_batch_size"):
        if int(hparams[key]) < 1:
            raise ValueError(f"{key} must be at least 1")
    if run.method != TrainingRun.Method.SFT:
        batch = int(hparams["per_device_train_batch_size"]) * int(hparams["gradient_accumulation_steps"])
        if int(hparams["num_generations"]) < 2 or batch % int(hparams["num_generations"]):
            raise ValueError("GRPO needs num_generations ≥ 2 dividing per_device_train_batch_size × "
                             "gradient_accumulation_steps")
    for ds in filter(None, (run.dataset, run.rl_dataset)):
        if not (Path(ds.path) / "hf").is_dir():
            raise ValueError(f"dataset {ds.name}: its files are missing at {ds.path}")
        if not ds.train_rows:
            raise ValueError(f"dataset {ds.name} has no training rows")
    model = (run.base_model or "").strip()
    if not model:
        raise ValueError("choose a base model (a local directory)")
    path = Path(model).expanduser()
    if not path.is_dir():
        if not (allow_hub() and "/" in model and not model.startswith(("/", "."))):
            raise ValueError(f"base model not found: {model} is not a directory on this host")
    elif not (path / "config.json").is_file():
        raise ValueError(f"base model {model}: the directory holds no saved model (no config.json)")
    if run.device != "cpu" and not run.device.startswith("cuda"):
        raise ValueError(f"device {run.device!r}: expected cpu or cuda")


def sweep() -> list[tuple[int, str]]:
    """Fail runs whose worker died (see TrainingRunQuerySet.sweep_stale); never raises, so an
    unreachable Redis does not stop a launch (the enqueue then reports it)."""
    import logging

    try:
        return TrainingRun.objects.sweep_stale()
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).exception("sweeping stale training runs failed")
        return []


def total_steps(run: TrainingRun) -> int:
    hparams = hp.resolve(run.method, run.hyperparameters)
    if run.method == TrainingRun.Method.SFT_GRPO:
        return int(hp.phase(hparams, "sft")["max_steps"]) + int(hparams["max_steps"])
    return int(hparams["max_steps"])


def start_run(run: TrainingRun) -> None:
    """Validate ``run`` (ValueError with a clear message) and enqueue it on the `train` queue."""
    from .jobs import run_training

    validate(run)
    sweep()
    if run.pk is None:
        run.save()
    with transaction.atomic():
        run.status, run.error, run.cancel_requested = TrainingRun.Status.QUEUED, "", False
        run.step, run.max_steps = 0, total_steps(run)
        run.job_id = enqueue("train", run_training, run.pk, job_timeout=settings.RQ_QUEUES["train"]["DEFAULT_TIMEOUT"])
        run.save()


def request_cancel(run: TrainingRun) -> None:
    """Ask the run to stop: a queued run is cancelled at once; a running one stops cleanly at
    the end of its next optimizer step (the job creates the cancel file the trainer watches)."""
    from training.engine.run import CANCEL_FILE

    TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.CANCELLED, finished_at=timezone.now()
    )
    run.refresh_from_db()
    if run.status == TrainingRun.Status.RUNNING and run.output_dir and Path(run.output_dir).is_dir():
        (Path(run.output_dir) / CANCEL_FILE).touch()
