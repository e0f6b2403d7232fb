"""A team's first retrain is often a handful of corrections: on the demo model (here its tiny recipe,
built from every sample conversation as the real one is), `assistant retrain` with the automatic
schedule replays the samples, repeats the corrections, trains every one of them and lets the gate
judge the version on what it learned without breaking the rest (scripts/bench/corrections.py
measures the same on the real demo model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.store import Store
from tests.train.conftest import ANSWERS, configure

CORRECTED = {"reset": "my thermostat froze, what now?", "parcel": "no sign of my parcel yet", "return": "can a camera go back?"}


@pytest.fixture(scope="module")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir serving the tiny demo model, built once for the module."""
    from assistant.demo.build import ensure_demo_model

    data_dir = tmp_path_factory.mktemp("small") / "data"
    ensure_demo_model(data_dir / "models", recipe="tiny", seed=0)
    return data_dir


def test_three_corrections_on_the_demo_model_train_beside_the_replayed_samples(demo_data_dir: Path) -> None:
    from assistant.train.retrain import Options, retrain

    # The automatic schedule: no epochs or learning rate of the tests' own.
    settings = configure(demo_data_dir, Path(""), model="", fallback_model="demo", demo_recipe="tiny", epochs=0, learning_rate=0,
                         lr_scheduler_type="cosine", min_eval_examples=8)  # fmt: skip
    store = Store.open(settings.db_path)
    replies = []
    for key, question in CORRECTED.items():
        conversation = store.create_conversation("bob", settings.system_prompt)
        user = store.add_message(conversation.id, "user", question)
        reply = store.add_message(conversation.id, "assistant", "eeee", parent_id=user.id)
        store.rate(reply.id, "bob", -1, correction=ANSWERS[key])
        replies.append(reply.id)
    store.approve(replies, "ann")

    result = retrain(settings, store, Options())

    run = json.loads((settings.runs_dir / result.run_id / "run.json").read_text(encoding="utf-8"))
    assert (run["config"]["repeat_new"], run["config"]["replay_held_out"], run["config"]["epochs"]) == (30, True, 1.0)
    manifest = json.loads((settings.layout.datasets / result.dataset_id / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["sources"]["approved_sample"] > 200  # the samples, replayed
    trained = {r["conversation_id"] for r in manifest["rows"]["train"]}
    held_out = {r["conversation_id"] for r in manifest["rows"]["eval"]}
    assert {1, 2, 3} <= trained and all(cid < 0 for cid in held_out)  # every correction trains; samples are held out
    # About 263 sample rows once and 3 x 30 correction copies: one pass, 4 rows a step.
    assert 80 <= result.metrics["total_steps"] <= 100
    candidate, base = result.report["scores"]["candidate"], result.report["scores"]["base"]
    assert result.report["new_examples"] == 3
    assert candidate["new_loss"] < base["new_loss"] - settings.gate_margin  # the corrections were learned
    assert result.status == "promoted", result.message
    store.close()
