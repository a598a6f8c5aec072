"""GRPOConfig from a plain hyperparameter dict (vLLM in server mode is an option for GPU hosts)."""
from __future__ import annotations

from training.engine import hyperparameters as hp
from training.engine.sft import device_kwargs, lora_config


def build_config(hparams: dict, output_dir: str, device: str = "cpu"):
    """(GRPOConfig, LoraConfig or None) for the given (already resolved) hyperparameters."""
    from trl import GRPOConfig

    hparams = dict(hparams)
    use_lora = bool(hparams.pop("use_lora", False))
    if not hparams.get("use_vllm"):
        hparams.pop("vllm_mode", None)
        hparams.pop("vllm_server_base_url", None)
    elif not hparams.get("vllm_server_base_url"):
        hparams.pop("vllm_server_base_url", None)
    trl_kwargs, lora = hp.split_trl_kwargs(hparams, GRPOConfig)
    batch = trl_kwargs.get("per_device_train_batch_size", 1) * trl_kwargs.get("gradient_accumulation_steps", 1)
    generations = trl_kwargs.get("num_generations", 2)
    if batch % generations:
        raise ValueError(
            f"per_device_train_batch_size × gradient_accumulation_steps ({batch}) must be a multiple of "
            f"num_generations ({generations})"
        )
    trl_kwargs.setdefault("save_strategy", "steps")
    config = GRPOConfig(output_dir=output_dir, report_to="none", disable_tqdm=True, log_completions=False,
                        **device_kwargs(device), **trl_kwargs)
    return config, (lora_config(lora) if use_lora else None)
