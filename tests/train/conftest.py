"""Retrain fixtures: a data dir whose curated feedback teaches the tiny model three answers.

Each answer is approved in four conversations that ask for it in different words, so the eval
split (held-out conversations) asks for answers the training split teaches: training lowers the
eval loss, as it does for a real support log. The training settings are the demo profile made
deterministic (constant learning rate, no dropout, no early stopping; no preference stage but where a
test asks for one, tests/train/test_preference.py), in the data dir's
config.toml so that `assistant retrain` in a subprocess reads them too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.settings import Settings, load_settings
from assistant.store import Store

ANSWERS = {
    "reset": "Hold the dial for ten seconds until it blinks blue.",
    "parcel": "Check the tracking link in your order e-mail.",
    "return": "Yes, within 30 days, unused, with the receipt.",
}
QUESTIONS = {
    "reset": ["How do I reset my thermostat?", "My thermostat is frozen, how to reset it?", "Reset the thermostat please", "thermostat reset steps?"],
    "parcel": ["Where is my parcel?", "My parcel has not arrived", "Where is my order?", "When does my parcel come?"],
    "return": ["Can I return a camera?", "I want to return my camera", "Camera return policy?", "How do I send a camera back?"],
}
PROBE = "How do I reset my thermostat?"

TRAIN_CONFIG = """
user = "ann"
hub_model = ""
model = "{model}"
temperature = 0.0
max_new_tokens = 32
min_eval_examples = 2
learning_rate = 0.01
epochs = 60
batch_size = 4
lora_dropout = 0.0
lr_scheduler_type = "constant_with_warmup"
early_stopping_patience = 0
preference = "off"
probe_prompts = ["How do I reset my thermostat?", "Where is my parcel?"]
"""


def configure(data_dir: Path, model_dir: Path, **extra: object) -> Settings:
    import json

    data_dir.mkdir(parents=True, exist_ok=True)
    base = [line for line in TRAIN_CONFIG.format(model=model_dir).splitlines() if line.split(" = ")[0] not in extra]
    lines = "\n".join(base) + "\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items())
    (data_dir / "config.toml").write_text(lines, encoding="utf-8")
    return load_settings(data_dir=data_dir, environ={}).settings


def curate(store: Store, *, approve: bool = True, questions: dict[str, list[str]] = QUESTIONS) -> list[int]:
    """Conversations whose reply was wrong, rated down with the right answer, approved (or rejected)."""
    ids = []
    for key, asked in questions.items():
        for question in asked:
            conversation = store.create_conversation("bob", "")
            user = store.add_message(conversation.id, "user", question)
            reply = store.add_message(conversation.id, "assistant", "eeee", parent_id=user.id)
            store.rate(reply.id, "bob", -1, correction=ANSWERS[key])
            ids.append(reply.id)
    if approve:
        store.approve(ids, "ann")
    else:
        store.reject(ids, "ann")
    return ids


@pytest.fixture(scope="session")
def trained_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir after one `retrain`: v0001 promoted. Copy it (`data_copy`) before changing it."""
    from assistant.train.retrain import Options, retrain

    data_dir = tmp_path_factory.mktemp("trained") / "data"
    settings = configure(data_dir, tiny_model_dir)
    store = Store.open(settings.db_path)
    curate(store)
    result = retrain(settings, store, Options())
    store.close()
    assert result.status == "promoted", result.message
    return data_dir


@pytest.fixture
def data_copy(trained_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(trained_dir, target)
    return target
