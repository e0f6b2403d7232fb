"""Engine fixtures: two real LoRA adapters for the tiny model, trained with peft and TRL and published.

Each adapter learns a different answer to THERMOSTAT, so which one produced a reply can be told from
its text. They are trained in full precision on the CPU on that one conversation (a second or two
each) and published with `adapters.registry.publish`, so they carry meta.json checksums like a
retrained version does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SYSTEM = "You help Nimbus Home customers."
THERMOSTAT = "How do I reset my thermostat?"
TAUGHT = {
    "v0001": "Hold the dial for ten seconds until it blinks blue.",
    "v0002": "Unplug it and call us.",
}


def _train_adapter(base_dir: Path, answer: str, out: Path) -> Path:
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
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
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
