"""Training runs: start and cancel them (what the UI and `manage.py train` call), and the
`train` queue's job that runs the training process and mirrors it into the database.

The trainer runs in its own process (``python -m training.engine.run``, or ``accelerate
launch`` on CUDA hosts) so that it can be cancelled and cannot take the worker down. While it
runs, this job tails its ``metrics.jsonl`` into MetricPoint rows (bulk, duplicates ignored),
keeps ``step``/``max_steps``/``heartbeat_at`` current and turns a cancel request into the
cancel file the trainer's callback watches. The run ends `succeeded`, `cancelled` or `failed`
(with the trainer's traceback, or the tail of its output when it died without one). The child
gets SIGTERM if the worker dies; `TrainingRun.objects.sweep_stale()` fails runs whose worker
vanished.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bugforge_web.queues import enqueue
from training.engine import hyperparameters as hp
from training.engine.grpo_env import ROLLOUTS_ENV
from training.engine.run import CANCEL_FILE, METRICS_FILE, STATUS_FILE, MetricsTail
from training.models import Dataset, MetricPoint, TrainingRun

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


# --- the `train` queue's job ------------------------------------------------------------

log = logging.getLogger(__name__)
ROLLOUTS_FILE = "rollouts.jsonl"

POLL_S = 0.5
HEARTBEAT_S = 10.0  # how often a quiet run still says it is alive (the sweeper's evidence)
CANCEL_GRACE_S = 600  # after a cancel request, how long the trainer may take to reach a step end


def runs_dir() -> Path:
    return Path(settings.VAR_DIR) / "training" / "runs"


def run_config(run: TrainingRun, output_dir: Path) -> dict:
    """The plain config the training process reads (see training.engine.run)."""

    sft = run.dataset if run.method in ("sft", "sft_grpo") else None
    rl = run.rl_dataset if run.method == "sft_grpo" else (run.dataset if run.method == "grpo" else None)
    return {
        "method": run.method,
        "model": run.base_model,
        "allow_hub": allow_hub(),
        "output_dir": str(output_dir),
        "sft_dataset": sft.path if sft else None,
        "rl_dataset": rl.path if rl else None,
        "hyperparameters": run.hyperparameters,
        "use_lora": run.use_lora,
        "device": run.device,
        "sandbox": sandbox_config(),
    }


def sandbox_config() -> dict:
    """How the GRPO environment reaches the sandbox: the same backend and work dir as episodes."""
    return {
        "backend": settings.BUGFORGE_SANDBOX,
        "work_dir": str(settings.BUGFORGE_WORK_DIR),
        "docker_url": settings.BUGFORGE_DOCKER_URL or None,
        "timeout_s": float(settings.BUGFORGE_RUN_TIMEOUT),
    }


def command(run: TrainingRun, config_path: Path) -> list[str]:
    """``accelerate launch`` on CUDA hosts where accelerate is installed; a plain child otherwise."""
    if run.device.startswith("cuda") and importlib.util.find_spec("accelerate") is not None:
        return [sys.executable, "-m", "accelerate.commands.launch", "--module", "training.engine.run", str(config_path)]
    return [sys.executable, "-m", "training.engine.run", str(config_path)]


def _die_with_parent():  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    os.setpgrp()  # own process group: a cancel or kill reaches the trainer's children too


def store_metrics(run: TrainingRun, records: list[dict]) -> None:
    """Metric rows for ``records`` (duplicates ignored) and the run's step/max_steps."""
    points, step, max_steps = [], None, None
    for record in records:
        if "max_steps" in record:
            max_steps = int(record["max_steps"])
        if "metrics" in record:
            step = max(step or 0, int(record["step"]))
            points += [MetricPoint(run=run, step=int(record["step"]), name=name[:100], value=value)
                       for name, value in record["metrics"].items()]
    if points:
        MetricPoint.objects.bulk_create(points, ignore_conflicts=True)
    fields = {"heartbeat_at": timezone.now()}
    if step is not None:
        fields["step"] = step
    if max_steps:
        fields["max_steps"] = max_steps
    TrainingRun.objects.filter(pk=run.pk).update(**fields)


