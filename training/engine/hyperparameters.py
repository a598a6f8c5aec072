"""Default hyperparameters per method and how a plain dict becomes TRL config kwargs.

No torch/TRL import here: the web app reads the defaults to render forms.
"""
from __future__ import annotations

COMMON = {
    "max_steps": 100,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "logging_steps": 1,
    "save_steps": 50,
    "save_total_limit": 2,
    "seed": 0,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
}

SFT = {
    **COMMON,
    "learning_rate": 2e-5,
    "max_length": 4096,
    "assistant_only_loss": True,
}

GRPO = {
    **COMMON,
    "learning_rate": 1e-6,
    "num_generations": 2,
    "max_completion_length": 512,
    "max_tool_calling_iterations": 8,
    "beta": 0.0,
    "temperature": 1.0,
    "use_vllm": False,
    "vllm_mode": "server",
    "vllm_server_base_url": "",
}

# SFT then GRPO: the GRPO keys, plus `sft_`-prefixed keys for the SFT phase.
SFT_GRPO = {**GRPO, "sft_max_steps": 50, "sft_learning_rate": 2e-5, "sft_max_length": 4096}

DEFAULTS = {"sft": SFT, "grpo": GRPO, "sft_grpo": SFT_GRPO}

# Keys BugForge handles itself (never passed to the TRL config as such).
LORA_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")


def defaults(method: str) -> dict:
    if method not in DEFAULTS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(DEFAULTS)}")
    return dict(DEFAULTS[method])


def resolve(method: str, overrides: dict | None) -> dict:
    """Defaults for ``method`` updated by ``overrides``; values are coerced to the default's
    type, so "5" from a form becomes 5 (a clear ValueError when it cannot be)."""
    merged = defaults(method)
    for key, value in (overrides or {}).items():
        if key in merged and merged[key] is not None and value is not None:
            value = coerce(key, value, type(merged[key]))
        merged[key] = value
    return merged


def coerce(key: str, value, kind: type):
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.strip().lower() in ("1", "true", "yes", "on"):
                    return True
                if value.strip().lower() in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int:
            as_float = float(value)
            if as_float != int(as_float):
                raise ValueError(value)
            return int(as_float)
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"hyperparameter {key}: {value!r} is not a valid {kind.__name__}") from None


def phase(hparams: dict, name: str) -> dict:
    """The hyperparameters of one phase of a SFT-then-GRPO run: ``sft_x`` overrides ``x`` for SFT;
    GRPO ignores the ``sft_`` keys."""
    plain = {k: v for k, v in hparams.items() if not k.startswith("sft_")}
    if name == "sft":
        plain.update({k[4:]: v for k, v in hparams.items() if k.startswith("sft_")})
        for key in ("num_generations", "max_completion_length", "max_tool_calling_iterations", "beta",
                    "temperature", "use_vllm", "vllm_mode", "vllm_server_base_url"):
            plain.pop(key, None)
    return plain


def split_trl_kwargs(hparams: dict, config_cls) -> tuple[dict, dict]:
    """(kwargs the TRL config accepts, LoRA settings); an unknown key is a clear error."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(config_cls)}
    trl_kwargs, lora, unknown = {}, {}, []
    for key, value in hparams.items():
        if key in LORA_KEYS:
            lora[key] = value
        elif key in fields:
            trl_kwargs[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) for {config_cls.__name__}: {', '.join(sorted(unknown))}")
    return trl_kwargs, lora
