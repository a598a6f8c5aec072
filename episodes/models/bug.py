import hashlib

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from bugforge_web.stale_jobs import StaleJobQuerySet


class InjectionBatchQuerySet(models.QuerySet):
    def with_progress(self):
        """Batches as their progress row shows them: repository loaded, valid bugs counted."""
        return self.select_related("repository").annotate(
            valid=models.Count("bugs", filter=models.Q(bugs__status__in=["valid", "approved"])),
            settling=models.Count("bugs", filter=models.Q(bugs__status__in=["candidate", "validating"])),
        )


class InjectionBatch(models.Model):
    """One `inject` job: K candidates asked of one method on one repository."""

    objects = InjectionBatchQuerySet.as_manager()

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    repository = models.ForeignKey("episodes.Repository", on_delete=models.CASCADE, related_name="batches")
    method = models.CharField(max_length=32)
    requested = models.PositiveIntegerField(default=1)
    planned = models.PositiveIntegerField(default=0, help_text="distinct candidates found (≤ requested)")
    produced = models.PositiveIntegerField(default=0)
    generation_s = models.FloatField(default=0, help_text="seconds spent planning and generating, failed attempts included")
    seed = models.BigIntegerField(default=0)
    options = models.JSONField(default=dict, blank=True, help_text="operators, LLM endpoint, mode")
    status = models.CharField(max_length=16, choices=Status, default=Status.QUEUED)
    error = models.TextField(blank=True)
    # why the batch made no (or fewer) candidates than asked: never "done, 0 candidates" unexplained
    note = models.TextField(blank=True)
    job_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "injection batches"

    def __str__(self):
        return f"{self.method} ×{self.requested} on {self.repository}"

    def mark(self, status: str, error: str = "") -> None:
        self.status, self.error = status, error
        fields = ["status", "error"]
        if status in (self.Status.DONE, self.Status.FAILED):
            self.finished_at = timezone.now()
            fields.append("finished_at")
        type(self).objects.filter(pk=self.pk).update(**{f: getattr(self, f) for f in fields})


class BugQuerySet(StaleJobQuerySet):
    def sweep_stale(self, stale_after_s: int | None = None) -> list[tuple[int, str]]:
        """Reset bugs stuck in `validating` whose job is gone, failed, or silent for too
        long (a worker killed outright runs no failure handler). Returns (bug id, why)."""
        return self._sweep_stale(
            statuses=[Bug.Status.VALIDATING], queue="verify", job_field="validation_job_id", without_job=True,
            silent=lambda bug, cutoff: bug.heartbeat_at is None or bug.heartbeat_at < cutoff,
            becomes=lambda bug, why: {
                "status": Bug.Status.CANDIDATE,
                "error": f"validation interrupted: {why}; queue it again" + (f"\n\nits last error: {bug.error}" if bug.error else ""),
            },
            stale_after_s=stale_after_s,
        )


# A review's rubric: what an undo puts back.
RUBRIC = ("underspecified", "rejects_valid_fixes", "other_major_issue", "difficulty", "notes", "verdict")


