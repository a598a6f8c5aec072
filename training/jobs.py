"""The `train` queue's job: run the training process and mirror it into the database.

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
from django.utils import timezone

from training.engine.grpo_env import ROLLOUTS_ENV
from training.engine.run import CANCEL_FILE, METRICS_FILE, STATUS_FILE, MetricsTail

from .models import MetricPoint, TrainingRun

log = logging.getLogger(__name__)
ROLLOUTS_FILE = "rollouts.jsonl"

POLL_S = 0.5
HEARTBEAT_S = 10.0  # how often a quiet run still says it is alive (the sweeper's evidence)
CANCEL_GRACE_S = 600  # after a cancel request, how long the trainer may take to reach a step end


def runs_dir() -> Path:
    return Path(settings.VAR_DIR) / "training" / "runs"


def run_config(run: TrainingRun, output_dir: Path) -> dict:
    """The plain config the training process reads (see training.engine.run)."""
    from .launch import allow_hub

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
    from episodes.difficulty import ingest_rollouts

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
