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

# Qwen/Qwen2.5-1.5B-Instruct's config.json, as published (architecture fields only).
QWEN2_5_1_5B = {
    "model_type": "qwen2",
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "vocab_size": 151936,
    "hidden_act": "silu",
}

# Qwen/Qwen2.5-7B-Instruct's config.json, as published (architecture fields only): the 7B class.
QWEN2_5_7B = {
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": False,
    "vocab_size": 152064,
    "hidden_act": "silu",
}

# Not a real model: the Qwen2 architecture at a size a 2-core CPU trains in seconds, with the vocab of
# the built-in demo tokenizer (2048), so the GPU benchmarks' code paths can be proved on CPU.
TINY = {
    "model_type": "qwen2",
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "vocab_size": 2048,
    "hidden_act": "silu",
}

SHAPES = {"qwen2.5-0.5b": QWEN2_5_0_5B, "qwen2.5-1.5b": QWEN2_5_1_5B, "qwen2.5-7b": QWEN2_5_7B, "tiny": TINY}


def matmul_parameters(shape: dict) -> int:
    """Weights that take part in a matrix multiplication per token: every linear layer of the decoder
    and the output head (the input embedding is a lookup). The N of the 4N-FLOPs-per-token basis."""
    hidden, layers = shape["hidden_size"], shape["num_hidden_layers"]
    head_dim = shape.get("head_dim") or hidden // shape["num_attention_heads"]
    q = hidden * shape["num_attention_heads"] * head_dim
    kv = 2 * hidden * shape["num_key_value_heads"] * head_dim
    o = shape["num_attention_heads"] * head_dim * hidden
    mlp = 3 * hidden * shape["intermediate_size"]
    return layers * (q + kv + o + mlp) + hidden * shape["vocab_size"]


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