class Bug(models.Model):
    """A planted bug: a patch that breaks clean code, and a verifier that passes only once fixed."""

    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        VALIDATING = "validating"
        VALID = "valid"
        INVALID = "invalid"
        FLAKY = "flaky"
        APPROVED = "approved"
        REJECTED = "rejected"

    class Method(models.TextChoices):
        MANUAL = "manual"
        PROCEDURAL = "procedural", "procedural (AST)"
        LLM_MODIFY = "llm_modify", "LLM modify"
        LLM_REWRITE = "llm_rewrite", "LLM rewrite"
        COMBINE = "combine"
        HISTORY = "history"
        LLM_REMOVE = "llm_remove", "LLM feature removal"
        IMPORTED = "imported"

    class Difficulty(models.TextChoices):
        UNDER_15M = "<15m", "< 15 min"
        UNDER_1H = "15m-1h", "15 min – 1 h"
        UNDER_4H = "1h-4h", "1 – 4 h"
        OVER_4H = ">4h", "> 4 h"

    repository = models.ForeignKey("episodes.Repository", on_delete=models.CASCADE, related_name="bugs")
    batch = models.ForeignKey(InjectionBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="bugs")
    base_commit = models.CharField(max_length=40)
    method = models.CharField(max_length=16, choices=Method, default=Method.MANUAL)
    operator = models.CharField(max_length=64, blank=True, help_text="procedural operator or LLM mode detail")
    injector = models.CharField(max_length=200, blank=True, help_text="model or tool that planted it")
    target = models.CharField(max_length=300, blank=True, help_text="file::function the bug lives in")
    seed = models.BigIntegerField(null=True, blank=True)
    generation_s = models.FloatField(null=True, blank=True, help_text="seconds spent producing this candidate")

    patch = models.TextField(help_text="unified diff: clean → buggy")
    original_patch = models.TextField(blank=True, help_text="the patch as planted, when validation dropped hunks")
    dropped_hunks = models.JSONField(default=list, blank=True, help_text="hunks validation dropped as not needed")
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates",
                                     help_text="the bug whose patch this one's became")
    patch_hash = models.CharField(max_length=64, db_index=True, editable=False)
    verifier = models.TextField(help_text="python script; exit 0 only when the bug is fixed")
    problem_statement = models.TextField(blank=True)
    fail_to_pass = models.JSONField(default=list, blank=True)
    pass_to_pass = models.JSONField(default=list, blank=True)
    # "covering": the buggy run was only the tests executing the patched lines (the others pass by
    # construction and are in PASS_TO_PASS); "full": the whole suite ran
    suite_scope = models.CharField(max_length=16, blank=True)

    status = models.CharField(max_length=16, choices=Status, default=Status.CANDIDATE)
    invalid_reason = models.TextField(blank=True)
    invalid_kind = models.CharField(max_length=40, blank=True, db_index=True, help_text="reason, as a short code for figures")
    error = models.TextField(blank=True, help_text="why the last validation job crashed (re-queueable)")
    quarantined = models.BooleanField(default=False)
    stable_reason = models.TextField(blank=True, help_text="why staff marked a flaky verifier stable")
    difficulty = models.CharField(max_length=8, choices=Difficulty, blank=True)

    # Measured difficulty: every graded attempt (SolveAttempt rows), all solvers together.
    solve_attempts = models.PositiveIntegerField(default=0)
    solve_successes = models.PositiveIntegerField(default=0)
    solve_rate = models.FloatField(null=True, blank=True, db_index=True, help_text="solved / graded attempts, all solvers")
    solve_low = models.FloatField(null=True, blank=True, help_text="95% interval, lower end")
    solve_high = models.FloatField(null=True, blank=True, help_text="95% interval, upper end")

    # Realism of a procedural change: 1.0 = a slip a person could make; low = no human writes it.
    realism = models.FloatField(null=True, blank=True, db_index=True)
    realism_notes = models.JSONField(default=list, blank=True, help_text="why the score is what it is")

    class StatementSource(models.TextChoices):
        TEMPLATE = "template"
        LLM = "llm"
        MANUAL = "manual"
        IMPORTED = "imported"

    class StatementStyle(models.TextChoices):
        SYMPTOM = "symptom", "symptom only"
        TRACEBACK = "traceback", "with a traceback"
        FUNCTION = "function", "naming the function"

    statement_source = models.CharField(max_length=16, choices=StatementSource, blank=True)
    statement_style = models.CharField(max_length=16, choices=StatementStyle, blank=True)
    statement_flags = models.JSONField(default=dict, blank=True, help_text='{"leaks": [...], "underspecified": bool, ...}')
    provenance = models.JSONField(default=dict, blank=True, help_text="where the bug came from (imports, self-play round)")

    # Flakiness: verifier agreement over repeated runs (see engine.validate.flakiness).
    clean_runs = models.PositiveIntegerField(default=0)
    clean_passes = models.PositiveIntegerField(default=0)
    buggy_runs = models.PositiveIntegerField(default=0)
    buggy_fails = models.PositiveIntegerField(default=0)
    flip_rate = models.FloatField(null=True, blank=True)
    flake_upper_bound = models.FloatField(null=True, blank=True, help_text="95% upper bound on the flake rate")
    flake_target = models.FloatField(null=True, blank=True, help_text="the bound the reruns aimed at (stable: bound < target)")

    validation_job_id = models.CharField(max_length=64, blank=True)
    validation_started_at = models.DateTimeField(null=True, blank=True, help_text="runs before this belong to an older verifier or patch")
    validation_progress = models.JSONField(default=dict, blank=True)  # {"done": n, "total": m, "step": "..."}
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    validated_at = models.DateTimeField(null=True, blank=True)
    validation_s = models.FloatField(null=True, blank=True, help_text="wall seconds of the last validation")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BugQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["repository", "status"]),
            models.Index(fields=["status", "-created_at"]),
            models.Index(fields=["method", "operator"]),
            models.Index(fields=["difficulty", "-created_at"]),
            models.Index(fields=["flake_upper_bound"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["repository", "base_commit", "patch_hash"], name="unique_bug_patch"),
        ]

    def __str__(self):
        return f"bug {self.pk} ({self.repository_id}:{self.target or self.method})"

    def get_absolute_url(self):
        return reverse("bug_detail", args=[self.pk])

    @staticmethod
    def hash_patch(patch: str) -> str:
        """Hash of the patch with whitespace-only differences and hunk headers normalized,
        so the same edit found twice is one bug."""
        lines = [
            line.rstrip()
            for line in patch.splitlines()
            if line.strip() and not line.startswith(("index ", "@@"))
        ]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def save(self, *args, **kwargs):
        self.patch_hash = self.hash_patch(self.patch)
        if kwargs.get("update_fields") is not None and "patch" in kwargs["update_fields"]:
            kwargs["update_fields"] = {*kwargs["update_fields"], "patch_hash"}
        super().save(*args, **kwargs)

    @property
    def is_settled(self) -> bool:
        return self.status not in (self.Status.CANDIDATE, self.Status.VALIDATING)

    def beat(self, **progress) -> None:
        """Record that the validation job is alive (the sweeper resets silent ones)."""
        self.heartbeat_at = timezone.now()
        fields = ["heartbeat_at"]
        if progress:
            self.validation_progress = progress
            fields.append("validation_progress")
        type(self).objects.filter(pk=self.pk).update(**{f: getattr(self, f) for f in fields})

    def apply_verdict(self, verdict) -> None:
        """Store an engine.validate.validator.Verdict on this bug. Dropped hunks are kept (the planted
        patch in ``original_patch``); a shortened patch that another bug already has makes
        this bug an invalid duplicate of that one, its own patch untouched."""
        from django.db import IntegrityError, transaction

        self.status = verdict.status
        self.invalid_reason = verdict.reason if verdict.status != self.Status.VALID else ""
        self.invalid_kind = verdict.kind if verdict.status == self.Status.INVALID else ""
        self.error = ""
        self.fail_to_pass, self.pass_to_pass = verdict.fail_to_pass, verdict.pass_to_pass
        self.suite_scope = verdict.suite_scope
        if verdict.flakiness:
            self._set_flakiness(verdict.flakiness)
        self.validated_at = timezone.now()
        self.validation_progress = {}
        if verdict.patch and verdict.patch != self.patch:  # decoration hunks dropped
            self.original_patch = verdict.original_patch or self.patch
            self.dropped_hunks = list(verdict.dropped)
            twin = self._twin(verdict.patch)
            if twin is None:
                self.patch = verdict.patch
                self._collapse_near_duplicate()
                try:
                    with transaction.atomic():
                        settled = self._settle_reviews()
                        self.save()
                    self._audit_reviews(settled)
                    return
                except IntegrityError:  # the twin arrived meanwhile
                    self.patch = self.original_patch
                    twin = self._twin(verdict.patch)
            self._mark_duplicate(twin, len(self.dropped_hunks))
        self._collapse_near_duplicate()
        settled = self._settle_reviews()
        self.save()
        self._audit_reviews(settled)

    def _settle_reviews(self) -> str:
        """Curation is never lost to a new verdict: a reviewed bug found valid again gets its
        reviews' outcome back (approved or rejected); one that is no longer valid says why its
        outcome lapsed (its reviews are kept, and apply again once it is valid). Returns what
        happened ("" for an unreviewed bug)."""
        if not self.pk or not self.reviews.exists():
            return ""
        if self.status == self.Status.VALID:
            self.status = self.reviewed_status()
            return "kept"
        self.invalid_reason = (f"{self.invalid_reason} — its review outcome lapsed: the new verdict is "
                               f"{self.status}; the reviews are kept and apply again once it is valid").lstrip(" —")
        return "lapsed"

    def _audit_reviews(self, settled: str) -> None:
        if settled:
            from episodes.models.audit import AuditEvent

            AuditEvent.record(None, f"review_outcome_{settled}", self,
                              after={"status": self.status, "reason": self.invalid_reason})

    def reviewed_status(self, reviews=None) -> str:
        """The outcome of the bug's reviews (SWE-bench Verified's rule: any severity ≥ 2, any
        other major issue or any reject drops it; otherwise an approve approves it)."""
        from episodes.models.audit import Review

        reviews = list(self.reviews.all()) if reviews is None else reviews
        return self.Status(Review.outcome(reviews))

    def _set_flakiness(self, figures) -> None:
        self.clean_runs, self.clean_passes = figures.clean_runs, figures.clean_passes
        self.buggy_runs, self.buggy_fails = figures.buggy_runs, figures.buggy_fails
        self.flip_rate, self.flake_upper_bound = figures.flip_rate, figures.upper_bound
        if figures.target is not None:
            self.flake_target = figures.target

    def _twin(self, patch: str):
        return (type(self).objects.filter(repository_id=self.repository_id, base_commit=self.base_commit,
                                          patch_hash=self.hash_patch(patch)).exclude(pk=self.pk).first())

    def _collapse_near_duplicate(self) -> None:
        """A valid bug changing the same line(s) as an earlier valid/approved bug of this
        repository and pin, with the same FAIL_TO_PASS, adds nothing: invalid "near_duplicate"."""
        from episodes.engine.inject.mutators.realism import changed_lines

        if self.status != self.Status.VALID or not self.fail_to_pass:
            return
        lines = changed_lines(self.patch)
        earlier = (type(self).objects.filter(repository_id=self.repository_id, base_commit=self.base_commit,
                                             status__in=[self.Status.VALID, self.Status.APPROVED],
                                             fail_to_pass__contains=self.fail_to_pass[:1])
                   .exclude(pk=self.pk).order_by("created_at", "id").only("id", "patch", "fail_to_pass"))
        if self.pk:
            earlier = earlier.filter(id__lt=self.pk)
        failing = set(self.fail_to_pass)
        twin = next((b for b in earlier if set(b.fail_to_pass) == failing and changed_lines(b.patch) == lines), None)
        if twin is None:
            return
        self.status, self.invalid_kind, self.duplicate_of = self.Status.INVALID, "near_duplicate", twin
        self.invalid_reason = (f"near-duplicate of bug {twin.pk}: it changes the same line(s) "
                               f"({', '.join(f'{p}:{n}' for p, n in sorted(lines))}) and fails the same tests")

    def _mark_duplicate(self, twin, dropped: int) -> None:
        self.status, self.invalid_kind = self.Status.INVALID, "duplicate"
        self.duplicate_of = twin
        self.invalid_reason = (f"without its {dropped} unneeded hunk(s) the patch is that of bug {twin.pk if twin else '?'}"
                               " (the planted patch and the dropped hunks are kept here)")
        self.fail_to_pass, self.pass_to_pass = [], []

    def fail_validation(self, error: str, seconds: float | None = None) -> None:
        """The validation job crashed: the bug ends invalid with the error kept (staff can
        validate it again), never stuck in `validating`."""
        first_line = error.strip().splitlines()[0] if error.strip() else "unknown error"
        type(self).objects.filter(pk=self.pk).update(
            status=self.Status.INVALID, invalid_kind="validation_error", error=error,
            invalid_reason=f"validation crashed: {first_line[:500]}", validation_progress={},
            validated_at=timezone.now(), validation_s=seconds,
        )

    def verifier_runs(self):
        """The verifier runs that count for the current verifier and patch."""
        runs = self.runs.filter(scope="verifier", code__in=["clean", "reverse", "buggy"])
        if self.validation_started_at:
            runs = runs.filter(created_at__gte=self.validation_started_at)
        return runs.order_by("id")

    def run_outcomes(self) -> tuple[list[bool], list[bool]]:
        """Per counted verifier run, in run order: clean runs that passed, buggy runs that failed."""
        runs = list(self.verifier_runs().values_list("code", "outcome"))
        return [o == "passed" for c, o in runs if c != "buggy"], [o == "failed" for c, o in runs if c == "buggy"]

    def measure_flakiness(self, target: float | None = None):
        """The figures from every counted run so far, set on this instance (not saved): what a
        page shows while reruns are still coming in."""
        from episodes.engine.validate import flakiness
        figures = flakiness.measure(*self.run_outcomes(), target=target or self.flake_target)
        self._set_flakiness(figures)
        return figures

    def refresh_flakiness(self, target: float | None = None) -> None:
        """Recompute the figures from every counted run (after reruns); a valid or approved
        bug whose verifier now disagrees with itself becomes flaky."""
        figures = self.measure_flakiness(target)
        if figures.disagrees and self.status in (self.Status.VALID, self.Status.APPROVED):
            self.status, self.invalid_reason = self.Status.FLAKY, figures.describe()
        self.save()

    @property
    def flakiness(self):
        """The stored figures as an engine.validate.flakiness.Flakiness."""
        from episodes.engine.validate import flakiness
        return flakiness.Flakiness(self.clean_runs, self.clean_passes, self.buggy_runs, self.buggy_fails,
                                   self.flip_rate, self.flake_upper_bound or 1.0, self.flake_target)

    def stable_at(self, target: float) -> bool:
        """Its verifier never disagreed and the flake rate's bound is below ``target`` — or staff
        marked it stable (with a reason)."""
        if self.stable_reason:
            return True
        return self.flake_upper_bound is not None and not self.flakiness.disagrees and self.flake_upper_bound < target

    @property
    def flakiness_summary(self) -> str:
        if not self.clean_runs and not self.buggy_runs:
            return "not measured"
        return self.flakiness.describe()

    # --- curation (staff) ---------------------------------------------------------------

    CURATABLE = ("valid", "approved", "rejected")

    def _audited(self, actor, action: str, change, extra_before=None, extra_after=None, **after):
        from episodes.models.audit import AuditEvent

        before = {**{k: getattr(self, k) for k in after}, **(extra_before or {})}
        fields = [f.attname for f in self._meta.concrete_fields if not f.primary_key]
        old = {name: getattr(self, name) for name in fields}
        change()
        # save only what this action changed, so a stale copy of the bug never overwrites
        # newer figures (a rerun finishing while a reviewer had the page open)
        changed = [name for name in fields if getattr(self, name) != old[name]]
        self.save(update_fields=[*changed, "updated_at"])
        AuditEvent.record(actor, action, self, before=before,
                          after={**{k: getattr(self, k) for k in after}, **(extra_after or {})})

    def review(self, reviewer, **rubric):
        """Record ``reviewer``'s rubric and verdict, then settle the bug from all reviews
        (``reviewed_status``). A reject needs a reason in the notes."""
        from episodes.models.audit import Review

        if self.status not in self.CURATABLE:
            raise ValueError(f"a {self.status} bug cannot be reviewed: only valid bugs are curated")
        if rubric.get("verdict") == Review.Verdict.REJECT and not (rubric.get("notes") or "").strip():
            raise ValueError("a reject needs a reason: say in the notes what is wrong with the bug")
        previous = Review.objects.filter(bug=self, reviewer=reviewer).values(*RUBRIC).first()
        review, _ = Review.objects.update_or_create(bug=self, reviewer=reviewer, defaults=rubric)
        status = self.reviewed_status()
        difficulty = rubric.get("difficulty") or self.difficulty

        def change():
            self.status, self.difficulty = status, difficulty

        # the reviewer's earlier rubric (or none) is kept in the event: what an undo restores
        self._audited(reviewer, "review", change, extra_before={"review": previous},
                      extra_after={"review": {k: rubric.get(k) for k in RUBRIC if k in rubric}},
                      status=status, difficulty=difficulty)
        return review

    def undo_review(self, actor, event) -> None:
        """Undo the review recorded by audit ``event``: the reviewer's earlier rubric comes back
        (or their review goes), the bug is settled again from the reviews left, and the undo is
        audited. Refused when a later review by the same reviewer replaced it, or it was undone."""
        from episodes.models.audit import AuditEvent, Review

        if event.action != "review" or event.target_type != "episodes.bug" or event.target_id != str(self.pk):
            raise ValueError(f"audit event {event.pk} is not a review of bug {self.pk}")
        events = AuditEvent.objects.filter(target_type="episodes.bug", target_id=str(self.pk))
        if events.filter(action="undo_review", after__undoes=event.pk).exists():
            raise ValueError(f"review {event.pk} was already undone")
        if events.filter(action="review", actor=event.actor, pk__gt=event.pk).exists():
            raise ValueError(f"a later review by {event.actor} replaced review {event.pk}: undo that one first")
        if self.status not in self.CURATABLE:
            raise ValueError(f"a {self.status} bug's reviews do not apply: validate it first")
        previous = (event.before or {}).get("review")
        if previous:
            Review.objects.update_or_create(bug=self, reviewer=event.actor, defaults=previous)
        else:
            Review.objects.filter(bug=self, reviewer=event.actor).delete()
        status = self.reviewed_status() if self.reviews.exists() else self.Status.VALID
        difficulty = (event.before or {}).get("difficulty", self.difficulty)

        def change():
            self.status, self.difficulty = status, difficulty

        self._audited(actor, "undo_review", change, extra_after={"undoes": event.pk}, status=status,
                      difficulty=difficulty)

    def set_quarantined(self, actor, quarantined: bool) -> None:
        self._audited(actor, "quarantine" if quarantined else "unquarantine",
                      lambda: setattr(self, "quarantined", quarantined), quarantined=quarantined)

    def mark_stable(self, actor, reason: str) -> None:
        """Staff overrule the flakiness figures: the verifier is trusted, with the reason kept."""
        if self.status != self.Status.FLAKY:
            raise ValueError("only a flaky bug can be marked stable")
        if not reason.strip():
            raise ValueError("say why the verifier can be trusted")

        def change():
            self.status, self.stable_reason, self.invalid_reason = self.Status.VALID, reason.strip(), ""

        self._audited(actor, "mark_stable", change, status=self.Status.VALID, stable_reason=reason.strip())
