"""Forms behind the training pages: build a dataset, launch a run. They validate what a user can
get wrong (names, paths, the dataset kind a method needs, numbers) and leave the rest to
`training.datasets` / `training.runs`, whose ValueErrors the views show on the form."""
from pathlib import Path

from django import forms
from django.conf import settings

from episodes.models import Repository, Teacher

from training.runs import NEEDS, allow_hub
from training.models import Dataset, Evaluation, TrainingRun

TINY = "tiny"  # the base-model choice that builds (once) and uses the tiny offline model
OTHER = "other"  # the base-model choice that reads the path typed beside it


class DatasetBuildForm(forms.Form):
    """The filters of `training.datasets` (see its docstring), as a form."""

    PROVENANCE = [
        ("allowed", "only teachers whose terms allow training"),
        ("unknown", "also teachers whose terms are not recorded (flag unset)"),
        ("any", "any teacher, also those whose terms forbid training"),
    ]

    kind = forms.ChoiceField(choices=Dataset.Kind.choices, initial=Dataset.Kind.SFT)
    name = forms.SlugField(max_length=100, help_text="letters, digits, - and _; a dataset is immutable once built")
    teachers = forms.ModelMultipleChoiceField(
        Teacher.objects.all(), to_field_name="name", required=False,
        help_text="SFT: whose successful episodes to use (none selected = all)",
    )
    repositories = forms.ModelMultipleChoiceField(
        Repository.objects.all(), to_field_name="name", required=False, help_text="none selected = all"
    )
    min_reward = forms.FloatField(
        required=False, initial=1.0, min_value=0.0, max_value=1.0,
        help_text="SFT: keep episodes whose verifier reward is at least this (1 = solved only)",
    )
    max_length = forms.IntegerField(
        required=False, min_value=1, help_text="SFT: drop trajectories longer than this many characters (blank = no limit)"
    )
    provenance = forms.ChoiceField(choices=PROVENANCE, initial="allowed", widget=forms.RadioSelect,
                                   help_text="SFT: whose outputs may become training data")
    include_suspicious = forms.BooleanField(
        required=False, label="also episodes the grader flagged suspicious or tampered",
        help_text="SFT: a flagged change may be a reward hack; the manifest counts and warns")
    include_valid = forms.BooleanField(required=False, label="also valid bugs not yet approved by a reviewer",
                                       help_text="RL: approved bugs only unless ticked")
    max_flake_rate = forms.FloatField(
        required=False, min_value=0.001, max_value=1.0, label="Max flake rate",
        help_text="RL: keep bugs stable at below this flake rate (95% bound over their verifier runs; blank = "
                  "BUGFORGE_FLAKE_TARGET). `manage.py stabilize` reruns bugs to reach a stricter one.")
    include_flaky = forms.BooleanField(required=False, label="also bugs whose verifier ever disagreed with itself",
                                       help_text="RL: flaky verifiers make noisy rewards")
    curriculum_solver = forms.CharField(
        required=False, max_length=300, label="Curriculum solver",
        help_text='RL: keep only bugs this solver solves at a rate within the band, e.g. "teacher:sonnet" or '
                  '"checkpoint:run-3" (blank = no curriculum); the manifest lists the bugs dropped and why')
    band_low = forms.FloatField(required=False, initial=20, min_value=0, max_value=100, label="Band low (%)")
    band_high = forms.FloatField(required=False, initial=80, min_value=0, max_value=100, label="Band high (%)")
    min_attempts = forms.IntegerField(required=False, initial=1, min_value=1,
                                      help_text="RL curriculum: attempts by the solver a bug needs to count as measured")
    split_by = forms.ChoiceField(choices=[("bug", "by bug"), ("repository", "by repository")], initial="bug",
                                 help_text="no bug (or repository) is on both the train and the held-out side")
    heldout_fraction = forms.FloatField(initial=0.2, label="Held-out fraction", min_value=0.0, max_value=0.95,
                                        help_text="share of bugs (or repositories) held out for evaluation")

    def clean_name(self):
        name = self.cleaned_data["name"]
        if Dataset.objects.filter(name=name).exists():
            raise forms.ValidationError(f"A dataset named {name!r} exists already; datasets are immutable, pick a new name.")
        return name

    def filters(self) -> dict:
        """The filters as `training.datasets` reads them (only those of the chosen kind)."""
        data = self.cleaned_data
        filters = {
            "repository": sorted(r.name for r in data["repositories"]),
            "split_by": data["split_by"],
            "heldout_fraction": data["heldout_fraction"],
        }
        if data["kind"] == Dataset.Kind.SFT:
            filters["teacher"] = sorted(t.name for t in data["teachers"])
            if data.get("min_reward") is not None:
                filters["min_reward"] = data["min_reward"]
            if data.get("max_length"):
                filters["max_length"] = data["max_length"]
            filters["allow_unknown_terms"] = data["provenance"] in ("unknown", "any")
            filters["allow_disallowed_terms"] = data["provenance"] == "any"
            if data.get("include_suspicious"):
                filters["include_suspicious"] = True
        else:
            filters["statuses"] = ["approved", "valid"] if data["include_valid"] else ["approved"]
            filters["include_flaky"] = data["include_flaky"]
            if data.get("max_flake_rate"):
                filters["max_flake_rate"] = data["max_flake_rate"]
            if data.get("curriculum_solver", "").strip():
                low = 20.0 if data.get("band_low") is None else data["band_low"]
                high = 80.0 if data.get("band_high") is None else data["band_high"]
                filters["solver"] = data["curriculum_solver"].strip()
                filters["band"] = [low / 100, high / 100]
                filters["min_attempts"] = data.get("min_attempts") or 1
        return {k: v for k, v in filters.items() if v not in ([], None)}

    def unvetted_teachers(self) -> list[Teacher]:
        """Teachers whose episodes this SFT build may include although their terms flag is unset or false."""
        data = self.cleaned_data
        if data["kind"] != Dataset.Kind.SFT or data["provenance"] == "allowed":
            return []
        chosen = list(data["teachers"]) or list(Teacher.objects.all())
        return [t for t in chosen if t.terms_allow_training is None
                or (t.terms_allow_training is False and data["provenance"] == "any")]


