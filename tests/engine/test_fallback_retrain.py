"""`assistant retrain` on the fallback model from the package index: fetched and converted, it learns
the sample conversations (which it does not know) beside the curated data, and the chat engine serves
the version on the converted model. The tiny model stands in for SmolLM2, as a GGUF inside a wheel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.engine import packaged
from assistant.store import Store
from tests.engine.gguf_files import PACKAGE
from tests.train.conftest import PROBE, configure, curate


def test_retrain_on_the_converted_fallback_model_learns_the_samples_beside_the_curated_answers(
    wheel_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.engine.base import ChatMessage, GenerationParams
    from assistant.engine.local import load_local_backend
    from assistant.engine.resolve import resolve_model
    from assistant.train.retrain import Options, retrain

    monkeypatch.setattr(packaged, "SMOLLM2", PACKAGE)
    settings = configure(
        tmp_path / "data", Path(""), model="", fallback_model="smollm2", fallback_find_links=str(wheel_dir),
        max_steps=30, gate_margin=0.0,
    )  # fmt: skip
    store = Store.open(settings.db_path)
    curate(store)

    result = retrain(settings, store, Options())

    assert result.status == "promoted", result.message
    choice = resolve_model(settings)
    assert (choice.source, choice.name) == ("package (converted)", PACKAGE.name)  # fetched and converted by the retrain
    meta = json.loads((settings.layout.version(result.version) / "meta.json").read_text(encoding="utf-8"))
    assert meta["base_model"]["name"] == PACKAGE.name
    assert meta["training_config"]["references"] == 2  # a real model trains with the curated answers the chat shows it
    manifest = json.loads((settings.layout.datasets / result.dataset_id / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["sources"]["approved_sample"] > 200  # the samples, beside the curated replies
    assert manifest["counts"]["sources"]["approved_correction"] == 12
    backend = load_local_backend(choice, device="cpu", adapter=str(settings.layout.version(result.version)))
    reply = backend.stream([ChatMessage("user", PROBE)], GenerationParams(max_new_tokens=8, temperature=0))
    assert "".join(reply) and reply.stats.token_count > 0
    assert reply.identity.adapter == result.version and reply.identity.model == PACKAGE.name
    assert result.report["scores"]["candidate"]["eval_loss"] < result.report["scores"]["base"]["eval_loss"]
    store.close()
