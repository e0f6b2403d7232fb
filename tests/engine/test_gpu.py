"""The CUDA path of the engine: 4-bit NF4, double quantisation, bf16 compute. Needs a CUDA GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from assistant.engine.base import ChatMessage, GenerationParams
from tests.conftest import load_backend

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_cuda_loads_4bit_nf4_with_bf16_compute_and_streams(tiny_model_dir: Path) -> None:
    import bitsandbytes as bnb

    backend = load_backend(tiny_model_dir, device="cuda")
    assert backend.identity.device.startswith("cuda")
    assert backend.identity.precision == "4-bit NF4, bf16 compute"
    layers = [m for m in backend.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers
    assert all(m.weight.quant_state.quant_type == "nf4" for m in layers)
    assert all(m.compute_dtype == torch.bfloat16 for m in layers)
    assert backend.model.config.quantization_config.bnb_4bit_use_double_quant
    reply = backend.stream([ChatMessage("user", "Where is my order?")], GenerationParams(max_new_tokens=16, temperature=0))
    assert "".join(reply) == reply.text
    assert reply.stats.token_count > 0