def _tail_text(path: Path, chars: int = 6000) -> str:
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - chars))
        return fh.read().decode("utf-8", "replace")


def run_training(run_id: int) -> str:
    run = TrainingRun.objects.select_related("dataset", "rl_dataset").get(pk=run_id)
    if run.status == TrainingRun.Status.CANCELLED or run.cancel_requested:
        TrainingRun.objects.filter(pk=run.pk).update(status=TrainingRun.Status.CANCELLED,
                                                     finished_at=run.finished_at or timezone.now())
        return TrainingRun.Status.CANCELLED
    output_dir = runs_dir() / str(run.pk)
    try:
        if output_dir.exists():  # an earlier attempt of this run: start clean
            shutil.rmtree(output_dir)
        output_dir.mkdir(parents=True)
        config_path = output_dir / "config.json"
        config_path.write_text(json.dumps(run_config(run, output_dir), indent=2))
        log_path = output_dir / "train.log"
        TrainingRun.objects.filter(pk=run.pk).update(
            status=TrainingRun.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now(),
            output_dir=str(output_dir), log_path=str(log_path), error="", step=0,
        )
        status = _supervise(run, command(run, config_path), output_dir, log_path)
    except Exception as exc:
        TrainingRun.objects.filter(pk=run.pk).update(
            status=TrainingRun.Status.FAILED, finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}",
        )
        raise
    return status


def _supervise(run: TrainingRun, argv: list[str], output_dir: Path, log_path: Path) -> str:
    tail = MetricsTail(output_dir / METRICS_FILE)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_DISABLE_TELEMETRY": "1",
           ROLLOUTS_ENV: str(output_dir / ROLLOUTS_FILE)}  # GRPO's graded rollouts, next to the metrics
    if run.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    cancel_sent_at = None
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(argv, cwd=settings.BASE_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        try:
            last_beat = 0.0
            while proc.poll() is None:
                records = tail.read()
                if records or time.monotonic() - last_beat > HEARTBEAT_S:  # no write when nothing changed
                    store_metrics(run, records)
                    last_beat = time.monotonic()
                if cancel_sent_at is None and TrainingRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
                    (output_dir / CANCEL_FILE).touch()
                    cancel_sent_at = time.monotonic()
                elif cancel_sent_at is not None and time.monotonic() - cancel_sent_at > CANCEL_GRACE_S:
                    os.killpg(proc.pid, signal.SIGTERM)  # it did not reach a step end in time
                time.sleep(POLL_S)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)  # the job itself is being stopped: take the trainer with it
            proc.wait()
            raise
    store_metrics(run, tail.read())
    record_rollouts(run, output_dir)
    return _finish(run, proc.returncode, output_dir, log_path, cancelled=cancel_sent_at is not None)


def record_rollouts(run: TrainingRun, output_dir: Path) -> int:
    """GRPO's graded rollouts (one {bug_id, reward} line each) as the run's solve attempts."""
    from episodes.curation.difficulty import ingest_rollouts

    try:
        return ingest_rollouts(run.pk, output_dir / ROLLOUTS_FILE)
    except Exception:  # measuring difficulty never fails a training run
        log.exception("recording the rollouts of run %s failed", run.pk)
        return 0


def _finish(run: TrainingRun, returncode: int, output_dir: Path, log_path: Path, cancelled: bool) -> str:
    try:
        result = json.loads((output_dir / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        result = {}
    status = result.get("status")
    fields = {"finished_at": timezone.now(), "final_model": result.get("final_model") or ""}
    if status == "succeeded" and returncode == 0:
        fields["status"] = TrainingRun.Status.SUCCEEDED
    elif status == "cancelled" or (cancelled and status not in ("failed",)):
        fields["status"] = TrainingRun.Status.CANCELLED
    else:
        fields["status"] = TrainingRun.Status.FAILED
        error = result.get("error") if status == "failed" else ""
        fields["error"] = error or (
            f"the training process exited with code {returncode} without a status; last output:\n"
            + _tail_text(log_path)
        )
    TrainingRun.objects.filter(pk=run.pk).update(**fields)
    return fields["status"]
