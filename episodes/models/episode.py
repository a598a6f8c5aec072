from django.db import models


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
    api_key = models.CharField(max_length=500, blank=True)
    usd_per_mtok_in = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    usd_per_mtok_out = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.model})"

    def engine_config(self):
        """The plain-data endpoint the engine's LLM client takes."""
        from episodes.engine.llm import EndpointConfig

        return EndpointConfig(
            protocol=self.protocol, base_url=self.base_url, model=self.model, api_key=self.api_key,
            usd_per_mtok_in=self.usd_per_mtok_in, usd_per_mtok_out=self.usd_per_mtok_out,
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


class Episode(models.Model):
    """One teacher attempt at one bug; the verifier's verdict on its diff is the reward."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SOLVED = "solved"
        UNSOLVED = "unsolved"
        FAILED = "failed", "failed (error)"
        CANCELLED = "cancelled"

    bug = models.ForeignKey("episodes.Bug", on_delete=models.CASCADE, related_name="episodes")
    teacher = models.ForeignKey(Teacher, on_delete=models.PROTECT, related_name="episodes")
    status = models.CharField(max_length=12, choices=Status, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    final_patch = models.TextField(blank=True)
    reward = models.FloatField(null=True, blank=True)
    trajectory = models.JSONField(default=dict, blank=True, help_text='canonical {"messages", "tools"}')
    gateway_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    steps = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    job_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["bug", "teacher"]), models.Index(fields=["teacher", "status"])]

    def __str__(self):
        return f"episode {self.pk}: {self.teacher} on bug {self.bug_id}"


class LLMCall(models.Model):
    """One recorded model call, made by an agent (episode) or by the injector (batch)."""

    episode = models.ForeignKey(Episode, null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls")
    batch = models.ForeignKey(
        "episodes.InjectionBatch", null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls"
    )
    endpoint = models.ForeignKey(LLMEndpoint, null=True, blank=True, on_delete=models.SET_NULL)
    protocol = models.CharField(max_length=20, choices=LLMEndpoint.Protocol)
    sequence = models.PositiveIntegerField(default=0)
    request = models.JSONField(default=dict)
    response = models.JSONField(default=dict, blank=True)
    raw_stream = models.TextField(blank=True)
    status_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    latency_ms = models.FloatField(null=True, blank=True)
    ttfb_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["episode_id", "sequence"]
        indexes = [models.Index(fields=["episode", "sequence"]), models.Index(fields=["batch", "sequence"])]

    def __str__(self):
        return f"{self.protocol} call #{self.sequence}"
