"""A tiny random-initialized causal LM that needs no download (tests, CI, the CPU demo).

The tokenizer is a byte-level BPE trained in memory; the chat template is TRL's bundled
qwen3 template *verbatim*: GRPO's tool-calling parser recognizes a template only when it
matches a bundled one byte for byte, and SFT's ``assistant_only_loss`` swaps in the matching
training template (with ``{% generation %}`` markers) the same way.
"""
from __future__ import annotations

import json
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>",
                  "<tool_response>", "</tool_response>", "<think>", "</think>"]
MARKER = "bugforge_tiny_model.json"

# Text the tokenizer learns merges from: chat scaffolding, tool calls and Python, so that
# prompts tokenize into a few hundred tokens rather than thousands of single bytes.
_CORPUS = [
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
    "<|im_start|>user\nFix the bug described below.<|im_end|>\n<|im_start|>assistant\n",
    '<tool_call>\n{"name": "shell", "arguments": {"command": "python -m pytest -q"}}\n</tool_call>',
    '<tool_call>\n{"name": "view", "arguments": {"path": "cartcalc/shipping.py"}}\n</tool_call>',
    '<tool_call>\n{"name": "edit", "arguments": {"path": "a.py", "old": "x < y", "new": "x <= y"}}\n</tool_call>',
    "<tool_response>\n1 failed, 12 passed in 0.05s\n</tool_response>",
    "def band_for(self, weight_grams):\n    for band in self.bands:\n        if weight_grams <= band.max_grams:\n            return band\n",
    "import pytest\n\ndef test_total():\n    assert cart.total() == Money(1000)\n",
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n",
    '{"type": "function", "function": {"name": "shell", "description": "Run a command", "parameters": {"type": "object", "properties": {}}}}',
]


def qwen3_chat_template() -> str:
    from trl.chat_template_utils import qwen3_chat_template as template

    return template


def build_tokenizer(vocab_size: int = 600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = qwen3_chat_template()
    fast.padding_side = "left"
    return fast


def build_model(tokenizer, seed: int = 0, hidden_size: int = 64, layers: int = 2):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2ForCausalLM(config)


def make_tiny_model(dest: str | Path, seed: int = 0, vocab_size: int = 600) -> Path:
    """Build and ``save_pretrained`` the tiny model and its tokenizer into ``dest``.

    Deterministic for a given seed (same weights, same tokenizer). The model must live on
    disk: with ``beta > 0`` GRPO reloads the reference model from its path.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size)
    model = build_model(tokenizer, seed=seed)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    (dest / MARKER).write_text(json.dumps({"seed": seed, "vocab_size": len(tokenizer),
                                           "parameters": sum(p.numel() for p in model.parameters())}))
    return dest


def is_tiny_model(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


if __name__ == "__main__":  # python -m training.engine.tiny_model <dest> [seed]
    import sys

    print(make_tiny_model(sys.argv[1], seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0))