def default_hyperparameters() -> dict[str, dict]:
    """Per method: the hyperparameters a run gets unless the form overrides them."""
    return {method: dict(values) for method, values in TrainingRun.DEFAULT_HYPERPARAMETERS.items()}


def local_model_choices() -> list[tuple[str, str]]:
    """Model folders offered on the launch form: the tiny offline model, then every folder with a
    config.json under the configured model directories (BUGFORGE_MODEL_DIRS)."""
    choices = [(TINY, "tiny offline model (built on first use, CPU demo)")]
    for root in settings.BUGFORGE_MODEL_DIRS:
        root = Path(root)
        candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []
        choices += [(str(p), str(p)) for p in candidates if (p / "config.json").is_file()]
    choices.append((OTHER, "another local path…"))
    return choices


def cuda_visible() -> bool:
    """Whether this host has an NVIDIA GPU, without importing torch into the web process."""
    return Path("/dev/nvidia0").exists() or settings.BUGFORGE_TRAIN_CUDA


# Shown up front; every other default of the method goes under "more hyperparameters".
KEY_HYPERPARAMETERS = (
    "max_steps", "learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
    "num_generations", "max_completion_length", "beta", "max_length", "sft_max_steps", "sft_learning_rate",
)
LORA_RANK_KEY = "lora_r"  # the LoRA rank field below sets it


def _hyperparameter_field(key: str, default, methods: list[str]) -> forms.Field:
    help_text = f"default {default!r}" if default not in ("", None) else "default: none"
    if isinstance(default, bool):
        field = forms.TypedChoiceField(
            choices=[("", "(default)"), ("true", "yes"), ("false", "no")], required=False,
            coerce=lambda v: v == "true", empty_value=None, help_text=help_text,
        )
    elif isinstance(default, int):
        field = forms.IntegerField(required=False, min_value=1 if default >= 1 else 0, help_text=help_text)
    elif isinstance(default, float):
        field = forms.FloatField(required=False, min_value=0.0, help_text=help_text)
    else:
        field = forms.CharField(required=False, max_length=500, help_text=help_text)
    field.label = key.replace("_", " ")
    field.methods = " ".join(methods)  # the page shows a field only for the methods that use it
    return field


