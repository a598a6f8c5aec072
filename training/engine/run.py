"""The training process: ``python -m training.engine.run <config.json>``.

A job writes the config, spawns this module (under ``accelerate launch`` on GPU hosts) and
watches three files in the run's output directory: ``metrics.jsonl`` (one line per logged
metric dict, see callbacks.py), ``status.json`` (written at the start and at the end) and the
cancel file it creates itself. Config keys:

    method            "sft" | "grpo" | "sft_grpo"
    model             local path of the base model (a hub id only with "allow_hub": true)
    output_dir        where checkpoints, metrics and status go
    sft_dataset       directory of a saved SFT dataset (sft, sft_grpo)
    rl_dataset        directory of a saved RL dataset (grpo, sft_grpo)
    hyperparameters   see hyperparameters.py (resolved against the method's defaults)
    use_lora, device  LoRA through peft; "cpu" or "cuda"
    sandbox           {"backend", "work_dir", "docker_url", "timeout_s"} for the GRPO environment

A crash leaves ``{"status": "failed", "error": <traceback>}`` in status.json and the traceback
on stderr; the exit code is 0 (succeeded or cancelled) or 1 (failed).
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from training.engine import hyperparameters as hp

METRICS_FILE = "metrics.jsonl"
STATUS_FILE = "status.json"
CANCEL_FILE = "CANCEL"
STATUS_PREFIX = "BUGFORGE_STATUS "


class MetricsTail:
    """Reads complete new lines of a metrics JSONL file from where it stopped last time."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        records = []
        for line in data[:end].splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"skipping a malformed metrics line: {line[:200]!r}", file=sys.stderr)
        return records


class RunError(Exception):
    """A problem with the run's inputs, reported as one clear line (no traceback needed)."""


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def write_status(output_dir: Path, **fields) -> None:
    if not is_main_process():
        return
    path = output_dir / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**fields, "time": time.time()}))
    tmp.replace(path)  # atomic: a reader never sees half a status


def check_model(model: str, allow_hub: bool = False) -> str:
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise RunError(f"base model {model}: the directory has no config.json (not a saved model)")
        return str(path)
    if allow_hub and "/" in model and not model.startswith(("/", ".")):
        return model
    raise RunError(f"base model not found: {model} (no such directory; use a local path such as the tiny model "
                   "from `manage.py make_tiny_model`)")


def load_split(dataset_dir: str | None, kind: str, split: str = "train"):
    from datasets import load_from_disk

    if not dataset_dir:
        raise RunError(f"this method needs an {kind.upper()} dataset")
    path = Path(dataset_dir) / "hf"
    if not path.is_dir():
        raise RunError(f"{kind.upper()} dataset not found at {path}")
    dataset = load_from_disk(str(path))[split]
    if len(dataset) == 0:
        raise RunError(f"the {kind.upper()} dataset has no {split} rows")
    return dataset


def _tokenizer(model_path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def train_sft(model_path: str, dataset, hparams: dict, output_dir: Path, callback, device: str, use_lora: bool):
    from trl import SFTTrainer

    from training.engine import sft

    args, peft_config = sft.build_config({**hparams, "use_lora": use_lora}, str(output_dir), device)
    tok = _tokenizer(model_path)
    tok.padding_side = "right"
    trainer = SFTTrainer(model=model_path, args=args, train_dataset=dataset, processing_class=tok,
                         peft_config=peft_config, callbacks=[callback])
    trainer.train()
    return _save_final(trainer, output_dir, tok)


def train_grpo(model_path: str, dataset, hparams: dict, output_dir: Path, callback, device: str, use_lora: bool,
               sandbox: dict):
    from trl import GRPOTrainer

    from training.engine import grpo, grpo_env

    args, peft_config = grpo.build_config({**hparams, "use_lora": use_lora}, str(output_dir), device)
    tok = _tokenizer(model_path)
    tok.padding_side = "left"
    factory = grpo_env.environment_factory(sandbox)
    trainer = GRPOTrainer(model=model_path, reward_funcs=[grpo_env.verifier_reward], args=args,
                          train_dataset=dataset, processing_class=tok, peft_config=peft_config,
                          callbacks=[callback], environment_factory=factory)
    try:
        trainer.train()
    finally:
        grpo_env.close_all(getattr(trainer, "_environment_pool", {}))
    return _save_final(trainer, output_dir, tok)


def _save_final(trainer, output_dir: Path, tok) -> str:
    """Save the trained model to ``<phase>/final``. LoRA adapters are kept in
    ``<phase>/adapter`` and merged into a full model in ``final``, so that the next phase,
    the evaluation server and other tools load it like any model."""
    final = output_dir / "final"
    if not is_main_process():
        return str(final)
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model.save_pretrained(str(output_dir / "adapter"))
        model = model.merge_and_unload()
        model.save_pretrained(str(final))
    else:
        trainer.save_model(str(final))
    tok.save_pretrained(str(final))
    return str(final)


def run(config: dict) -> dict:
    method = config.get("method")
    if method not in hp.DEFAULTS:
        raise RunError(f"unknown method {method!r}; expected one of {sorted(hp.DEFAULTS)}")
    output_dir = Path(config["output_dir"])
    # Inputs are checked before torch/TRL are imported: a bad run fails in a fraction of a second.
    model_path = check_model(config.get("model", ""), bool(config.get("allow_hub")))
    try:
        hparams = hp.resolve(method, config.get("hyperparameters"))
    except ValueError as exc:
        raise RunError(str(exc)) from None

    from training.engine.callbacks import MetricsFileCallback
    device = config.get("device", "cpu")
    use_lora = bool(config.get("use_lora"))
    metrics = output_dir / METRICS_FILE
    cancel = output_dir / CANCEL_FILE

    phases = ["sft", "grpo"] if method == "sft_grpo" else [method]
    per_phase = {p: (hp.phase(hparams, p) if method == "sft_grpo" else hparams) for p in phases}
    data = {p: load_split(config.get("sft_dataset" if p == "sft" else "rl_dataset"), "sft" if p == "sft" else "rl")
                for p in phases}  # load both up front: a missing RL set fails before hours of SFT
    total = sum(int(per_phase[p]["max_steps"]) for p in phases)

    offset, current, cancelled = 0, model_path, False
    for name in phases:
        callback = MetricsFileCallback(metrics, cancel, phase=name, step_offset=offset, total_steps=total)
        phase_dir = output_dir / name
        if name == "sft":
            current = train_sft(current, data[name], per_phase[name], phase_dir, callback, device, use_lora)
        else:
            current = train_grpo(current, data[name], per_phase[name], phase_dir, callback, device, use_lora,
                                 config.get("sandbox") or {})
        offset += int(per_phase[name]["max_steps"])
        if callback.cancelled or cancel.exists():
            cancelled = True
            break
    return {"status": "cancelled" if cancelled else "succeeded", "final_model": current}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m training.engine.run <config.json>", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[0]).read_text())
    output_dir = Path(config["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    write_status(output_dir, status="running", pid=os.getpid())
    try:
        result = run(config)
    except RunError as exc:
        result = {"status": "failed", "error": str(exc)}
        print(f"error: {exc}", file=sys.stderr)
    except BaseException as exc:  # noqa: BLE001 - any crash must leave its traceback behind
        result = {"status": "failed", "error": traceback.format_exc()}
        traceback.print_exc()
        if isinstance(exc, KeyboardInterrupt):
            result["error"] = "interrupted\n" + result["error"]
    write_status(output_dir, **result)
    if is_main_process():
        print(STATUS_PREFIX + json.dumps(result), flush=True)
    return 0 if result["status"] in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
