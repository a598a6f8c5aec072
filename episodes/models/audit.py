from django.conf import settings
from django.db import models


class Review(models.Model):
    """One reviewer's verdict on one bug, on SWE-bench Verified's rubric."""

    class Verdict(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    bug = models.ForeignKey("episodes.Bug", on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews")
    underspecified = models.PositiveSmallIntegerField(default=0, help_text="0–3")
    rejects_valid_fixes = models.PositiveSmallIntegerField(default=0, help_text="0–3")
    other_major_issue = models.BooleanField(default=False)
    difficulty = models.CharField(max_length=8, blank=True)
    notes = models.TextField(blank=True)
    verdict = models.CharField(max_length=8, choices=Verdict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bug", "reviewer"], name="one_review_per_reviewer")]

    def __str__(self):
        return f"{self.reviewer} {self.verdict}s bug {self.bug_id}"

    @property
    def drops(self) -> bool:
        """This review alone drops the bug (SWE-bench Verified's rule: a severity ≥ 2 on either
        scale, another major issue, or a reject)."""
        return (self.verdict == self.Verdict.REJECT or self.underspecified >= 2 or self.rejects_valid_fixes >= 2
                or self.other_major_issue)

    @classmethod
    def outcome(cls, reviews) -> str:
        """What several reviewers' reviews settle: "rejected" when any drops the bug, else
        "approved" (the one place the Verified rule is written)."""
        return "rejected" if any(r.drops for r in reviews) else "approved"


class AuditEvent(models.Model):
    """Who changed what, when, with the values before and after."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self):
        return f"{self.actor} {self.action} {self.target_type}:{self.target_id}"

    @classmethod
    def record(cls, actor, action: str, target, before: dict | None = None, after: dict | None = None):
        return cls.objects.create(
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            action=action,
            target_type=target._meta.label_lower,
            target_id=str(target.pk),
            before=before or {},
            after=after or {},
        )