class LaunchForm(forms.Form):
    """One training run. Hyperparameter fields are made from DEFAULT_HYPERPARAMETERS, so the form
    offers exactly what the runner reads; a blank field means the method's default."""

    HP_PREFIX = "hp_"

    name = forms.CharField(max_length=200, required=False, help_text="blank: method-dataset-date")
    method = forms.ChoiceField(choices=TrainingRun.Method.choices, initial=TrainingRun.Method.SFT)
    dataset = forms.ModelChoiceField(Dataset.objects.all(), empty_label=None,
                                     help_text="SFT and SFT then GRPO: an SFT set; GRPO: an RL set")
    rl_dataset = forms.ModelChoiceField(Dataset.objects.filter(kind=Dataset.Kind.RL), required=False,
                                        label="RL dataset", help_text="SFT then GRPO: the RL set of the GRPO phase")
    base_model = forms.ChoiceField(choices=[], initial=TINY)
    base_model_path = forms.CharField(
        max_length=500, required=False, label="path",
        help_text="a local model folder (with config.json) when 'another local path' is chosen",
    )
    use_lora = forms.BooleanField(required=False, label="LoRA adapters (peft)")
    lora_rank = forms.IntegerField(required=False, min_value=1, max_value=1024, label="LoRA rank")
    device = forms.ChoiceField(choices=[])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"].choices = local_model_choices()
        cuda = cuda_visible()
        self.fields["device"].choices = [("cpu", "cpu")] + ([("cuda", "cuda")] if cuda else [])
        self.fields["device"].help_text = "" if cuda else "no GPU seen on this host; cuda is offered where one is"
        self.defaults = default_hyperparameters()
        keys: dict[str, list[str]] = {}
        for method, values in self.defaults.items():
            for key in values:
                keys.setdefault(key, []).append(method)
        method = self.data.get("method") or self.initial.get("method") or self.fields["method"].initial
        for key, methods in keys.items():
            if key == LORA_RANK_KEY:
                continue
            default = next(self.defaults[m][key] for m in methods)
            field = _hyperparameter_field(key, default, methods)
            if method in methods:
                value = self.defaults[method][key]
                field.initial = ("true" if value else "false") if isinstance(value, bool) else value
            self.fields[self.HP_PREFIX + key] = field
        self.fields["lora_rank"].initial = self.defaults.get(method, {}).get(LORA_RANK_KEY, 16)

    def key_hyperparameter_fields(self):
        return [self[self.HP_PREFIX + k] for k in KEY_HYPERPARAMETERS if self.HP_PREFIX + k in self.fields]

    def more_hyperparameter_fields(self):
        key = {self.HP_PREFIX + k for k in KEY_HYPERPARAMETERS}
        return [self[n] for n in self.fields if n.startswith(self.HP_PREFIX) and n not in key]

    def clean(self):
        data = super().clean()
        method, dataset, rl_dataset = data.get("method"), data.get("dataset"), data.get("rl_dataset")
        if method in NEEDS:
            kind, rl_kind = NEEDS[method]
            label = TrainingRun.Method(method).label
            if dataset is not None and dataset.kind != kind:
                self.add_error("dataset", f"{label} trains on an {Dataset.Kind(kind).label} dataset; "
                                          f"{dataset.name} is {Dataset.Kind(dataset.kind).label}.")
            if rl_kind and rl_dataset is None:
                self.add_error("rl_dataset", f"{label} needs an RL dataset for its GRPO phase.")
            if not rl_kind and rl_dataset is not None:
                self.add_error("rl_dataset", f"{label} takes one dataset: leave this empty.")
        for field in ("dataset", "rl_dataset"):
            if data.get(field) is not None and not data[field].train_rows:
                self.add_error(field, f"{data[field].name} has no training rows.")
        if data.get("base_model") == OTHER:
            path = (data.get("base_model_path") or "").strip()
            hub_id = allow_hub() and "/" in path and not path.startswith(("/", "."))
            if not path:
                self.add_error("base_model_path", "Type the path of a local model folder.")
            elif not Path(path).expanduser().is_dir() and not hub_id:
                self.add_error("base_model_path", f"{path} is not a folder on this host.")
            elif Path(path).expanduser().is_dir() and not (Path(path).expanduser() / "config.json").is_file():
                self.add_error("base_model_path", f"{path} has no config.json: not a saved transformers model.")
        if data.get("use_lora") and not data.get("lora_rank"):
            self.add_error("lora_rank", "LoRA needs a rank (for example 16).")
        return data

    def hyperparameters(self) -> dict:
        """The method's defaults, overridden by what the user typed (only keys the method uses)."""
        method = self.cleaned_data["method"]
        values = dict(self.defaults.get(method, {}))
        for key in list(values):
            typed = self.cleaned_data.get(self.HP_PREFIX + key)
            if typed not in (None, ""):
                values[key] = typed
        if self.cleaned_data.get("use_lora"):
            values[LORA_RANK_KEY] = self.cleaned_data["lora_rank"]
        return values

    def field_for_error(self, message: str) -> str | None:
        """Which field a ValueError from `training.runs.start_run` is about, to show it there."""
        lowered = message.lower()
        for key in sorted(self.defaults.get(self.cleaned_data.get("method"), {}), key=len, reverse=True):
            if key in message and self.HP_PREFIX + key in self.fields:
                return self.HP_PREFIX + key
        if lowered.startswith("base model"):
            return "base_model_path" if self.cleaned_data.get("base_model") == OTHER else "base_model"
        if "rl dataset" in lowered or "grpo phase" in lowered:
            return "rl_dataset"
        if lowered.startswith("dataset") or "dataset;" in lowered:
            return "dataset"
        if lowered.startswith("device"):
            return "device"
        return None


