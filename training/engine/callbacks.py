"""A TrainerCallback that streams every logged metric to a JSONL file and honours a cancel file.

The web side tails the file into MetricPoint rows while the run goes on; a staff member's
cancel creates the cancel file and the run stops cleanly at the end of the next step.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback


class MetricsFileCallback(TrainerCallback):
    """Append one JSON line per ``on_log`` call: ``{"step", "phase", "metrics", "max_steps"}``.

    ``step_offset`` shifts this phase's steps so that SFT then GRPO makes one continuous axis;
    ``total_steps`` is the whole run's step budget (for progress), when known.
    """

    def __init__(self, metrics_path: str | Path, cancel_path: str | Path | None = None, phase: str = "",
                 step_offset: int = 0, total_steps: int | None = None):
        self.metrics_path = Path(metrics_path)
        self.cancel_path = Path(cancel_path) if cancel_path else None
        self.phase = phase
        self.step_offset = step_offset
        self.total_steps = total_steps
        self.cancelled = False
        self.is_main = True  # set from the trainer state: only rank 0 writes under accelerate

    def on_init_end(self, args, state, control, **kwargs):
        self.is_main = state.is_world_process_zero

    def _write(self, record: dict) -> None:
        if not self.is_main:
            return
        record.setdefault("time", time.time())
        # One write per line, flushed at once: the reader never sees a half line it could keep.
        with self.metrics_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def _max_steps(self, state) -> int:
        return self.total_steps or (self.step_offset + (state.max_steps or 0))

    def on_train_begin(self, args, state, control, **kwargs):
        self._write({"event": "begin", "phase": self.phase, "step": self.step_offset + state.global_step,
                     "max_steps": self._max_steps(state)})

    def on_log(self, args, state, control, logs=None, **kwargs):
        metrics = {k: float(v) for k, v in (logs or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if metrics:
            self._write({"step": self.step_offset + state.global_step, "phase": self.phase,
                         "max_steps": self._max_steps(state), "metrics": metrics})

    def on_save(self, args, state, control, **kwargs):
        self._write({"event": "checkpoint", "phase": self.phase, "step": self.step_offset + state.global_step,
                     "path": str(Path(args.output_dir) / f"checkpoint-{state.global_step}")})

    def on_step_end(self, args, state, control, **kwargs):
        if self.cancel_path is not None and self.cancel_path.exists():
            self.cancelled = True
            control.should_training_stop = True
            self._write({"event": "cancelled", "phase": self.phase, "step": self.step_offset + state.global_step})
        return control
