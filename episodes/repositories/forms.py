"""The Add repository form."""
from django import forms


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
