"""What one retrain trains: LoRA shape, schedule and seed, resolved from the settings.

Zeros in the settings mean "automatic": a real model gets the usual QLoRA numbers (lr 2e-4, 3
epochs); the built-in demo model, small and trained from scratch, needs much larger steps to learn
new answers from a handful of examples (lr 1e-2, 30 epochs, no early stopping: its eval loss on a
few held-out questions says little about whether it learned the approved answers). SmolLM2-135M, the
pretrained fallback, gets its own values (docs/BENCHMARKS.md), among them a full-precision base on
CPU (`load_in_4bit` off: faster per step there, and what a CPU chat
serves). No torch here.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from assistant.settings import Settings

EVALUATIONS_PER_RUN = 10


@dataclass(frozen=True)
class Automatic:
    """What zeros in the settings stand for, for one kind of base model."""

    learning_rate: float
    epochs: float
    load_in_4bit: bool  # on CPU
    evaluations: int = EVALUATIONS_PER_RUN  # about this many evaluations (and checkpoints) per run


USUAL = Automatic(learning_rate=2e-4, epochs=3.0, load_in_4bit=True)
DEMO = Automatic(learning_rate=1e-2, epochs=30.0, load_in_4bit=True)
# Measured on the held-out rephrasings (docs/BENCHMARKS.md, "SmolLM2: rephrasings and training defaults"): from
# 0.140 ROUGE-L (no adapter), one epoch of the samples reaches 0.18-0.20 at lr 1e-3 and at 2e-3; more epochs gain
# little for their cost on 2 cores (lr 2e-3: 0.198 after two, 0.228 after three, about 4.5 minutes each): one
# epoch. A full-precision base trains in bf16 autocast on a CPU with oneDNN bf16; two evaluations (one at the
# end) instead of ten leave the first start's time to training (each costs about 12 s here).
SMOLLM2_135M = Automatic(learning_rate=1e-3, epochs=1.0, load_in_4bit=False, evaluations=2)
_SMOLLM2_135M_NAME = re.compile(r"smollm2[-_ ]?135m", re.IGNORECASE)


def automatic(model_name: str, *, is_demo: bool) -> Automatic:
    """The automatic values for a base model, by the name it is resolved under (a hub id, a directory)."""
    if is_demo:
        return DEMO
    if _SMOLLM2_135M_NAME.search(model_name):
        return SMOLLM2_135M
    return USUAL


@dataclass(frozen=True)
class TrainConfig:
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: tuple[str, ...]
    learning_rate: float
    lr_scheduler_type: str
    warmup_ratio: float
    epochs: float
    max_steps: int  # 0: epochs decide
    batch_size: int
    gradient_accumulation_steps: int
    eval_steps: int  # 0: decided from the number of steps
    early_stopping_patience: int
    seed: int
    max_length: int
    warm_start: bool = False
    load_in_4bit: bool = True  # on CPU; on CUDA the base is always 4-bit, as served
    evaluations: int = EVALUATIONS_PER_RUN  # when eval_steps is 0

    @classmethod
    def from_settings(
        cls, settings: Settings, *, is_demo: bool, warm_start: bool = False, model_name: str = ""
    ) -> TrainConfig:
        auto = automatic(model_name, is_demo=is_demo)
        return cls(
            lora_r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=settings.lora_target_modules,
            learning_rate=settings.learning_rate or auto.learning_rate,
            lr_scheduler_type=settings.lr_scheduler_type,
            warmup_ratio=settings.warmup_ratio,
            epochs=settings.epochs or auto.epochs,
            max_steps=settings.max_steps,
            batch_size=settings.batch_size,
            gradient_accumulation_steps=settings.gradient_accumulation_steps,
            eval_steps=settings.eval_steps,
            early_stopping_patience=0 if is_demo else settings.early_stopping_patience,
            seed=settings.train_seed,
            max_length=settings.max_length,
            warm_start=warm_start,
            load_in_4bit=auto.load_in_4bit,
            evaluations=auto.evaluations,
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        return cls(**{**values, "target_modules": tuple(values["target_modules"])})

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target_modules": list(self.target_modules)}

    def total_steps(self, train_examples: int) -> int:
        per_epoch = math.ceil(train_examples / (self.batch_size * self.gradient_accumulation_steps))
        steps = max(1, math.ceil(per_epoch * self.epochs))
        return min(steps, self.max_steps) if self.max_steps else steps

    def interval(self, total_steps: int) -> int:
        """Steps between evaluations and checkpoints."""
        return self.eval_steps or max(1, math.ceil(total_steps / self.evaluations))
