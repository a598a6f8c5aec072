"""The curation forms: the review rubric, the bug list's filter, verifier edits and bulk review."""
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
