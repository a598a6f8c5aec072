from django.db import models
from django.urls import reverse


class Repository(models.Model):
    """A codebase BugForge plants bugs in, pinned at one commit, with its test environment."""

    class Status(models.TextChoices):
        NEW = "new", "new"
        BASELINING = "baselining", "running baseline"
        READY = "ready", "ready"
        BROKEN = "broken", "baseline failed"

    name = models.SlugField(max_length=100, unique=True)
    source = models.CharField(max_length=500, help_text="git URL or local path of a git repository")
    pinned_commit = models.CharField(max_length=40)
    install_command = models.CharField(
        max_length=500, blank=True, help_text="run once when the environment is built (e.g. pip install -r requirements.txt)"
    )
    test_command = models.CharField(max_length=500, default="python -m pytest")
    environment_spec = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"pip_packages": ["pytest==9.2.0"]}'
    )
    status = models.CharField(max_length=16, choices=Status, default=Status.NEW, db_index=True)
    error = models.TextField(blank=True)

    # Baseline: the clean suite's per-test status from JUnit XML, {test_id: {"status", "duration"}}.
    baseline_tests = models.JSONField(default=dict, blank=True)
    baseline_duration_s = models.FloatField(null=True, blank=True)
    # Which passing tests execute which source lines (engine.coverage_map), from the baseline.
    coverage = models.JSONField(default=dict, blank=True)
    baseline_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "repositories"

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("repository_detail", args=[self.pk])

    @property
    def passing_tests(self) -> list[str]:
        return sorted(t for t, r in self.baseline_tests.items() if r.get("status") == "passed")

    def mark(self, status: str, error: str = "") -> None:
        self.status, self.error = status, error
        self.save(update_fields=["status", "error", "updated_at"])
