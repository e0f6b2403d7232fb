"""Serve as trained: the one 4-bit configuration of the base model.

Retraining (train/loop.py) and the gate (train/gate.py) load the base model with `load_base_4bit`;
the chat (engine/local.py) loads it with the same `load_options` on CUDA, and on CPU when
`cpu_load_in_4bit` asks for it; the model server (server/process.py) is started with `vllm_options`.
The configuration: bitsandbytes 4-bit NF4 with double quantisation, bf16 compute on CUDA, fp32 on
CPU. A leaf module: torch and transformers are imported inside the functions that need them, so
the server's command line, which must not load torch, reads it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.errors import ModelError

QUANT_TYPE = "nf4"
DOUBLE_QUANT = True


def compute_dtype(on_cuda: bool) -> str:
    return "bfloat16" if on_cuda else "float32"


def bnb_config(on_cuda: bool):  # noqa: ANN201 - transformers.BitsAndBytesConfig, imported lazily
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=QUANT_TYPE,
        bnb_4bit_use_double_quant=DOUBLE_QUANT,
        bnb_4bit_compute_dtype=compute_dtype(on_cuda),
    )


def load_options(*, on_cuda: bool, four_bit: bool = True) -> dict[str, Any]:
    """`from_pretrained` keyword arguments for the base model: 4-bit as trained, on the GPU or the CPU;
    `four_bit=False` (CPU only) loads it in full precision."""
    import torch

    dtype = getattr(torch, compute_dtype(on_cuda))
    if not four_bit:
        assert not on_cuda, "on CUDA the base model is always served as trained, in 4-bit"
        return {"use_safetensors": True, "dtype": dtype}
    return {
        "use_safetensors": True,
        "quantization_config": bnb_config(on_cuda),
        "device_map": {"": 0} if on_cuda else "cpu",
        "dtype": dtype,
    }


def precision_label(*, on_cuda: bool, four_bit: bool = True) -> str:
    """How a chat's status bar names the precision `load_options` gives."""
    if on_cuda:
        return "4-bit NF4, bf16 compute"
    return "4-bit NF4 (CPU)" if four_bit else "fp32"


def load_base_4bit(base_path: Path, *, on_cuda: bool, four_bit: bool = True):  # noqa: ANN201
    """The base model as it is trained and gated; `four_bit=False` (CPU only): in full precision, as a
    CPU chat serves it by default."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(base_path, **load_options(on_cuda=on_cuda, four_bit=four_bit))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the base model from {base_path}: {str(exc).splitlines()[0]}") from None


def vllm_options(serve_precision: str, gpu: bool) -> tuple[str, list[str]]:
    """What the model server holds the base in, and vLLM's flags for it: on a GPU bitsandbytes 4-bit as
    trained (or bf16 when `serve_precision` asks), without one fp32 (vLLM's CPU build)."""
    if not gpu:
        return "fp32", ["--dtype", "float32"]
    if serve_precision == "bf16":
        return "bf16", ["--dtype", "bfloat16"]
    return "4-bit NF4 (bitsandbytes)", ["--dtype", "bfloat16", "--quantization", "bitsandbytes"]
