import hashlib
import secrets

from django.db import models

from bugforge_web.encryption import EncryptedTextField
from bugforge_web.stale_jobs import StaleJobQuerySet

GATEWAY_TOKEN_PREFIX = "bfgw_"


def hash_gateway_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LLMEndpoint(models.Model):
    """An upstream model API, configured by staff. The key stays server-side: forms never
    render it back and agents only ever see a per-episode gateway token."""

    class Protocol(models.TextChoices):
        OPENAI_CHAT = "openai_chat", "OpenAI Chat Completions"
        OPENAI_RESPONSES = "openai_responses", "OpenAI Responses"
        ANTHROPIC = "anthropic", "Anthropic Messages"

    name = models.SlugField(max_length=100, unique=True)
    protocol = models.CharField(max_length=20, choices=Protocol)
    base_url = models.URLField(max_length=500)
    model = models.CharField(max_length=200)
    api_key = EncryptedTextField(blank=True, help_text="stored encrypted; cleared when base URL or protocol change")
    usd_per_mtok_in = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    usd_per_mtok_out = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    usd_per_mtok_cache_read = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True,
        help_text="USD per million input tokens read from the prompt cache; blank = the provider's ratio "
                  "(Anthropic 0.1×, OpenAI 0.1× the input price)")
    usd_per_mtok_cache_write = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True,
        help_text="USD per million input tokens written to the prompt cache; blank = the provider's ratio "
                  "(Anthropic 1.25×, OpenAI 1× the input price)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.model})"

    @classmethod
    def from_db(cls, db, field_names, values):
        endpoint = super().from_db(db, field_names, values)
        endpoint._loaded = {f: getattr(endpoint, f) for f in ("base_url", "protocol", "api_key") if f in field_names}
        return endpoint

    @property
    def key_lapses(self) -> bool:
        """This unsaved change points the stored key somewhere else (a new base URL or protocol)
        without a new key: saving it clears the key, so nobody can send the real key to an
        address of their choosing with *Test connection* and read it there."""
        loaded = getattr(self, "_loaded", None)
        if not loaded or not self.api_key or self.api_key != loaded.get("api_key"):
            return False
        return (self.base_url, self.protocol) != (loaded.get("base_url"), loaded.get("protocol"))

    def save(self, *args, **kwargs):
        if self.key_lapses:
            self.api_key = ""
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "api_key"}
        super().save(*args, **kwargs)
        self._loaded = {"base_url": self.base_url, "protocol": self.protocol, "api_key": self.api_key}

    def engine_config(self):
        """The plain-data endpoint the engine's LLM client takes."""
        from episodes.engine.llm import EndpointConfig

        return EndpointConfig(
            protocol=self.protocol, base_url=self.base_url, model=self.model, api_key=self.api_key,
            usd_per_mtok_in=self.usd_per_mtok_in, usd_per_mtok_out=self.usd_per_mtok_out,
            usd_per_mtok_cache_read=self.usd_per_mtok_cache_read, usd_per_mtok_cache_write=self.usd_per_mtok_cache_write,
        )

    def __repr__(self):  # never leak the key into logs or tracebacks
        return f"<LLMEndpoint {self.name} {self.protocol} {self.base_url} key={'set' if self.api_key else 'unset'}>"


class Teacher(models.Model):
    """Who attempts bugs: a harness driving a model, with the provenance that travels with its data."""

    class Harness(models.TextChoices):
        BUILTIN = "builtin", "built-in agent"
        CLAUDE_CODE = "claude_code", "Claude Code"
        CODEX = "codex", "Codex CLI"
        IMPORTED = "imported", "imported logs"

    name = models.SlugField(max_length=100, unique=True)
    harness = models.CharField(max_length=16, choices=Harness, default=Harness.BUILTIN)
    endpoint = models.ForeignKey(LLMEndpoint, null=True, blank=True, on_delete=models.SET_NULL)
    provider = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    terms_allow_training = models.BooleanField(null=True, help_text="unset = unknown; exports warn")
    config = models.JSONField(default=dict, blank=True, help_text="step/token/cost/time limits, harness options")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def limits(self):
        """The episode limits in ``config`` (steps, tokens, cost, wall time), defaults filled in."""
        from episodes.engine.solve.agent.loop import AgentLimits

        return AgentLimits.from_dict(self.config)

    def budget(self):
        """What the gateway enforces on every call of this teacher's episodes, any harness."""
        from episodes.solving.gateway.budget import Budget

        limits = self.limits()
        return Budget(max_steps=limits.max_steps, max_tokens=limits.max_tokens, max_cost_usd=limits.max_cost_usd)


