"""Datasets, training runs with their live metrics, and evaluations of models on held-out bugs."""
from pathlib import Path

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from bugforge_web.stale_jobs import StaleJobQuerySet
from training.engine import hyperparameters as hp


class Dataset(models.Model):
    """A built SFT or RL dataset: immutable once built; its manifest says how it was made."""

    class Kind(models.TextChoices):
        SFT = "sft", "SFT (trajectories)"
        RL = "rl", "RL (bugs + verifiers)"

    # Fields fixed at build time: a built dataset never changes (a new build is a new row).
    FROZEN_FIELDS = ("name", "kind", "filters", "manifest", "path", "train_rows", "heldout_rows", "content_hash")

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=4, choices=Kind)
    filters = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
    path = models.CharField(max_length=500, blank=True)
    train_rows = models.PositiveIntegerField(default=0)
    heldout_rows = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.pk:
            stored = type(self).objects.filter(pk=self.pk).values(*self.FROZEN_FIELDS).first()
            if stored and stored["content_hash"]:
                changed = [f for f in self.FROZEN_FIELDS if stored[f] != getattr(self, f)]
                if changed:
                    raise ValueError(f"dataset {stored['name']} is immutable once built (tried to change {', '.join(changed)})")
        super().save(*args, **kwargs)

    @property
    def heldout_bug_ids(self) -> list[int]:
        return list(self.manifest.get("bugs", {}).get("heldout", []))


class TrainingRunQuerySet(StaleJobQuerySet):
    def sweep_stale(self) -> list[tuple[int, str]]:
        """Runs left `queued`/`running` by a worker that died (its RQ job failed, stopped or
        vanished) end `failed` with the reason. Returns (run id, why)."""
        return self._sweep_stale(
            statuses=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING], queue="train",
            silent=lambda run, cutoff: (run.status == TrainingRun.Status.RUNNING and run.heartbeat_at is not None
                                        and run.heartbeat_at < cutoff),
            becomes=lambda run, why: {"status": TrainingRun.Status.FAILED, "error": f"the training worker died: {why}",
                                      "finished_at": timezone.now()},
        )


class TrainingRun(models.Model):
    """One training run: method, base model, dataset(s), hyperparameters, and what came of it.

    ``dataset`` is the SFT set for `sft` and `sft_grpo`, the RL set for `grpo`; ``rl_dataset``
    is the RL set of the GRPO phase of `sft_grpo`.
    """

    objects = TrainingRunQuerySet.as_manager()

    class Method(models.TextChoices):
        SFT = "sft", "SFT"
        GRPO = "grpo", "GRPO"
        SFT_GRPO = "sft_grpo", "SFT then GRPO"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    # Key hyperparameters and their defaults per method (forms show these; see engine.hyperparameters).
    DEFAULT_HYPERPARAMETERS = hp.DEFAULTS
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    name = models.CharField(max_length=200)
    method = models.CharField(max_length=8, choices=Method)
    base_model = models.CharField(max_length=500, help_text="local path (or hub id where the host reaches a hub)")
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
    rl_dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="rl_runs",
        help_text="the RL set of the GRPO phase (SFT then GRPO only)",
    )
    hyperparameters = models.JSONField(default=dict, blank=True)
    use_lora = models.BooleanField(default=False)
    device = models.CharField(max_length=32, default="cpu")
    status = models.CharField(max_length=12, choices=Status, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(default=0)
    output_dir = models.CharField(max_length=500, blank=True)
    log_path = models.CharField(max_length=500, blank=True)
    final_model = models.CharField(max_length=500, blank=True, help_text="directory of the trained model")
    job_id = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("training_run_detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def progress(self) -> float:
        """0..1: optimizer steps done over the run's step budget (1 once succeeded)."""
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        if not self.max_steps:
            return 0.0
        return max(0.0, min(1.0, self.step / self.max_steps))

    def resolved_hyperparameters(self) -> dict:
        """The defaults of the method updated by this run's own values."""
        return hp.resolve(self.method, self.hyperparameters)

    def curves(self, names=None) -> dict[str, list[tuple[int, float]]]:
        """{metric name: [(step, value), …]} sorted by step; ``names`` limits the metrics."""
        points = self.metrics.all()
        if names is not None:
            points = points.filter(name__in=list(names))
        out: dict[str, list[tuple[int, float]]] = {}
        for step, name, value in points.order_by("name", "step").values_list("step", "name", "value"):
            out.setdefault(name, []).append((step, value))
        return out

    def log_tail(self, lines: int = 100) -> str:
        """The last ``lines`` lines of the training process's output ("" before it starts)."""
        if not self.log_path:
            return ""
        path = Path(self.log_path)
        if not path.is_file():
            return ""
        with path.open("rb") as fh:  # read only the end: logs of long runs grow large
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 200 * lines))
            data = fh.read().decode("utf-8", "replace")
        return "\n".join(data.splitlines()[-lines:])

    def checkpoints(self) -> list[dict]:
        """Saved checkpoints and final models: [{"phase", "step", "path", "final"}] by phase then step."""
        if not self.output_dir or not Path(self.output_dir).is_dir():
            return []
        found = []
        for phase_dir in sorted(p for p in Path(self.output_dir).iterdir() if p.is_dir()):
            for ckpt in phase_dir.glob("checkpoint-*"):
                try:
                    step = int(ckpt.name.split("-", 1)[1])
                except ValueError:
                    continue
                found.append({"phase": phase_dir.name, "step": step, "path": str(ckpt), "final": False})
            if (phase_dir / "final" / "config.json").is_file() or (phase_dir / "final" / "adapter_config.json").is_file():
                found.append({"phase": phase_dir.name, "step": None, "path": str(phase_dir / "final"), "final": True})
        order = {"sft": 0, "grpo": 1}
        return sorted(found, key=lambda c: (order.get(c["phase"], 2), c["final"], c["step"] or 0))


class MetricPoint(models.Model):
    """One logged metric at one optimizer step (loss, reward, reward_std, kl, …)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    value = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "name", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "name", "step"], name="one_point_per_step")]

    def __str__(self):
        return f"{self.name}@{self.step}={self.value:g}"


class Evaluation(models.Model):
    """A model (trained checkpoint, base model or teacher) run as the built-in agent over the
    held-out bugs of a dataset, k attempts each: pass@1 and pass@k with confidence intervals."""

    class Subject(models.TextChoices):
        CHECKPOINT = "checkpoint", "trained checkpoint"
        BASE = "base", "base model"
        TEACHER = "teacher", "teacher endpoint"
        EPISODES = "episodes", "existing teacher episodes"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=12, choices=Subject)
    run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations")
    model_path = models.CharField(max_length=500, blank=True, help_text="checkpoint or base model directory")
    teacher = models.ForeignKey("episodes.Teacher", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="evaluations")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="evaluations",
                                help_text="its held-out bugs are the evaluation set")
    k = models.PositiveSmallIntegerField(default=1, help_text="attempts per bug")
    options = models.JSONField(default=dict, blank=True, help_text="max steps, max new tokens, temperature")
    status = models.CharField(max_length=12, choices=Status, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    progress = models.JSONField(default=dict, blank=True)  # {"done": n, "total": m}
    attempts = models.JSONField(default=list, blank=True, help_text="[{bug_id, repository, difficulty, attempt, reward, …}]")
    results = models.JSONField(default=dict, blank=True, help_text="pass@1, pass@k, intervals; per repository and difficulty")
    job_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name

    @property
    def pass_at_1(self):
        return (self.results.get("overall") or {}).get("pass@1")
