"""Build the offline demo model from the sample conversations, with the project's own code.

A byte-level BPE tokenizer trained with `tokenizers`, then a small Llama-architecture model
trained from scratch with TRL's SFTTrainer (assistant-only loss), saved as safetensors.
Deterministic given the seed; reused once built (the directory name carries a fingerprint of
the samples, the recipe and the seed). The tests use the same code with the `tiny` recipe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant import __version__
from assistant.chat_templates import chatml_template
from assistant.demo.samples import Conversation, fingerprint, load_samples
from assistant.files import build_once

log = logging.getLogger(__name__)

IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]

# ChatML. `{% generation %}` marks what an assistant turn trains on, end-of-turn token included,
# so TRL's assistant-only loss works with this template; an assistant turn with `"weight": 0` (context
# in a dataset row, the OpenAI fine-tuning convention) is not marked. The demo model is too small to
# follow instructions, so it is trained without a system turn and its template leaves system messages out.
CHAT_TEMPLATE = chatml_template(system=False)

DEMO_MODEL_ID = "assistant-demo"
BUILD_INFO = "build.json"

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called as the build advances."""


@dataclass(frozen=True)
class DemoRecipe:
    """Tokenizer, architecture and training schedule of a demo model."""

    name: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_length: int
    context_length: int
    epochs: float
    learning_rate: float
    batch_size: int
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0

    def fingerprint(self) -> str:
        """Of the recipe and the chat template (a model built with an older template is rebuilt)."""
        text = json.dumps(asdict(self), sort_keys=True) + CHAT_TEMPLATE
        return hashlib.sha256(text.encode()).hexdigest()[:8]


RECIPES = {
    # The shipped demo: answers the sample questions recognisably; about 2 min on 2 CPU cores.
    # Small batches matter more than width here: memorising ~28k tokens takes many optimiser steps.
    "demo": DemoRecipe(
        name="demo",
        vocab_size=2048,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_length=512,
        context_length=2048,
        epochs=20,
        learning_rate=3e-3,
        batch_size=4,
    ),
    # The tests' model: the same code path in seconds. Two heads of 32: vLLM's CPU attention needs a
    # head size of at least 32, so the tests' model server can serve it.
    "tiny": DemoRecipe(
        name="tiny",
        vocab_size=384,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_length=256,
        context_length=4096,
        epochs=2,
        learning_rate=3e-3,
        batch_size=8,
    ),
}


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer with ChatML special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=PAD,
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def model_config(recipe: DemoRecipe, tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_hidden_layers,
        num_attention_heads=recipe.num_attention_heads,
        num_key_value_heads=recipe.num_attention_heads,
        max_position_embeddings=recipe.context_length,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD),
    )


def build_demo_model(
    out_dir: Path,
    conversations: list[Conversation],
    *,
    recipe: DemoRecipe,
    seed: int = 0,
    progress: Progress | None = None,
) -> Path:
    """Train tokenizer and model on `conversations` and save them (safetensors) to `out_dir`."""
    import torch
    from datasets import Dataset
    from transformers import LlamaForCausalLM, PrinterCallback, TrainerCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    started = time.monotonic()
    report = progress or (lambda stage, done, total: None)
    examples = conversations
    texts = [m["content"] for c in examples for m in c]

    report("tokenizer", 0, 1)
    tokenizer = train_tokenizer(texts, recipe.vocab_size)
    report("tokenizer", 1, 1)

    set_seed(seed)
    model = LlamaForCausalLM(model_config(recipe, tokenizer))
    model.generation_config.eos_token_id = model.config.eos_token_id
    model.generation_config.pad_token_id = model.config.pad_token_id

    steps_per_epoch = math.ceil(len(examples) / recipe.batch_size)
    total_steps = max(1, math.ceil(steps_per_epoch * recipe.epochs))

    class ReportSteps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            report("training", state.global_step, total_steps)

    with tempfile.TemporaryDirectory(prefix="demo-train-") as scratch:
        config = SFTConfig(
            output_dir=scratch,
            assistant_only_loss=True,
            max_length=recipe.max_length,
            num_train_epochs=recipe.epochs,
            max_steps=total_steps,
            per_device_train_batch_size=recipe.batch_size,
            learning_rate=recipe.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=max(1, int(total_steps * recipe.warmup_ratio)),
            weight_decay=recipe.weight_decay,
            seed=seed,
            data_seed=seed,
            logging_steps=max(1, total_steps // 20),
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            dataloader_num_workers=0,
            train_sampling_strategy="group_by_length",  # less padding: batches of similar lengths
            bf16=False,
            fp16=False,
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list([{"messages": c} for c in examples]),
            processing_class=tokenizer,
            callbacks=[ReportSteps()],
        )
        trainer.remove_callback(PrinterCallback)  # progress is reported through `progress`
        result = trainer.train()

    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    info = {
        "model_id": DEMO_MODEL_ID,
        "recipe": asdict(recipe),
        "seed": seed,
        "samples": fingerprint(conversations),
        "conversations": len(conversations),
        "steps": total_steps,
        "mean_train_loss": result.training_loss,
        "last_train_loss": next((e["loss"] for e in reversed(trainer.state.log_history) if "loss" in e), None),
        "build_seconds": round(time.monotonic() - started, 1),
        "assistant_version": __version__,
        "torch_version": torch.__version__,
    }
    (out_dir / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out_dir


def demo_model_dir(models_dir: Path, recipe: DemoRecipe, seed: int, conversations: list[Conversation]) -> Path:
    key = f"{fingerprint(conversations)}-{recipe.fingerprint()}-s{seed}"
    return models_dir / f"demo-{recipe.name}-{key}"


def is_built(path: Path) -> bool:
    return (path / BUILD_INFO).is_file() and (path / "model.safetensors").is_file()


def ensure_demo_model(
    models_dir: Path,
    *,
    recipe: str | DemoRecipe = "demo",
    seed: int = 0,
    conversations: list[Conversation] | None = None,
    progress: Progress | None = None,
) -> Path:
    """The demo model's directory, built first if needed. Safe when several apps start at once.

    The build happens in a staging directory renamed into place when complete. An interrupted build
    removes it as it unwinds; one that was killed leaves it, and the next build (under the same lock,
    so no other build is using it) removes it and starts from the beginning."""
    chosen = RECIPES[recipe] if isinstance(recipe, str) else recipe
    samples = load_samples() if conversations is None else conversations
    target = demo_model_dir(models_dir, chosen, seed, samples)
    return build_once(
        target, is_built, lambda staging: build_demo_model(staging, samples, recipe=chosen, seed=seed, progress=progress)
    )


def endless_copy(model_dir: Path, out: Path) -> Path:
    """A copy of a model that never ends its turn: replies run to max_new_tokens.

    For benchmarks and tests that need a long stream from a real model. Its context is widened (RoPE
    positions extrapolate; the text is noise either way) so that a stream can outlast a slow machine.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.generation_config.suppress_tokens = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens]
    model.config.max_position_embeddings = max(model.config.max_position_embeddings, 32_768)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
