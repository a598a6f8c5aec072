"""Training runs through the real runner: the job spawns `python -m training.engine.run`, which
trains the tiny model with TRL on CPU; GRPO acts on the real sandbox and is rewarded by the
episodes' grader."""
import json
from pathlib import Path

import pytest

from training import runs
from training.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def make_run(method, model, dataset, rl_dataset=None, **hparams):
    return TrainingRun.objects.create(name=f"{method} test", method=method, base_model=model, dataset=dataset,
                                      rl_dataset=rl_dataset, hyperparameters=hparams)


def test_sft_two_steps(tiny_model, sft_dataset, settings):
    """`manage.py train --sync`: validated, run here through the job and the runner process."""
    from io import StringIO

    from django.core.management import call_command

    out, err = StringIO(), StringIO()
    call_command("train", "--method", "sft", "--model", tiny_model, "--dataset", sft_dataset.name,
                 "--set", "max_steps=2", "--set", "save_steps=1", "--sync", stdout=out, stderr=err)
    run = TrainingRun.objects.get()
    assert f"run {run.pk}: succeeded at step 2/2" in out.getvalue(), (out.getvalue(), run.error)
    assert "2/2" in err.getvalue()  # the progress bar reached the end
    assert (run.step, run.max_steps, run.progress) == (2, 2, 1.0)
    curves = run.curves()
    assert [s for s, _ in curves["loss"]] == [1, 2]
    assert {"grad_norm", "learning_rate", "mean_token_accuracy"} <= set(curves)
    ckpts = run.checkpoints()
    assert [(c["phase"], c["step"]) for c in ckpts if not c["final"]] == [("sft", 1), ("sft", 2)]
    assert run.final_model and (Path(run.final_model) / "config.json").is_file()
    assert "BUGFORGE_STATUS" in run.log_tail(5)


def workspaces_in(settings) -> set:
    return set((Path(settings.BUGFORGE_WORK_DIR) / "workspaces").glob("ws-*"))


def test_grpo_two_steps_with_the_sandbox_reward(tiny_model, rl_dataset, settings):
    before = workspaces_in(settings)  # the session's work dir may hold other tests' leftovers
    run = make_run("grpo", tiny_model, rl_dataset, max_steps=2, num_generations=2, per_device_train_batch_size=2,
                   max_completion_length=24, max_tool_calling_iterations=2, save_steps=10)
    runs.validate(run)
    assert runs.run_training(run.pk) == "succeeded", TrainingRun.objects.get(pk=run.pk).error
    run.refresh_from_db()
    curves = run.curves()
    assert [s for s, _ in curves["reward"]] == [1, 2]
    assert all(0.0 <= v <= 1.0 for _, v in curves["rewards/verifier_reward/mean"])
    assert "frac_reward_zero_std" in curves and "completions/mean_length" in curves
    # every graded rollout is a solve attempt by this run's checkpoint (measured difficulty)
    from episodes.models import SolveAttempt

    rollouts = SolveAttempt.objects.filter(source="grpo", solver=f"checkpoint:run-{run.pk}")
    dataset_bugs = {int(b) for side in rl_dataset.manifest["bugs"].values() for b in side}
    assert rollouts.count() >= 2 and set(rollouts.values_list("bug_id", flat=True)) <= dataset_bugs
    assert set(rollouts.values_list("reward", flat=True)) <= {0.0, 1.0}
    # every rollout's workspace is gone once the run ends
    assert workspaces_in(settings) <= before


def test_reward_is_one_for_a_correct_fix_and_zero_otherwise(approved_bug, settings):
    """The environment's tools act on a real buggy checkout, and the reward is the grader's."""
    from episodes.engine.repos.samples import SAMPLE_BUGS
    from training.datasets import rl_task
    from training.engine import grpo_env

    before = workspaces_in(settings)
    sample = SAMPLE_BUGS[0]
    task = json.dumps(rl_task(approved_bug))
    factory = grpo_env.environment_factory(runs.sandbox_config())
    fixed, untouched = factory(), factory()
    fixed.reset(task=task, bug_id=approved_bug.pk)
    untouched.reset(task=task, bug_id=approved_bug.pk)
    assert sample.new in fixed.view(sample.path)
    assert fixed.edit(sample.path, sample.new, sample.old).startswith("edited")
    assert "[exit code" in fixed.shell("python -m pytest -q tests/test_shipping.py")
    assert grpo_env.verifier_reward(completions=[[], []], environments=[fixed, untouched]) == [1.0, 0.0]
    # a wrong "fix" that only edits the tests is not rewarded
    cheat = factory()
    cheat.reset(task=task)
    cheat.edit("tests/test_shipping.py", "def test", "def _skipped_test")
    # nor one that forges pytest's reports from package code (the grader refuses it)
    forger = factory()
    forger.reset(task=task)
    forger.shell("printf 'import sys as _s\\n_m = _s.modules.get(\"_pytest.reports\")\\n' >> cartcalc/__init__.py")
    assert "_s.modules" in forger.view("cartcalc/__init__.py")
    assert grpo_env.verifier_reward(completions=[[], []], environments=[cheat, forger]) == [0.0, 0.0]
    assert forger._reason.startswith("suspicious change")
    # the rollout's workspace is a one-commit repository: git works, and there is no history to mine
    assert fixed.shell("git rev-list --all | wc -l").split() == ["[exit", "code", "0]", "1"]
    grpo_env.close_all({None: [fixed, untouched, cheat, forger]})
    assert workspaces_in(settings) <= before


