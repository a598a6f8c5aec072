"""The bug page's "Rewrite statement" action: staff only, queued on ``inject``."""
from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect

from bugforge_web.auth import staff_required

from episodes.injection import statements
from episodes.models import Bug, LLMEndpoint


class StatementForm(forms.Form):
    endpoint = forms.ModelChoiceField(queryset=LLMEndpoint.objects.all(), to_field_name="pk")
    style = forms.ChoiceField(choices=Bug.StatementStyle.choices)


@staff_required
def bug_statement_rewrite(request, pk):
    bug = get_object_or_404(Bug, pk=pk)
    form = StatementForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Statement not queued: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect(bug)
    endpoint, style = form.cleaned_data["endpoint"], form.cleaned_data["style"]
    job_id = statements.enqueue_statement(bug, endpoint, style, request.user)
    messages.info(request, f"Bug {bug.pk}: a {style} statement by {endpoint.name} is queued (job {job_id}).")
    return redirect(bug)
