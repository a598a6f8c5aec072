"""The inject form's options beyond method, count and endpoint."""
from django import forms


class InjectOptionsForm(forms.Form):
    """The repository page's inject form, the options beyond method/count/endpoint that
    ``manage.py inject`` has too: LLM-written statements and procedural planning's realism
    filter and per-function cap (empty: the engine's defaults)."""

    statement_style = forms.ChoiceField(required=False, choices=[("", "(template statement)")],
                                        help_text="have an LLM write each valid bug's problem statement in this style")
    statement_endpoint = forms.IntegerField(required=False, help_text="LLM endpoint for the statements (empty: the "
                                            "injection endpoint, else the first one)")
    min_realism = forms.FloatField(required=False, min_value=0, max_value=1,
                                   help_text="procedural: drop mutations scoring below this (0 keeps all)")
    max_per_function = forms.IntegerField(required=False, min_value=0, max_value=1000,
                                          help_text="procedural: at most this many candidates per function (0: no cap)")

    def __init__(self, *args, **kwargs):
        from episodes.engine.inject.issue_text import STYLES

        super().__init__(*args, **kwargs)
        self.fields["statement_style"].choices = [("", "(template statement)")] + [(s, s) for s in STYLES]

    def clean(self):
        from episodes.models import LLMEndpoint

        data = super().clean()
        pk = data.get("statement_endpoint")
        data["statement_endpoint"] = LLMEndpoint.objects.filter(pk=pk).first() if pk else None
        if pk and data["statement_endpoint"] is None:
            self.add_error("statement_endpoint", "no such LLM endpoint")
        return data

    def batch_options(self, endpoint=None) -> dict:
        """start_batch's keyword arguments (only those set); the statement endpoint falls back to
        the injection endpoint, then the first endpoint, as ``manage.py inject`` does."""
        from episodes.models import LLMEndpoint

        data, options = self.cleaned_data, {}
        if data.get("statement_style"):
            ep = data.get("statement_endpoint") or endpoint or LLMEndpoint.objects.first()
            if ep is None:
                raise forms.ValidationError("LLM statements need an endpoint: add one in the admin first.")
            options.update(statement_style=data["statement_style"], statement_endpoint=ep)
        options.update({k: data[k] for k in ("min_realism", "max_per_function") if data.get(k) is not None})
        return options
