"""The real CUDA 4-bit path on a real shape (Qwen2.5-0.5B's configuration, random weights, built in
code): a few QLoRA steps through `retrain`, publish, swap into a running backend, generate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from assistant.adapters import registry
from assistant.engine.base import ChatMessage, GenerationParams
from assistant.store import Store
from assistant.train.retrain import Options, retrain
from tests.conftest import load_backend
from tests.train.conftest import PROBE, configure, curate

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_qlora_on_cuda_publishes_an_adapter_that_swaps_into_a_running_backend(tmp_path: Path, tiny_model_dir: Path) -> None:
    import bitsandbytes as bnb

    from scripts.bench.shapes import QWEN2_5_0_5B, build_random_model

    base = build_random_model(QWEN2_5_0_5B, tiny_model_dir, tmp_path / "qwen-shape")
    settings = configure(tmp_path / "data", base, max_steps=5, device="cuda", learning_rate=2e-4, epochs=1)
    store = Store.open(settings.db_path)
    curate(store)
    result = retrain(settings, store, Options(force_reason="random weights: the gate cannot judge them"))
    assert result.version == "v0001" and result.metrics["steps"] == 5
    assert store.active_adapter().version == "v0001"
    meta = registry.check_files(settings.data_dir / "adapters" / "v0001")
    assert meta["training_config"]["target_modules"] == ["all-linear"]

    backend = load_backend(base, device="cuda")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in backend.model.modules())
    identity = backend.swap_adapter("v0001", settings.data_dir / "adapters" / "v0001")
    assert identity.adapter == "v0001"
    reply = backend.stream([ChatMessage("user", PROBE)], GenerationParams(max_new_tokens=8, temperature=0))
    assert "".join(reply) == reply.text and reply.stats.token_count > 0
    assert reply.identity.adapter == "v0001"


@pytest.mark.parametrize("kind", ["dpo", "kto"])
def test_the_preference_stage_trains_on_the_cuda_4bit_base_after_sft(tmp_path: Path, tiny_model_dir: Path, kind: str) -> None:
    """QLoRA's preference stage on CUDA: the SFT adapter continues on the same 4-bit base, as its own reference."""
    from scripts.bench.shapes import QWEN2_5_0_5B, build_random_model

    base = build_random_model(QWEN2_5_0_5B, tiny_model_dir, tmp_path / "qwen-shape")
    settings = configure(tmp_path / "data", base, max_steps=4, device="cuda", learning_rate=2e-4, epochs=1,
                         preference=kind)
    store = Store.open(settings.db_path)
    curate(store)  # corrections of rated-down replies: DPO pairs, and KTO rows of both labels
    result = retrain(settings, store, Options(force_reason="random weights: the gate cannot judge them"))
    assert result.metrics["preference"]["kind"] == kind and result.metrics["preference"]["steps"] == 4
    assert {p.stage for p in store.run_metrics(result.run_id)} == {"sft", "preference"}
    meta = registry.check_files(settings.data_dir / "adapters" / "v0001")
    assert meta["metrics"]["preference"]["kind"] == kind
    assert sorted(p.name for p in (settings.data_dir / "adapters" / "v0001").iterdir() if p.is_dir()) == []  # no "ref" copy
    store.close()