class EvaluationForm(forms.Form):
    """A model as the built-in agent over a dataset's held-out bugs (see `training.evaluations`)."""

    SUBJECT_HELP = {
        "checkpoint": "the final model of a training run",
        "base": "a base model (a run's, or a local path)",
        "teacher": "a teacher's LLM endpoint, k fresh attempts per bug",
        "episodes": "a teacher's existing episodes on those bugs (no new attempts)",
    }

    name = forms.CharField(max_length=200, required=False, help_text="blank: subject and dataset")
    dataset = forms.ModelChoiceField(Dataset.objects.filter(heldout_rows__gt=0), empty_label=None,
                                     help_text="its held-out bugs are the evaluation set")
    subject = forms.ChoiceField(choices=[], initial="checkpoint")
    run = forms.ModelChoiceField(TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED), required=False,
                                 help_text="trained checkpoint: its final model; base model: the model it started from")
    model_path = forms.CharField(max_length=500, required=False, label="Model path",
                                 help_text="base model or checkpoint folder, instead of a run")
    teacher = forms.ModelChoiceField(Teacher.objects.all(), required=False, to_field_name="name")
    k = forms.IntegerField(min_value=1, max_value=50, initial=1, label="k", help_text="attempts per bug (pass@k)")
    max_steps = forms.IntegerField(min_value=1, max_value=200, required=False, help_text="agent steps per attempt")
    max_new_tokens = forms.IntegerField(min_value=1, max_value=32768, required=False,
                                        help_text="tokens per model reply (local models)")
    temperature = forms.FloatField(min_value=0.0, max_value=2.0, required=False,
                                   help_text="sampling temperature (local models); 0 = greedy")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subject"].choices = Evaluation.Subject.choices
        self.fields["subject"].help_text = "; ".join(f"{k}: {v}" for k, v in self.SUBJECT_HELP.items())

    def clean(self):
        data = super().clean()
        subject = data.get("subject")
        if subject in ("checkpoint", "base") and not data.get("run") and not (data.get("model_path") or "").strip():
            self.add_error("run", "Choose a run, or type a model path.")
        if subject == "checkpoint" and data.get("run") and not data["run"].final_model:
            self.add_error("run", f"{data['run'].name} saved no final model.")
        if subject in ("teacher", "episodes") and not data.get("teacher"):
            self.add_error("teacher", "Choose the teacher.")
        return data

    def options(self) -> dict:
        return {k: self.cleaned_data[k] for k in ("max_steps", "max_new_tokens", "temperature")
                if self.cleaned_data.get(k) is not None}

    def field_for_error(self, message: str) -> str | None:
        lowered = message.lower()
        for needle, field in (("model", "model_path"), ("teacher", "teacher"), ("dataset", "dataset"), ("k must", "k")):
            if needle in lowered:
                return "run" if field == "model_path" and self.cleaned_data.get("run") else field
        return None
