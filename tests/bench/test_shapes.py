"""The benchmarks' model shapes (scripts/bench/shapes.py): a shape builds a loadable model with the
tokenizer it is given, and `matmul_parameters`, the basis of the benches' FLOPs figures, counts
exactly the weights of the model's linear layers."""

from __future__ import annotations

from pathlib import Path

from scripts.bench.shapes import SHAPES, TINY, build_random_model, matmul_parameters


def test_a_shape_builds_a_model_whose_linear_weights_are_the_flops_basis(tmp_path: Path, tiny_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_random_model(TINY, tiny_model_dir, tmp_path / "tiny-shape")
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.hidden_size == TINY["hidden_size"] and model.config.num_hidden_layers == TINY["num_hidden_layers"]
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert matmul_parameters(TINY) == linear
    assert AutoTokenizer.from_pretrained(out).chat_template == AutoTokenizer.from_pretrained(tiny_model_dir).chat_template
    assert SHAPES["tiny"] is TINY
