from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from bugforge_web.stale_jobs import StaleJobQuerySet

COMMIT = RegexValidator(r"^[0-9a-f]{40}$", "a pinned commit is the full 40-hex commit id, never a branch or HEAD")


class RepositoryQuerySet(StaleJobQuerySet):
    def with_figures(self):
        """Bug counts for the list: candidates made, valid (approved included), invalid."""
        return self.annotate(
            bug_count=models.Count("bugs"),
            valid_count=models.Count("bugs", filter=models.Q(bugs__status__in=["valid", "approved"])),
            invalid_count=models.Count("bugs", filter=models.Q(bugs__status="invalid")),
        )


    def sweep_stale(self) -> list[tuple[int, str]]:
        """Repositories left preparing or baselining by a job that died (worker killed, job
        lost): broken, with why and what to do. Returns (repository id, why)."""
        return self._sweep_stale(
            statuses=["preparing", "baselining"], queue="verify",
            becomes=lambda repo, why: {"status": "broken", "progress": {},
                                       "error": f"preparation interrupted: {why}; prepare it again"})


class Repository(models.Model):
    """A codebase BugForge plants bugs in, pinned at one commit, with its test environment."""

    class Status(models.TextChoices):
        NEW = "new", "new"
        PREPARING = "preparing", "fetching and building"
        BASELINING = "baselining", "running baseline"
        READY = "ready", "ready"
        BROKEN = "broken", "baseline failed"

    name = models.SlugField(max_length=100, unique=True)
    source = models.CharField(max_length=500, help_text="git URL or local path of a git repository")
    ref = models.CharField(max_length=200, blank=True, help_text="the branch, tag or commit asked for")
    # Always the resolved 40-hex commit ("" only until the first fetch resolves ``ref``).
    pinned_commit = models.CharField(max_length=40, blank=True, validators=[COMMIT])
    previous_pin = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="repins")
    # What add_repo inferred from the checkout and why (engine.repos.detect.Detected.to_dict()),
    # and which fields the user set instead.
    detected = models.JSONField(default=dict, blank=True)
    overridden = models.JSONField(default=list, blank=True)
    progress = models.JSONField(default=dict, blank=True)  # {"step", "done", "total"} while preparing
    job_id = models.CharField(max_length=64, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True, help_text="removed from use; its bugs stay")
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
    # Which passing tests execute which source lines (engine.validate.coverage_map), from the baseline.
    coverage = models.JSONField(default=dict, blank=True)
    baseline_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RepositoryQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "repositories"

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("repository_detail", args=[self.pk])

    @property
    def short_commit(self) -> str:
        return self.pinned_commit[:12]

    @property
    def baseline_counts(self) -> dict[str, int]:
        """Tests at baseline by status: passed, failed, error, skipped (and missing)."""
        counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        for result in self.baseline_tests.values():
            counts[result.get("status", "error")] = counts.get(result.get("status", "error"), 0) + 1
        return counts

    @property
    def coverage_summary(self) -> dict:
        from episodes.engine.validate.coverage_map import summary

        return summary(self.coverage)

    @property
    def pip_packages(self) -> list[str]:
        return list(self.environment_spec.get("pip_packages", []))

    def step(self, step: str, done: int, total: int) -> None:
        self.progress = {"step": step, "done": done, "total": total}
        Repository.objects.filter(pk=self.pk).update(progress=self.progress, updated_at=timezone.now())

    @property
    def yield_rate(self) -> float | None:
        """Valid bugs per candidate (with_figures() rows only)."""
        return self.valid_count / self.bug_count if getattr(self, "bug_count", 0) else None

    @property
    def busy(self) -> bool:
        return self.status in (self.Status.PREPARING, self.Status.BASELINING)

    def archive(self) -> None:
        self.archived_at = timezone.now()
        self.save(update_fields=["archived_at", "updated_at"])

    @property
    def passing_tests(self) -> list[str]:
        return sorted(t for t, r in self.baseline_tests.items() if r.get("status") == "passed")

    def mark(self, status: str, error: str = "") -> None:
        self.status, self.error = status, error
        self.save(update_fields=["status", "error", "updated_at"])