def test_metrics_arrive_while_running_and_cancel_stops_it(tiny_model, sft_dataset, settings, redis_conn):
    """A real `train` worker: metric rows appear while the run is `running`; a cancel request
    stops it cleanly at a step end and the run ends `cancelled` short of its step budget."""
    import subprocess
    import time

    from tests.workers import manage, worker_env

    run = make_run("sft", tiny_model, sft_dataset, max_steps=5000, save_steps=100000)
    runs.start_run(run)
    worker = manage("rqworker", "train", "--burst", env=worker_env(settings),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        seen_while_running = 0
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status == "running":
                seen_while_running = run.metrics.filter(name="loss").count()
                if seen_while_running >= 2:
                    break
            assert run.status in ("queued", "running"), run.error
            time.sleep(0.3)
        assert seen_while_running >= 2, f"no metrics while running (status {run.status})"
        runs.request_cancel(run)
        assert worker.wait(timeout=180) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    run.refresh_from_db()
    assert run.status == "cancelled", run.error
    assert 2 <= run.step < 5000 and run.progress < 1
    assert run.metrics.filter(name="loss").count() >= seen_while_running
    assert run.final_model and (Path(run.final_model) / "config.json").is_file()  # saved at the clean stop


def test_a_missing_model_fails_with_a_clear_error(sft_dataset, tmp_path):
    run = make_run("sft", str(tmp_path / "no-such-model"), sft_dataset, max_steps=2)
    with pytest.raises(ValueError, match="base model not found"):
        runs.start_run(run)
    # and when the model vanishes after launch, the runner says so and the run fails
    assert runs.run_training(run.pk) == "failed"
    run.refresh_from_db()
    assert run.error.startswith("base model not found") and "no-such-model" in run.error


def test_launch_validation(tiny_model, sft_dataset, db):
    with pytest.raises(ValueError, match="GRPO trains on an RL dataset"):
        runs.validate(make_run("grpo", tiny_model, sft_dataset))
    with pytest.raises(ValueError, match="needs an RL dataset for its GRPO phase"):
        runs.validate(make_run("sft_grpo", tiny_model, sft_dataset))
    with pytest.raises(ValueError, match="max_steps: 'lots' is not a valid int"):
        runs.validate(make_run("sft", tiny_model, sft_dataset, max_steps="lots"))
    with pytest.raises(ValueError, match="num_generations"):
        runs.validate(_grpo_run_with(tiny_model, num_generations=3, per_device_train_batch_size=2))


def _grpo_run_with(model, **hparams):
    from training.models import Dataset

    fake_rl = Dataset(name="rl-x", kind="rl", path="/nonexistent", train_rows=1)
    run = TrainingRun(name="x", method="grpo", base_model=model, hyperparameters=hparams)
    run.dataset = fake_rl
    return run


def test_sft_then_grpo_with_lora(tiny_model, sft_dataset, rl_dataset):
    """Both phases in one process: SFT LoRA adapters merged into a full model that GRPO starts
    from; one continuous step axis (GRPO's steps follow SFT's)."""
    run = make_run("sft_grpo", tiny_model, sft_dataset, rl_dataset, sft_max_steps=2, max_steps=2,
                   num_generations=2, max_completion_length=16, max_tool_calling_iterations=1, lora_r=4)
    run.use_lora = True
    run.save()
    runs.start_run(run)  # validates and queues; run it here instead of in a worker
    run.refresh_from_db()
    assert run.max_steps == 4
    assert runs.run_training(run.pk) == "succeeded", TrainingRun.objects.get(pk=run.pk).error
    run.refresh_from_db()
    curves = run.curves(["loss", "reward"])
    assert [s for s, _ in curves["reward"]] == [3, 4] and {1, 2} <= {s for s, _ in curves["loss"]}
    phases = {c["phase"] for c in run.checkpoints() if c["final"]}
    assert phases == {"sft", "grpo"}
    assert (Path(run.output_dir) / "sft" / "adapter" / "adapter_config.json").is_file()
    assert run.final_model.endswith("grpo/final") and (Path(run.final_model) / "model.safetensors").is_file()
    config = json.loads((Path(run.output_dir) / "config.json").read_text())
    assert config["sft_dataset"] == sft_dataset.path and config["rl_dataset"] == rl_dataset.path


def test_a_run_whose_worker_died_is_swept(sft_dataset, tiny_model, redis_conn):
    run = make_run("sft", tiny_model, sft_dataset)
    TrainingRun.objects.filter(pk=run.pk).update(status="running", job_id="gone-job")
    assert [pk for pk, _ in TrainingRun.objects.sweep_stale()] == [run.pk]
    run.refresh_from_db()
    assert run.status == "failed" and "worker died" in run.error and "gone-job" in run.error
