from django import forms
from django.contrib import admin

from episodes.models import AuditEvent, Bug, Episode, InjectionBatch, LLMCall, LLMEndpoint, Repository, Review, Teacher, VerificationRun


class RecordAdmin(admin.ModelAdmin):
    """Admin for data the system computes (statuses, baselines, verdicts, rewards, figures): to
    look at, never to type in. Rows are made and changed by the product's own forms, commands
    and jobs, which validate and audit (a staff user could otherwise create an "approved" bug
    with invented figures)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False



@admin.register(Repository)
class RepositoryAdmin(RecordAdmin):
    list_display = ["name", "status", "pinned_commit", "baseline_at"]
    list_filter = ["status"]
    search_fields = ["name", "source"]


@admin.register(Bug)
class BugAdmin(RecordAdmin):
    list_display = ["id", "repository", "method", "operator", "status", "flake_upper_bound", "created_at"]
    list_filter = ["status", "method", "quarantined", "repository"]
    search_fields = ["problem_statement", "target", "operator"]
    raw_id_fields = ["batch"]
    list_select_related = ["repository"]


@admin.register(VerificationRun)
class VerificationRunAdmin(RecordAdmin):
    list_display = ["id", "bug", "code", "scope", "purpose", "outcome", "duration_s", "created_at"]
    list_filter = ["code", "scope", "outcome"]
    raw_id_fields = ["bug", "episode"]


class LLMEndpointForm(forms.ModelForm):
    # The key is write-only: the form never renders the stored value back.
    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                              help_text="leave blank to keep the stored key (a new base URL or protocol clears it)")

    class Meta:
        model = LLMEndpoint
        fields = "__all__"

    def clean_api_key(self):
        return self.cleaned_data["api_key"] or (self.instance.api_key if self.instance.pk else "")


@admin.register(LLMEndpoint)
class LLMEndpointAdmin(admin.ModelAdmin):
    form = LLMEndpointForm
    list_display = ["name", "protocol", "base_url", "model"]

    def lookup_allowed(self, lookup, value, request=None):
        # No filter on the key through the changelist's query string (``?api_key__startswith=``
        # would be a yes/no oracle): the admin answers 400.
        if lookup.split("__")[0] == "api_key":
            return False
        return super().lookup_allowed(lookup, value, request)


@admin.register(Teacher)
class TeacherAdmin(admin.ModelAdmin):
    list_display = ["name", "harness", "provider", "model", "terms_allow_training"]


@admin.register(Episode)
class EpisodeAdmin(RecordAdmin):
    list_display = ["id", "bug", "teacher", "status", "reward", "cost_usd", "created_at"]
    list_filter = ["status", "teacher"]
    raw_id_fields = ["bug"]
    exclude = ["gateway_token_hash"]


@admin.register(LLMCall)
class LLMCallAdmin(RecordAdmin):
    list_display = ["id", "episode", "batch", "protocol", "sequence", "status_code", "tokens_in", "tokens_out"]
    raw_id_fields = ["episode", "batch"]


@admin.register(InjectionBatch)
class InjectionBatchAdmin(RecordAdmin):
    list_display = ["id", "repository", "method", "requested", "produced", "status"]


@admin.register(Review)
class ReviewAdmin(RecordAdmin):
    list_display = ["bug", "reviewer", "verdict", "underspecified", "rejects_valid_fixes", "other_major_issue"]
    raw_id_fields = ["bug"]


@admin.register(AuditEvent)
class AuditEventAdmin(RecordAdmin):
    list_display = ["created_at", "actor", "action", "target_type", "target_id"]
    list_filter = ["action", "target_type"]

    def has_delete_permission(self, request, obj=None):
        return False  # the audit trail is append-only
