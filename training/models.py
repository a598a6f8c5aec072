from django.conf import settings
from django.db import models
from django.urls import reverse


class Dataset(models.Model):
    """A built SFT or RL dataset: immutable once built; its manifest says how it was made."""

    class Kind(models.TextChoices):
        SFT = "sft", "SFT (trajectories)"
        RL = "rl", "RL (bugs + verifiers)"

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


class TrainingRun(models.Model):
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

    name = models.CharField(max_length=200)
    method = models.CharField(max_length=8, choices=Method)
    base_model = models.CharField(max_length=500, help_text="local path (or hub id where the host reaches a hub)")
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
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
    job_id = models.CharField(max_length=64, blank=True)
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
