"""Real model shapes, built in code with random weights: GPU tests and benchmarks time and exercise
them exactly like the trained models, with nothing downloaded.

`build_random_model(shape, tokenizer_dir, out)` writes a safetensors model directory with the given
architecture and the tokenizer (chat template included) of `tokenizer_dir`.
"""

from __future__ import annotations

from pathlib import Path

# Qwen/Qwen2.5-0.5B-Instruct's config.json, as published (architecture fields only).
QWEN2_5_0_5B = {
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
    "hidden_act": "silu",
}

SHAPES = {"qwen2.5-0.5b": QWEN2_5_0_5B}


def build_random_model(shape: dict, tokenizer_dir: Path, out: Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    values = dict(shape)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
