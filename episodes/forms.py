from django import forms

from .models import Bug, Review


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
