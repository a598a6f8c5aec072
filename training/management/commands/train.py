import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from training import runs
from training.models import Dataset, TrainingRun


def parse_sets(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CommandError(f"--set {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


class Command(BaseCommand):
    help = "Launch a training run (SFT, GRPO, or SFT then GRPO); --sync runs it here with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("--method", choices=[m.value for m in TrainingRun.Method], required=True)
        parser.add_argument("--model", required=True, help="base model directory (e.g. from make_tiny_model)")
        parser.add_argument("--dataset", required=True, help="SFT set for sft / sft_grpo, RL set for grpo")
        parser.add_argument("--rl-dataset", help="the RL set of the GRPO phase (sft_grpo)")
        parser.add_argument("--name", help="run name")
        parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="hyperparameter (repeatable)")
        parser.add_argument("--lora", action="store_true", help="train LoRA adapters (peft)")
        parser.add_argument("--device", default="cpu", help="cpu or cuda")
        parser.add_argument("--sync", action="store_true", help="run here and show progress instead of queueing")

    def handle(self, method, model, dataset, rl_dataset, name, set, lora, device, sync, **options):
        def get(ds_name):
            try:
                return Dataset.objects.get(name=ds_name)
            except Dataset.DoesNotExist:
                raise CommandError(f"no dataset named {ds_name}")

        run = TrainingRun(
            name=name or f"{method} on {dataset}", method=method, base_model=model, dataset=get(dataset),
            rl_dataset=get(rl_dataset) if rl_dataset else None, hyperparameters=parse_sets(set),
            use_lora=lora, device=device,
        )
        try:
            runs.validate(run)
        except ValueError as exc:
            raise CommandError(str(exc))
        if not sync:
            runs.start_run(run)
            self.stdout.write(f"run {run.pk} queued on 'train' (job {run.job_id})")
            return
        run.max_steps = runs.total_steps(run)
        run.save()
        self._run_here(run)

    def _run_here(self, run):
        from training.runs import run_training

        errors = []

        def work():
            try:
                run_training(run.pk)
            except Exception as exc:  # noqa: BLE001 - reported below; the run row has the detail
                errors.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        bar = tqdm(total=run.max_steps, desc=f"run {run.pk}", unit="step", file=self.stderr)
        try:
            while thread.is_alive():
                thread.join(1.0)
                self._update(bar, run)
        except KeyboardInterrupt:
            self.stderr.write("cancelling: the run stops at the end of its current step…")
            runs.request_cancel(run)
            thread.join()
        self._update(bar, run)
        bar.close()
        run.refresh_from_db()
        self.stdout.write(f"run {run.pk}: {run.status} at step {run.step}/{run.max_steps}"
                          + (f"; model at {run.final_model}" if run.final_model else ""))
        if run.status == TrainingRun.Status.FAILED:
            raise CommandError(run.error.strip().splitlines()[-1] if run.error.strip() else "failed")

    @staticmethod
    def _update(bar, run):
        run.refresh_from_db()
        bar.total = run.max_steps or bar.total
        bar.n = run.step
        last = run.metrics.order_by("-step", "name").filter(name__in=["loss", "reward"]).values_list("name", "value")[:2]
        bar.set_postfix({k: f"{v:.4g}" for k, v in last}, refresh=False)
        bar.refresh()
