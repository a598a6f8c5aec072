"""Forms of the teachers page: endpoints (write-only key), teachers (provenance, limits), launches."""
from __future__ import annotations

import re

from django import forms

from episodes.engine.solve.agent.loop import AgentLimits
from episodes.models import Bug, LLMEndpoint, Repository, Teacher

LIMIT_FIELDS = ("max_steps", "max_tokens", "max_cost_usd", "max_wall_s")


class EndpointForm(forms.ModelForm):
    """The key is write-only: never rendered back; left blank on an existing endpoint, it is kept."""

    api_key = forms.CharField(
        required=False, strip=True, label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="stored server-side, never shown again; agents only get a per-episode gateway token",
    )

    class Meta:
        model = LLMEndpoint
        fields = ["name", "protocol", "base_url", "model", "api_key", "usd_per_mtok_in", "usd_per_mtok_out",
                  "usd_per_mtok_cache_read", "usd_per_mtok_cache_write"]
        labels = {"usd_per_mtok_in": "USD per M input tokens", "usd_per_mtok_out": "USD per M output tokens",
                  "usd_per_mtok_cache_read": "USD per M cache-read tokens",
                  "usd_per_mtok_cache_write": "USD per M cache-write tokens"}

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "endpoint_%s")  # three forms share the page: distinct element ids
        super().__init__(*args, **kwargs)
        self._old_key = self.instance.api_key if self.instance.pk else ""
        if self.instance.pk:
            self.fields["api_key"].help_text = (
                f"{'a key is set' if self._old_key else 'no key set'}; leave blank to keep it "
                "(a new base URL or protocol clears it: enter the key again)"
            )
            self.initial["api_key"] = ""

    def clean_api_key(self):
        return self.cleaned_data.get("api_key") or self._old_key


class TeacherForm(forms.ModelForm):
    terms_allow_training = forms.NullBooleanField(
        label="terms allow training use", required=False,
        widget=forms.NullBooleanSelect,
        help_text="provenance: whether the provider's terms allow training on this teacher's outputs",
    )
    max_steps = forms.IntegerField(min_value=1, max_value=500, initial=AgentLimits.max_steps, label="max steps")
    max_tokens = forms.IntegerField(min_value=1000, max_value=50_000_000, initial=AgentLimits.max_tokens,
                                    label="max tokens (in + out)")
    max_cost_usd = forms.DecimalField(min_value=0, max_digits=10, decimal_places=4, required=False,
                                      label="max cost (USD)", help_text="blank: no cost limit")
    max_wall_s = forms.IntegerField(min_value=10, max_value=24 * 3600, initial=int(AgentLimits.max_wall_s),
                                    label="max wall time (s)")

    class Meta:
        model = Teacher
        fields = ["name", "harness", "endpoint", "provider", "model", "terms_allow_training"]
        help_texts = {"model": "recorded as provenance; blank: the endpoint's model"}

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "teacher_%s")
        super().__init__(*args, **kwargs)
        imported = self.instance.pk and self.instance.harness == Teacher.Harness.IMPORTED
        if not imported:  # an imported-logs teacher keeps its harness and needs no endpoint
            self.fields["harness"].choices = [c for c in Teacher.Harness.choices if c[0] != Teacher.Harness.IMPORTED]
            self.fields["endpoint"].required = True
        self.fields["endpoint"].queryset = LLMEndpoint.objects.all()
        for name in LIMIT_FIELDS:  # an existing teacher's limits, from its config
            if self.instance.pk and name in self.instance.config:
                self.initial[name] = self.instance.config[name]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        from episodes.solving.episodes import teacher_problem

        if data.get("harness") == Teacher.Harness.IMPORTED:
            return data
        probe = Teacher(name=data.get("name") or "", harness=data.get("harness"), endpoint=data.get("endpoint"))
        problem = teacher_problem(probe)
        if problem:
            raise forms.ValidationError(problem)
        return data

    def save(self, commit=True):
        teacher = super().save(commit=False)
        if not teacher.model and teacher.endpoint:
            teacher.model = teacher.endpoint.model
        limits = {k: self.cleaned_data[k] for k in LIMIT_FIELDS if self.cleaned_data.get(k) is not None}
        others = {k: v for k, v in teacher.config.items() if k not in LIMIT_FIELDS}  # harness options stay
        teacher.config = {**others, **{k: float(v) if k == "max_cost_usd" else int(v) for k, v in limits.items()}}
        if commit:
            teacher.save()
        return teacher


class LaunchForm(forms.Form):
    SCOPES = [("approved", "all approved bugs"), ("repository", "approved bugs of one repository"),
              ("ids", "these bug ids")]

    teacher = forms.ModelChoiceField(queryset=Teacher.objects.exclude(harness=Teacher.Harness.IMPORTED))
    k = forms.IntegerField(min_value=1, max_value=20, initial=1, label="attempts per bug (k)")
    scope = forms.ChoiceField(choices=SCOPES, initial="approved", widget=forms.RadioSelect, label="bugs")
    repository = forms.ModelChoiceField(queryset=Repository.objects.all(), required=False)
    ids = forms.CharField(required=False, label="bug ids", help_text="e.g. 12, 13 40",
                          widget=forms.TextInput(attrs={"placeholder": "12, 13, 40"}))

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "launch_%s")
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        scope = data.get("scope")
        if scope == "repository" and not data.get("repository"):
            self.add_error("repository", "choose a repository")
        if scope == "ids":
            raw = data.get("ids") or ""
            if not raw.strip() or not re.fullmatch(r"[\d,\s]+", raw):
                self.add_error("ids", "give bug ids as numbers separated by commas or spaces")
            else:
                data["bug_ids"] = sorted({int(x) for x in re.split(r"[,\s]+", raw.strip()) if x})
        return data

    def bugs(self):
        """The selected bugs (approved only) and the selection as stored on the batch."""
        from episodes.solving.episodes import select_bugs

        data = self.cleaned_data
        scope = data["scope"]
        ids = data.get("bug_ids") if scope == "ids" else None
        repository = data.get("repository") if scope == "repository" else None
        selection = {"ids": ids or [], "repository": repository.name if repository else "", "approved": True}
        return list(select_bugs(ids=ids, repository=repository)), selection


def approved_count() -> int:
    return Bug.objects.filter(status=Bug.Status.APPROVED).count()
