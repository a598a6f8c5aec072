"""Training runs through the real runner: the job spawns `python -m training.engine.run`, which
trains the tiny model with TRL on CPU; GRPO acts on the real sandbox and is rewarded by the
episodes' grader."""
import json
from pathlib import Path

import pytest

from training import jobs, launch
from training.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def make_run(method, model, dataset, rl_dataset=None, **hparams):
    return TrainingRun.objects.create(name=f"{method} test", method=method, base_model=model, dataset=dataset,
                                      rl_dataset=rl_dataset, hyperparameters=hparams)


def test_sft_two_steps(tiny_model, sft_dataset, settings):
    run = make_run("sft", tiny_model, sft_dataset, max_steps=2, save_steps=1)
    launch.validate(run)
    assert jobs.run_training(run.pk) == "succeeded", TrainingRun.objects.get(pk=run.pk).error
    run.refresh_from_db()
    assert (run.step, run.max_steps, run.progress) == (2, 2, 1.0)
    curves = run.curves()
    assert [s for s, _ in curves["loss"]] == [1, 2]
    assert {"grad_norm", "learning_rate", "mean_token_accuracy"} <= set(curves)
    ckpts = run.checkpoints()
    assert [(c["phase"], c["step"]) for c in ckpts if not c["final"]] == [("sft", 1), ("sft", 2)]
    assert run.final_model and (Path(run.final_model) / "config.json").is_file()
    assert "BUGFORGE_STATUS" in run.log_tail(5)


def test_grpo_two_steps_with_the_sandbox_reward(tiny_model, rl_dataset, settings):
    run = make_run("grpo", tiny_model, rl_dataset, max_steps=2, num_generations=2, per_device_train_batch_size=2,
                   max_completion_length=24, max_tool_calling_iterations=2, save_steps=10)
    launch.validate(run)
    assert jobs.run_training(run.pk) == "succeeded", TrainingRun.objects.get(pk=run.pk).error
    run.refresh_from_db()
    curves = run.curves()
    assert [s for s, _ in curves["reward"]] == [1, 2]
    assert all(0.0 <= v <= 1.0 for _, v in curves["rewards/verifier_reward/mean"])
    assert "frac_reward_zero_std" in curves and "completions/mean_length" in curves
    # every rollout's workspace is gone once the run ends
    assert not list((Path(settings.BUGFORGE_WORK_DIR) / "workspaces").glob("ws-*"))
