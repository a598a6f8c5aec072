"""Graded attempts at a bug, from any solver, and self-play campaigns that aim at a difficulty band.

A ``SolveAttempt`` is one reward on one bug by one solver: a teacher episode, an evaluation
attempt, a GRPO rollout or a self-play probe. The bug's measured difficulty (its solve rate with
an interval, per solver and overall) is computed from these rows alone.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class SolveAttempt(models.Model):
    class Source(models.TextChoices):
        EPISODE = "episode"
        EVALUATION = "evaluation"
        GRPO = "grpo", "GRPO rollout"
        SELFPLAY = "selfplay", "self-play"
        IMPORTED = "imported"

    bug = models.ForeignKey("episodes.Bug", on_delete=models.CASCADE, related_name="solve_attempts_set")
    solver = models.CharField(max_length=300, db_index=True, help_text='e.g. "teacher:sonnet", "checkpoint:run-7"')
    source = models.CharField(max_length=16, choices=Source)
    # Idempotent recording: the same attempt recorded twice is one row.
    key = models.CharField(max_length=200, unique=True, help_text='e.g. "episode:12", "evaluation:3:bug5:2"')
    reward = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["bug", "solver"])]

    def __str__(self):
        return f"{self.solver} on bug {self.bug_id}: {self.reward}"


class SelfPlay(models.Model):
    """Rounds of plant → attempt → shift generation toward a target solve-rate band."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    repository = models.ForeignKey("episodes.Repository", on_delete=models.CASCADE, related_name="selfplays")
    solver = models.CharField(max_length=300, help_text='"teacher:<name>" or "checkpoint:<path>"')
    band_low = models.FloatField(default=0.2)
    band_high = models.FloatField(default=0.8)
    rounds_planned = models.PositiveSmallIntegerField(default=4)
    bugs_per_round = models.PositiveSmallIntegerField(default=8)
    attempts_per_bug = models.PositiveSmallIntegerField(default=4)
    seed = models.BigIntegerField(default=0)
    policy = models.JSONField(default=dict, blank=True, help_text="the generation policy now (weights per arm)")
    rounds = models.JSONField(default=list, blank=True, help_text="[{round, policy, planted, valid, in_band, hit_rate, ...}]")
    status = models.CharField(max_length=12, choices=Status, default=Status.QUEUED)
    error = models.TextField(blank=True)
    job_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"self-play {self.pk} on {self.repository_id} ({self.solver})"