class SolveBatch(models.Model):
    """One launch of a teacher over a selection of bugs, k attempts each: the unit of progress."""

    teacher = models.ForeignKey(Teacher, on_delete=models.PROTECT, related_name="solve_batches")
    attempts_per_bug = models.PositiveSmallIntegerField(default=1)
    bug_count = models.PositiveIntegerField(default=0)
    selection = models.JSONField(default=dict, blank=True, help_text="which bugs were asked for: ids, repository, approved")
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"solve batch {self.pk}: {self.teacher} × {self.bug_count} bugs, k={self.attempts_per_bug}"


class EpisodeQuerySet(StaleJobQuerySet):
    def by_gateway_token(self, token: str):
        """The live episode a gateway token belongs to, or None (unknown, or the episode is over)."""
        if not token or not token.startswith(GATEWAY_TOKEN_PREFIX):
            return None
        return (
            self.select_related("teacher__endpoint")
            .filter(gateway_token_hash=hash_gateway_token(token), status__in=["queued", "running"])
            .first()
        )

    def sweep_stale(self, stale_after_s: int | None = None) -> list[tuple[int, str]]:
        """Fail episodes left `running` (or `queued`) by a job that is gone, failed, or silent
        for too long — a worker killed outright runs no failure handler. Returns (id, why)."""
        from django.utils import timezone

        def silent(episode, cutoff) -> bool:
            beat = episode.heartbeat_at or episode.started_at
            return episode.status == Episode.Status.RUNNING and (beat is None or beat < cutoff)

        return self._sweep_stale(
            statuses=[Episode.Status.QUEUED, Episode.Status.RUNNING], queue="solve", silent=silent,
            becomes=lambda episode, why: {"status": Episode.Status.FAILED, "exit_reason": Episode.ExitReason.ERROR,
                                          "error": f"episode interrupted: {why}", "finished_at": timezone.now()},
            stale_after_s=stale_after_s,
        )


