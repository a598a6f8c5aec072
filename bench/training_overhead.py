"""How much does BugForge's training runner add on top of a bare TRL script?

Runs the same tiny SFT and GRPO trainings (the tiny offline model on CPU; GRPO acting on the
sample repository through the real sandbox, rewarded by the episodes' grader) two ways, each
in its own fresh Python process:

* **runner** — ``python -m training.engine.run <config>`` (config and dataset files, the
  metrics callback writing every logged dict to JSONL, the cancel-file check each step, status
  file, final save), with this script tailing the metrics file every 0.5 s as the train job does;
* **bare** — this file with ``--bare``: ``SFTTrainer`` / ``GRPOTrainer`` built directly with
  the same model, data, arguments, environment and reward, no callback, and the same final save.

It prints the training steps/s of each (TRL's own ``train_runtime``), the whole-process wall
time, and the ratios runner/bare (target ≤ 1.10). Runs alternate (bare, runner, bare, runner…)
and the best of each is kept, to damp noise from other processes on the host.

    .venv/bin/python bench/training_overhead.py [--sft-steps 30] [--grpo-steps 4] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SFT_HP = {"max_steps": 30, "per_device_train_batch_size": 2, "learning_rate": 2e-5, "logging_steps": 1,
          "save_steps": 10_000, "seed": 0, "max_length": 1024}
GRPO_HP = {"max_steps": 4, "per_device_train_batch_size": 2, "num_generations": 2, "max_completion_length": 32,
           "max_tool_calling_iterations": 2, "learning_rate": 1e-6, "logging_steps": 1, "save_steps": 10_000,
           "seed": 0, "beta": 0.0}


# --- the bare TRL script (run as a child with --bare) ----------------------------------------


def bare(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    hp, out = dict(config["hyperparameters"]), config["output_dir"]
    tok = AutoTokenizer.from_pretrained(config["model"])
    common = dict(output_dir=out, report_to="none", disable_tqdm=True, use_cpu=True, save_strategy="steps")
    if config["method"] == "sft":
        from trl import SFTConfig, SFTTrainer

        tok.padding_side = "right"
        data = load_from_disk(str(Path(config["sft_dataset"]) / "hf"))["train"]
        trainer = SFTTrainer(model=config["model"], args=SFTConfig(**common, assistant_only_loss=True, **hp),
                             train_dataset=data, processing_class=tok)
    else:
        from trl import GRPOConfig, GRPOTrainer

        from training.engine import grpo_env  # the same environment and reward: only the runner differs

        tok.padding_side = "left"
        data = load_from_disk(str(Path(config["rl_dataset"]) / "hf"))["train"]
        trainer = GRPOTrainer(model=config["model"], reward_funcs=[grpo_env.verifier_reward],
                              args=GRPOConfig(**common, log_completions=False, **hp), train_dataset=data,
                              processing_class=tok, environment_factory=grpo_env.environment_factory(config["sandbox"]))
    result = trainer.train()
    trainer.save_model(str(Path(out) / "final"))
    print("BARE_RESULT " + json.dumps(result.metrics), flush=True)


# --- measurement -------------------------------------------------------------------------------


def run_child(argv: list[str], metrics_path: Path | None) -> tuple[float, dict]:
    from training.engine.run import MetricsTail

    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**__import__("os").environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""})
    tail = MetricsTail(metrics_path) if metrics_path else None
    lines: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        if tail:
            tail.read()  # what the train job does while the run goes on
        time.sleep(0.5)
    reader.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit("child failed:\n" + "".join(lines[-40:]))
    if metrics_path:
        records = [json.loads(l) for l in metrics_path.read_text().splitlines()]
        metrics = next(r["metrics"] for r in reversed(records) if "train_runtime" in r.get("metrics", {}))
    else:
        metrics = json.loads(next(l for l in lines if l.startswith("BARE_RESULT "))[len("BARE_RESULT "):])
    return wall, metrics


def measure(method: str, base_config: dict, work: Path, repeats: int) -> dict:
    best = {}
    for i in range(repeats):
        for mode in ("bare", "runner"):
            out = work / f"{method}-{mode}-{i}"
            config = {**base_config, "output_dir": str(out)}
            config_path = work / f"{method}-{mode}-{i}.json"
            config_path.write_text(json.dumps(config))
            if mode == "bare":
                argv = [sys.executable, __file__, "--bare", str(config_path)]
                wall, metrics = run_child(argv, None)
            else:
                argv = [sys.executable, "-m", "training.engine.run", str(config_path)]
                wall, metrics = run_child(argv, out / "metrics.jsonl")
            steps = base_config["hyperparameters"]["max_steps"]
            sps = steps / metrics["train_runtime"]
            print(f"  {method} {mode:6} run {i + 1}: {sps:6.3f} steps/s in training, {wall:6.2f} s process wall", flush=True)
            prev = best.get(mode)
            if prev is None or sps > prev["steps_per_s"]:
                best[mode] = {"steps_per_s": sps, "wall_s": wall if prev is None else min(wall, prev["wall_s"])}
            else:
                prev["wall_s"] = min(wall, prev["wall_s"])
            shutil.rmtree(out, ignore_errors=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft-steps", type=int, default=SFT_HP["max_steps"])
    parser.add_argument("--grpo-steps", type=int, default=GRPO_HP["max_steps"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from sample_setup import sample_setup
    from episodes.engine.repos.samples import SAMPLE_BUGS, sample_patch
    from training.engine import rows as ds
    from training.engine.grpo_env import Sandbox
    from training.engine.tiny_model import make_tiny_model

    sample = sample_setup()
    work = Path(tempfile.mkdtemp(prefix="bugforge-train-bench-", dir="/var/tmp"))
    try:
        model = str(make_tiny_model(work / "tiny"))
        tools = [{"type": "function", "function": {"name": "shell", "description": "Run a command", "parameters": {
            "type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}]
        sft_rows = [ds.sft_row({"messages": [
            {"role": "user", "content": f"Fix bug {n}"},
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                "name": "shell", "arguments": {"command": "python -m pytest -q"}}}]},
            {"role": "tool", "content": "1 failed, 20 passed"},
            {"role": "assistant", "content": f"Fixed bug {n} by correcting the comparison."}], "tools": tools},
            bug_id=n, repository="cartcalc") for n in range(8)]
        ds.save(work / "sft", ds.split(sft_rows, 0), {"kind": "sft"})
        bug = SAMPLE_BUGS[0]
        task = {"bug_id": 1, "repository": "cartcalc", "source": str(sample.src), "commit": sample.commit,
                "patch": sample_patch(sample.workspaces, sample.mirror, sample.commit, bug), "verifier": bug.verifier,
                "test_command": "python -m pytest", "environment": {"name": "cartcalc"}}
        ds.save(work / "rl", ds.split([ds.rl_row(1, "cartcalc", bug.problem_statement, task)], 0), {"kind": "rl"})
        sandbox = {"backend": "local", "work_dir": str(sample.work / "sandbox"), "timeout_s": 60}
        Sandbox(sandbox).repo_spec(task)  # build the test environment before anything is timed

        results = {}
        print(f"SFT: {args.sft_steps} steps; GRPO: {args.grpo_steps} steps × 2 generations (tiny model, CPU)")
        results["sft"] = measure("sft", {"method": "sft", "model": model, "sft_dataset": str(work / "sft"),
                                         "hyperparameters": {**SFT_HP, "max_steps": args.sft_steps}}, work, args.repeats)
        results["grpo"] = measure("grpo", {"method": "grpo", "model": model, "rl_dataset": str(work / "rl"),
                                           "sandbox": sandbox,
                                           "hyperparameters": {**GRPO_HP, "max_steps": args.grpo_steps}}, work, args.repeats)
        print()
        print(f"{'method':6} {'bare steps/s':>13} {'runner steps/s':>15} {'ratio':>7} {'bare wall s':>12} "
              f"{'runner wall s':>14} {'ratio':>7}")
        for method, r in results.items():
            b, u = r["bare"], r["runner"]
            print(f"{method:6} {b['steps_per_s']:13.3f} {u['steps_per_s']:15.3f} "
                  f"{b['steps_per_s'] / u['steps_per_s']:7.3f} {b['wall_s']:12.2f} {u['wall_s']:14.2f} "
                  f"{u['wall_s'] / b['wall_s']:7.3f}")
        print("ratio = time per step through BugForge's runner / bare TRL (target ≤ 1.10)")
    finally:
        sample.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare":
        bare(sys.argv[2])
    else:
        main()
