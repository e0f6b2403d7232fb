"""Serve as trained: the chat, retraining and the gate load the base model in the one 4-bit
configuration (assistant/quantization.py), and the model server is started with its choice."""

from __future__ import annotations

from pathlib import Path

from assistant.quantization import bnb_config, vllm_options
from tests.conftest import load_backend


def test_the_chat_and_training_load_the_base_in_the_same_4bit_configuration(tiny_model_dir: Path) -> None:
    from assistant.quantization import load_base_4bit

    served = load_backend(tiny_model_dir, cpu_load_in_4bit=True).model  # what a chat answers with on CPU
    trained = load_base_4bit(tiny_model_dir, on_cuda=False)  # what retrain and the gate start from
    expected = bnb_config(on_cuda=False).to_dict()
    assert served.config.quantization_config.to_dict() == expected
    assert trained.config.quantization_config.to_dict() == expected
    assert expected["bnb_4bit_quant_type"] == "nf4" and expected["bnb_4bit_use_double_quant"] is True
    assert expected["bnb_4bit_compute_dtype"] == "float32"
    assert bnb_config(on_cuda=True).to_dict()["bnb_4bit_compute_dtype"] == "bfloat16"


def test_the_model_server_holds_the_base_as_trained_on_a_gpu() -> None:
    held, flags = vllm_options("auto", gpu=True)
    assert held == "4-bit NF4 (bitsandbytes)" and flags == ["--dtype", "bfloat16", "--quantization", "bitsandbytes"]
    assert vllm_options("4bit", gpu=True) == (held, flags)
    assert vllm_options("bf16", gpu=True) == ("bf16", ["--dtype", "bfloat16"])
    assert vllm_options("auto", gpu=False) == ("fp32", ["--dtype", "float32"])
