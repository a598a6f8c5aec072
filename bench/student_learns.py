"""Does the pipeline teach? An end-to-end check of SFT data fidelity, the local model server,
the agent's tools and the grader, in a few minutes on CPU.

Builds the tiny model, makes one canonical SFT row of a teacher fixing sample bug 0 (the
trajectory the built-in agent would record: its system prompt, task prompt and TOOL_SCHEMAS),
trains on it through BugForge's runner until the model has memorized it, then serves the
result and runs it as the built-in agent on that bug in the real sandbox, graded like an
episode. The tiny model before training scores 0; after, it should make the edit and score 1.
(It is the training bug itself: this checks the plumbing, not generalization.)

    .venv/bin/python bench/student_learns.py [--steps 120]
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

from sample_setup import sample_setup  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    args = parser.parse_args()

    from episodes.engine.solve.agent.loop import AgentLimits
    from episodes.engine.solve.task_format import TOOL_SCHEMAS, prompt_messages
    from episodes.engine.repos.samples import SAMPLE_BUGS, sample_patch
    from training.engine import rows as ds
    from training.engine.eval_runner import LocalModelServer, evaluate
    from training.engine.tiny_model import make_tiny_model

    sample = sample_setup()
    work = Path(tempfile.mkdtemp(prefix="bugforge-student-", dir="/var/tmp"))
    try:
        bug = SAMPLE_BUGS[0]
        model = str(make_tiny_model(work / "tiny"))
        trajectory = {"messages": [
            *prompt_messages(bug.problem_statement),
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                "name": "edit", "arguments": {"path": bug.path, "old": bug.new, "new": bug.old}}}]},
            {"role": "tool", "content": "edited"},
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                "name": "submit", "arguments": {}}}]},
            {"role": "tool", "content": "submitted: your changes will now be graded"},
            {"role": "assistant", "content": "Done."}], "tools": TOOL_SCHEMAS}
        ds.save(work / "sft", ds.split([ds.sft_row(trajectory, 1, "cartcalc")], 0), {"kind": "sft"})
        task = {"bug_id": 1, "repository": "cartcalc", "source": str(sample.src), "commit": sample.commit,
                "patch": sample_patch(sample.workspaces, sample.mirror, sample.commit, bug),
                "verifier": bug.verifier, "test_command": "python -m pytest", "environment": {"name": "cartcalc"},
                "problem_statement": bug.problem_statement}
        sandbox = {"backend": "local", "work_dir": str(sample.work / "sandbox"), "timeout_s": 60}

        def score(model_dir: str) -> dict:
            with LocalModelServer(model_dir, 160, cwd=ROOT, temperature=0) as endpoint:
                [attempt] = evaluate(endpoint, [task], 1, sandbox, AgentLimits(max_steps=4))
            return attempt.to_dict()

        before = score(model)
        config = {"method": "sft", "model": model, "output_dir": str(work / "run"), "sft_dataset": str(work / "sft"),
                  "hyperparameters": {"max_steps": args.steps, "learning_rate": 3e-3, "per_device_train_batch_size": 1,
                                      "save_steps": 10**6, "logging_steps": 10, "lr_scheduler_type": "constant"}}
        (work / "config.json").write_text(json.dumps(config))
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "training.engine.run", str(work / "config.json")], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(proc.stdout[-3000:] + proc.stderr[-3000:])
        trained = json.loads((work / "run" / "status.json").read_text())["final_model"]
        after = score(trained)
        print(f"before SFT: reward {before['reward']:.0f} ({before['reason']}; exit {before['exit_reason']})")
        print(f"SFT: {args.steps} steps in {time.perf_counter() - started:.0f} s (process wall)")
        print(f"after SFT:  reward {after['reward']:.0f} ({after['reason']}; exit {after['exit_reason']}, "
              f"{after['steps']} model calls)")
    finally:
        sample.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
