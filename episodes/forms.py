from django import forms

from episodes.models import Bug, Review


class ReviewForm(forms.ModelForm):
    """SWE-bench Verified's rubric: two 0–3 severities, other major issue, difficulty, notes."""

    underspecified = forms.TypedChoiceField(choices=[(i, i) for i in range(4)], coerce=int, initial=0,
                                            help_text="0 well specified … 3 impossible to tell what to do")
    rejects_valid_fixes = forms.TypedChoiceField(choices=[(i, i) for i in range(4)], coerce=int, initial=0,
                                                 help_text="0 any fix passes … 3 only the original fix passes")
    difficulty = forms.ChoiceField(choices=[("", "—"), *Bug.Difficulty.choices], required=False)

    class Meta:
        model = Review
        fields = ["underspecified", "rejects_valid_fixes", "other_major_issue", "difficulty", "notes", "verdict"]
        widgets = {"notes": forms.Textarea(attrs={"rows": 2}), "verdict": forms.RadioSelect}


def _choices(label: str, choices) -> list:
    return [("", label), *choices]


class BugFilterForm(forms.Form):
    """The bug list's filter, sort and search; also what bulk actions and next/previous use.
    Unknown values are form errors shown on the page, never silently widened."""

    repository = forms.CharField(required=False, max_length=100)
    status = forms.ChoiceField(required=False, choices=_choices("any status", Bug.Status.choices))
    method = forms.ChoiceField(required=False, choices=_choices("any method", Bug.Method.choices))
    operator = forms.CharField(required=False, max_length=64)
    reason = forms.CharField(required=False, max_length=40, help_text="an invalid verdict's reason code")
    flaky = forms.ChoiceField(required=False, choices=_choices("any flakiness", [
        ("flaky", "flaky"), ("quarantined", "quarantined"), ("stable", "marked stable"), ("measured", "reruns measured"),
    ]))
    verdict = forms.ChoiceField(required=False, choices=_choices("any verdict", [
        ("unreviewed", "not reviewed"), ("approve", "some approve"), ("reject", "some reject"),
    ]))
    difficulty = forms.ChoiceField(required=False, choices=_choices("any difficulty", [
        *Bug.Difficulty.choices, ("none", "not rated"),
    ]))
    rated = forms.ChoiceField(required=False, choices=_choices("any reviewer rating", [
        *Bug.Difficulty.choices, ("none", "a review without difficulty"),
    ]), help_text="bugs some reviewer rated this difficulty")
    min_solve = forms.FloatField(required=False, min_value=0, max_value=100, help_text="lowest measured solve rate, %")
    max_solve = forms.FloatField(required=False, min_value=0, max_value=100, help_text="highest measured solve rate, %")
    measured = forms.ChoiceField(required=False, choices=[("", "measured or not"), ("unmeasured", "unmeasured"),
                                                          ("measured", "measured")])
    min_realism = forms.FloatField(required=False, help_text="lowest realism score")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=200)
    sort = forms.ChoiceField(required=False, choices=[
        ("-created", "newest first"), ("created", "oldest first"), ("-id", "id ↓"), ("id", "id ↑"),
        ("status", "status"), ("method", "method"), ("repository", "repository"), ("difficulty", "difficulty"),
        ("-bound", "flake bound ↓"), ("bound", "flake bound ↑"),
        ("-solve", "solve rate ↓"), ("solve", "solve rate ↑"), ("-realism", "realism ↓"), ("realism", "realism ↑"),
    ])

    FIELDS = ("repository", "status", "method", "operator", "reason", "flaky", "verdict", "difficulty", "rated",
              "min_solve", "max_solve", "measured", "min_realism", "since", "until",
              "q", "sort")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():  # the filter bar shows no <label>s: name each control
            field.widget.attrs.setdefault("aria-label", name.replace("_", " "))

    def filter_data(self) -> dict:
        """The valid part of the filter (invalid fields dropped, and reported by .errors)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}


class VerifierForm(forms.Form):
    verifier = forms.CharField(widget=forms.Textarea(attrs={"rows": 16, "cols": 100, "spellcheck": "false"}),
                               strip=False)


class BulkReviewForm(forms.Form):
    verdict = forms.ChoiceField(choices=Review.Verdict.choices)
    ids = forms.CharField(widget=forms.HiddenInput)
    notes = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    difficulty = forms.ChoiceField(choices=[("", "—"), *Bug.Difficulty.choices], required=False)

    def clean_ids(self) -> list[int]:
        try:
            return [int(x) for x in self.cleaned_data["ids"].split(",") if x.strip()]
        except ValueError:
            raise forms.ValidationError("the confirmed bug list is malformed; open the confirmation again") from None


class DashboardFilterForm(forms.Form):
    repository = forms.CharField(required=False, max_length=100)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("the start date is after the end date")
        return data


class AddRepositoryForm(forms.Form):
    """The *Add repository* page: a source and a ref; every environment field left empty is
    inferred from the checkout (and the page says what was inferred and why)."""

    source = forms.CharField(max_length=500, help_text="a git URL, or the absolute path of a local git repository")
    ref = forms.CharField(max_length=200, required=False,
                          help_text="branch, tag or commit; pinned to its 40-hex commit (empty: the default branch)")
    name = forms.SlugField(max_length=100, required=False, help_text="empty: from the source")
    test_command = forms.CharField(max_length=500, required=False, help_text="empty: inferred (pytest)")
    install_command = forms.CharField(max_length=500, required=False,
                                      help_text="empty: inferred (a build step such as a C extension's); `true` for none")
    pip_packages = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                                   help_text="one requirement a line; empty: inferred from pyproject, setup.cfg/py, "
                                             "requirements files, tox")
    python = forms.CharField(max_length=100, required=False, help_text="interpreter; empty: python3")
    first_batch = forms.IntegerField(min_value=0, max_value=1000, initial=10, required=False,
                                     help_text="procedural candidates to plant once the repository is ready (0: none)")

    def clean_source(self):
        from episodes.repositories.intake import check_source

        source = self.cleaned_data["source"].strip()
        if problem := check_source(source):
            raise forms.ValidationError(problem)
        return source

    def clean_name(self):
        from episodes.models import Repository

        name = self.cleaned_data["name"]
        if name and Repository.objects.filter(name=name).exists():
            raise forms.ValidationError(f"a repository named {name!r} exists already")
        return name

    def request(self):
        from episodes.repositories.intake import RepoRequest

        data = self.cleaned_data
        packages = [p.strip() for p in data["pip_packages"].splitlines() if p.strip()]
        return RepoRequest(
            source=data["source"], ref=data["ref"].strip(), name=data["name"],
            test_command=data["test_command"].strip() or None, install_command=data["install_command"].strip() or None,
            pip_packages=packages or None, python=data["python"].strip() or None,
        )


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
