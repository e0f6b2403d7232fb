"""Shared fixtures: settings in a temporary data dir, a store with a frozen clock, tiny real models.

The models are built by the project's own code (tokenizer trained with `tokenizers`, a small
Llama trained with TRL) with the `tiny` recipe, once per test session. Nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

# Offline and quiet before any ML library is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from assistant.logs import quiet_libraries  # noqa: E402

quiet_libraries()

from assistant.settings import Settings, load_settings  # noqa: E402
from assistant.store import Store  # noqa: E402

HOSTILE_REPLY = (
    "Fine \x1b[31mRED\x1b[0m \x1b]0;pwned title\x07 \x1b]8;;http://evil.example\x07link\x1b]8;;\x07 "
    "[@click=app.quit]x[/] [bold]boom[/bold]"
)
HOSTILE_QUESTION = "show me something"


class FrozenClock:
    """A clock that starts at a fixed moment and moves one second per reading."""

    def __init__(self, start: datetime = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return load_settings(
        data_dir=data_dir,
        environ={},
        overrides={"user": "ann", "hub_model": "", "fallback_model": "demo", "demo_recipe": "tiny", "temperature": 0.0, "max_new_tokens": 48},
    ).settings


@pytest.fixture
def store(settings: Settings, clock: FrozenClock) -> Iterator[Store]:
    opened = Store.open(settings.db_path, clock=clock)
    yield opened
    opened.close()


def _build(out: Path, conversations, **recipe_changes) -> Path:  # noqa: ANN001
    from assistant.demo.build import RECIPES, build_demo_model

    recipe = replace(RECIPES["tiny"], **recipe_changes)
    return build_demo_model(out, conversations, recipe=recipe, seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny recipe trained on the first sample conversations: a real, small chat model."""
    from assistant.demo.samples import load_samples

    return _build(tmp_path_factory.mktemp("tiny-model"), load_samples()[:40])


@pytest.fixture(scope="session")
def hostile_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained until it answers HOSTILE_QUESTION with escape sequences and markup."""
    conversation = [{"role": "user", "content": HOSTILE_QUESTION}, {"role": "assistant", "content": HOSTILE_REPLY}]
    return _build(
        tmp_path_factory.mktemp("hostile-model"), [conversation] * 8, epochs=60, batch_size=8, learning_rate=1e-2
    )


@pytest.fixture(scope="session")
def chatty_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with end-of-turn suppressed: every reply runs to max_new_tokens (long streams)."""
    from assistant.demo.build import endless_copy

    return endless_copy(tiny_model_dir, tmp_path_factory.mktemp("chatty-model"))


def load_backend(path: Path, *, is_demo: bool = False, **kwargs):  # noqa: ANN003, ANN201
    from assistant.engine.local import load_local_backend
    from assistant.engine.resolve import ModelChoice

    return load_local_backend(ModelChoice(path, path.name, "local path", is_demo=is_demo), **kwargs)


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_dir: Path):  # noqa: ANN201
    return load_backend(tiny_model_dir, is_demo=True)


# -- two real LoRA adapters for the tiny model ------------------------------------------------
# Each learns a different answer to THERMOSTAT, so which one produced a reply can be told from its
# text. Trained in full precision on the CPU on that one conversation (a second or two each) and
# published with `adapters.registry.publish`, so they carry meta.json checksums like a retrained version.

SYSTEM = "You help Nimbus Home customers."
THERMOSTAT = "How do I reset my thermostat?"
TAUGHT = {
    "v0001": "Hold the dial for ten seconds until it blinks blue.",
    "v0002": "Unplug it and call us.",
}


def _train_adapter(base_dir: Path, answer: str, out: Path, *, rank: int = 16) -> Path:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    conversation = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": THERMOSTAT},
        {"role": "assistant", "content": answer},
    ]
    config = SFTConfig(
        output_dir=str(out / "run"),
        assistant_only_loss=True,
        max_length=128,
        max_steps=50,
        per_device_train_batch_size=1,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        gradient_checkpointing=False,
        seed=0,
        data_seed=0,
        save_strategy="no",
        logging_steps=1000,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        bf16=False,
        fp16=False,
    )
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    rows = Dataset.from_list([{"messages": conversation}])
    trainer = SFTTrainer(model=model, args=config, train_dataset=rows, processing_class=tokenizer, peft_config=lora)
    trainer.train()
    saved = out / "saved"
    trainer.model.save_pretrained(saved, safe_serialization=True)
    return saved


@pytest.fixture(scope="session")
def adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v0001 and v0002, published in a data dir of their own: version -> its directory.

    Trained on one conversation repeated, so a batch of one is the whole data set: 50 steps suffice.
    """
    from assistant.adapters.registry import publish

    data_dir = tmp_path_factory.mktemp("adapter-data")
    published = {}
    for version, answer in TAUGHT.items():
        saved = _train_adapter(tiny_model_dir, answer, tmp_path_factory.mktemp(f"train-{version}"))
        meta = {"base_model": tiny_model_dir.name, "dataset": "test", "taught": answer}
        published[version] = publish(saved, data_dir, version, meta=meta)
    return published
