from django.db import models


class VerificationRun(models.Model):
    """One sandboxed run of a verifier or test suite against one version of the code."""

    class Code(models.TextChoices):
        CLEAN = "clean"
        BUGGY = "buggy"
        REVERSE = "reverse", "buggy + reverse patch"
        CANDIDATE = "candidate", "buggy + candidate fix"
        HUNK = "hunk", "buggy with one hunk reverted"

    class Scope(models.TextChoices):
        VERIFIER = "verifier"
        SUITE = "suite", "full test suite"
        TESTS = "tests", "selected tests"

    class Outcome(models.TextChoices):
        PASSED = "passed"
        FAILED = "failed"
        ERROR = "error"
        TIMEOUT = "timeout"
        NO_TESTS = "no_tests", "no tests ran"

    bug = models.ForeignKey("episodes.Bug", on_delete=models.CASCADE, related_name="runs", null=True, blank=True)
    repository = models.ForeignKey("episodes.Repository", on_delete=models.CASCADE, related_name="runs")
    episode = models.ForeignKey("episodes.Episode", on_delete=models.CASCADE, null=True, blank=True, related_name="runs")
    code = models.CharField(max_length=12, choices=Code)
    scope = models.CharField(max_length=12, choices=Scope, default=Scope.VERIFIER)
    purpose = models.CharField(max_length=32, blank=True, help_text="validation, flakiness, rerun, baseline, reward…")
    outcome = models.CharField(max_length=8, choices=Outcome)
    exit_code = models.IntegerField(null=True, blank=True)
    killed_by = models.CharField(max_length=16, blank=True)
    duration_s = models.FloatField(default=0)
    seed = models.BigIntegerField(null=True, blank=True)
    tests = models.JSONField(default=dict, blank=True, help_text="{test_id: status} from JUnit XML")
    log_excerpt = models.TextField(blank=True)
    backend = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["bug", "code", "scope"])]

    def __str__(self):
        return f"{self.code}/{self.scope}: {self.outcome}"