class Episode(models.Model):
    """One teacher attempt at one bug; the verifier's verdict on its diff is the reward."""

    objects = EpisodeQuerySet.as_manager()

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SOLVED = "solved"
        UNSOLVED = "unsolved"
        FAILED = "failed", "error"  # infrastructure: never counted as a failed attempt
        CANCELLED = "cancelled"

    class ExitReason(models.TextChoices):
        SUBMITTED = "submitted"
        FINISHED = "finished", "agent stopped"
        STEP_LIMIT = "step_limit", "step limit"
        TOKEN_LIMIT = "token_limit", "token limit"
        COST_LIMIT = "cost_limit", "cost limit"
        TIME_LIMIT = "time_limit", "time limit"
        ERROR = "error"

    bug = models.ForeignKey("episodes.Bug", on_delete=models.CASCADE, related_name="episodes")
    teacher = models.ForeignKey(Teacher, on_delete=models.PROTECT, related_name="episodes")
    solve_batch = models.ForeignKey(
        SolveBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="episodes"
    )
    attempt = models.PositiveSmallIntegerField(default=1, help_text="1..k within its solve batch (pass@k)")
    exit_reason = models.CharField(max_length=12, choices=ExitReason, blank=True)
    agent_events = models.JSONField(
        default=list, blank=True, help_text="the harness's own event stream (Claude Code / Codex JSON lines)"
    )
    grading = models.JSONField(default=dict, blank=True, help_text="verifier and F2P/P2P runs behind the reward")
    class Integrity(models.TextChoices):
        TRUSTED = "", "trusted"
        SUSPICIOUS = "suspicious", "suspicious (static screen)"
        TAMPERED = "tampered", "tampered (run evidence)"

    integrity = models.CharField(
        max_length=12, choices=Integrity, default=Integrity.TRUSTED, blank=True, db_index=True,
        help_text="what the grader found about the graded change itself (see grading.suspicious / .tampered)",
    )
    status = models.CharField(max_length=12, choices=Status, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    final_patch = models.TextField(blank=True)
    reward = models.FloatField(null=True, blank=True)
    trajectory = models.JSONField(default=dict, blank=True, help_text='canonical {"messages", "tools"}')
    session_log = models.TextField(
        blank=True, help_text="the CLI's own session log (Claude Code session / Codex rollout JSONL), secrets scrubbed")
    gateway_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    steps = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    job_id = models.CharField(max_length=64, blank=True)
    agent_stats = models.JSONField(
        default=dict, blank=True, help_text="the harness's own figures: calls, malformed tool calls, tool errors, seconds"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life of its job (the sweeper reads it)")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["bug", "teacher"]), models.Index(fields=["teacher", "status"])]

    def __str__(self):
        return f"episode {self.pk}: {self.teacher} on bug {self.bug_id}"

    @property
    def grading_flagged(self) -> bool:
        """The grader found the change suspicious or its run tampered: never SFT data by default."""
        return bool(self.integrity)

    @staticmethod
    def integrity_of(grading: dict) -> str:
        if grading.get("tampered"):
            return Episode.Integrity.TAMPERED
        return Episode.Integrity.SUSPICIOUS if grading.get("suspicious") else Episode.Integrity.TRUSTED

    def review_integrity(self, actor, decision: str, notes: str = "") -> None:
        """Staff's word on an episode graded past the static screen (``needs_review``):
        ``clear`` (a genuine fix: its reward stands and it may enter SFT sets) or ``refuse``
        (reward False, unsolved). Audited; a tampered run cannot be cleared."""
        from episodes.models.audit import AuditEvent

        if decision not in ("clear", "refuse"):
            raise ValueError("decision must be 'clear' or 'refuse'")
        if not self.grading.get("needs_review"):
            raise ValueError(f"episode {self.pk} is not held for review")
        if decision == "clear" and self.integrity == self.Integrity.TAMPERED:
            raise ValueError(f"episode {self.pk}'s run was tampered with: its reward cannot be cleared")
        before = {"integrity": self.integrity, "reward": self.reward, "status": self.status}
        grading = {**self.grading, "needs_review": False, "review": {"decision": decision, "notes": notes,
                                                                     "by": getattr(actor, "username", "")}}
        if decision == "clear":
            self.integrity = self.Integrity.TRUSTED
        else:
            self.reward = 0.0
            if self.status == self.Status.SOLVED:
                self.status = self.Status.UNSOLVED
        self.grading = grading
        self.save(update_fields=["integrity", "reward", "status", "grading"])
        AuditEvent.record(actor, "review_episode_integrity", self, before=before,
                          after={"integrity": self.integrity, "reward": self.reward, "status": self.status,
                                 "decision": decision, "notes": notes})

    @property
    def is_over(self) -> bool:
        return self.status not in (self.Status.QUEUED, self.Status.RUNNING)

    def beat(self) -> None:
        """Record that the episode's job is alive (the sweeper fails silent ones)."""
        from django.utils import timezone

        type(self).objects.filter(pk=self.pk).update(heartbeat_at=timezone.now())

    def issue_gateway_token(self) -> str:
        """A fresh per-episode token for the recording gateway; only its hash is stored, so the
        plain token exists only in the agent's environment for the episode's lifetime."""
        token = GATEWAY_TOKEN_PREFIX + secrets.token_urlsafe(24)
        self.gateway_token_hash = hash_gateway_token(token)
        self.save(update_fields=["gateway_token_hash"])
        return token


class LLMCall(models.Model):
    """One recorded model call, made by an agent (episode) or by the injector (batch)."""

    episode = models.ForeignKey(Episode, null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls")
    batch = models.ForeignKey(
        "episodes.InjectionBatch", null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls"
    )
    endpoint = models.ForeignKey(LLMEndpoint, null=True, blank=True, on_delete=models.SET_NULL)
    protocol = models.CharField(max_length=20, choices=LLMEndpoint.Protocol)
    path = models.CharField(max_length=200, blank=True, help_text="gateway path called, e.g. /v1/messages")
    streamed = models.BooleanField(default=False)
    sequence = models.PositiveIntegerField(default=0)
    request = models.JSONField(default=dict)
    response = models.JSONField(default=dict, blank=True)
    raw_stream = models.TextField(blank=True)
    status_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cache_read = models.PositiveIntegerField(default=0, help_text="of tokens_in: read from the prompt cache")
    cache_write = models.PositiveIntegerField(default=0, help_text="of tokens_in: written to the prompt cache")
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    refused = models.CharField(
        max_length=16, blank=True,
        help_text="the gateway refused this call without forwarding it: step_limit, token_limit, cost_limit, upstream_down")
    latency_ms = models.FloatField(null=True, blank=True)
    ttfb_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["episode_id", "sequence"]
        indexes = [models.Index(fields=["episode", "sequence"]), models.Index(fields=["batch", "sequence"])]

    def __str__(self):
        return f"{self.protocol} call #{self.sequence}"

    @classmethod
    def recorder(cls, endpoint, batch=None):
        """An ``on_call(ChatResult)`` that stores each engine-side LLM call (injection, issue text)
        on ``batch``, numbered after the batch's earlier calls."""
        sequence = cls.objects.filter(batch=batch).count() if batch else 0

        def record(result):
            nonlocal sequence
            sequence += 1
            cls.objects.create(
                batch=batch, endpoint=endpoint, protocol=endpoint.protocol, sequence=sequence,
                request=result.request, response=result.response, status_code=result.status_code,
                error=result.error, tokens_in=result.tokens_in, tokens_out=result.tokens_out,
                cost_usd=result.cost_usd, latency_ms=result.latency_ms,
            )
        return record
