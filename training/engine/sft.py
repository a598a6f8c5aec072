"""SFTConfig from a plain hyperparameter dict, and the optional LoRA config."""
from __future__ import annotations

from training.engine import hyperparameters as hp


def lora_config(lora: dict):
    """A peft LoraConfig, or a clear error when peft is not installed."""
    try:
        from peft import LoraConfig
    except ImportError:
        raise RuntimeError("LoRA needs the `peft` package: pip install -r requirements.txt") from None
    return LoraConfig(
        r=int(lora.get("lora_r", 16)), lora_alpha=int(lora.get("lora_alpha", 32)),
        lora_dropout=float(lora.get("lora_dropout", 0.05)),
        target_modules=lora.get("lora_target_modules") or "all-linear", task_type="CAUSAL_LM",
    )


def device_kwargs(device: str) -> dict:
    # CPU runs must say so: TRL/transformers would otherwise pick up any visible accelerator.
    return {"use_cpu": True} if device == "cpu" else {}


def build_config(hparams: dict, output_dir: str, device: str = "cpu"):
    """(SFTConfig, LoraConfig or None) for the given (already resolved) hyperparameters."""
    from trl import SFTConfig

    hparams = dict(hparams)
    use_lora = bool(hparams.pop("use_lora", False))
    trl_kwargs, lora = hp.split_trl_kwargs(hparams, SFTConfig)
    trl_kwargs.setdefault("save_strategy", "steps")
    config = SFTConfig(output_dir=output_dir, report_to="none", disable_tqdm=True, **device_kwargs(device),
                       **trl_kwargs)
    return config, (lora_config(lora) if use_lora else None)
