"""What one retrain trains: LoRA shape, schedule and seed, resolved from the settings.

Zeros in the settings mean "automatic": a real model gets the usual QLoRA numbers (lr 2e-4, 3
epochs); the built-in demo model, small and trained from scratch, needs much larger steps to learn
new answers from a handful of examples (lr 3e-3, no early stopping: its eval loss on a few held-out
questions says little about whether it learned the approved answers).

Replay: a dataset may hold rows the model already answers well (the sample conversations, for the
demo model that was built from them) beside the team's own rows. A small retrain that trains only on
a few corrections for many epochs teaches them and breaks everything else; so the demo model's
automatic schedule passes over the team's rows about `new_passes` times, by repeating each in the
training set (`repeat_new`), within a budget that keeps big datasets fast (`sized`: 3 corrections are
each seen 30 times, 270 rows 4 times), and over the replay rows `epochs` times, or more where that
keeps them at least half of the rows (`loop.training_rows`). SmolLM2-135M, the
pretrained fallback, gets its own values (docs/BENCHMARKS.md), among them a full-precision base on
CPU (`load_in_4bit` off: faster per step there, and what a CPU chat
serves). No torch here.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from assistant.references import count_for
from assistant.settings import Settings

EVALUATIONS_PER_RUN = 10


@dataclass(frozen=True)
class Automatic:
    """What zeros in the settings stand for, for one kind of base model."""

    learning_rate: float
    epochs: float
    load_in_4bit: bool  # on CPU
    evaluations: int = EVALUATIONS_PER_RUN  # about this many evaluations (and checkpoints) per run
    new_passes: float = 0.0  # passes over the team's rows (0: `epochs`, as over every row)
    repeat_budget: int = 0  # most team rows (copies included) a run trains on; 0: no limit
    built_from_samples: bool = False  # the base has seen every sample conversation: replay the held-out ones too


USUAL = Automatic(learning_rate=2e-4, epochs=3.0, load_in_4bit=True)
# Measured with scripts/bench/corrections.py (docs/BENCHMARKS.md, "Corrections without forgetting"):
# one pass over the sample conversations keeps what the demo model answered well, and about 30
# sightings of a correction teach it.
DEMO = Automatic(
    learning_rate=3e-3, epochs=1.0, load_in_4bit=False, new_passes=30.0, repeat_budget=1200, built_from_samples=True
)
# Measured on the held-out rephrasings (docs/BENCHMARKS.md, "SmolLM2: rephrasings and training defaults"): from
# 0.140 ROUGE-L (no adapter), one epoch of the samples reaches 0.18-0.20 at lr 1e-3 and at 2e-3; more epochs gain
# little for their cost on 2 cores (lr 2e-3: 0.198 after two, 0.228 after three, about 4.5 minutes each): one
# epoch. A full-precision base trains in bf16 autocast on a CPU with oneDNN bf16; two evaluations (one at the
# end) instead of ten leave the first start's time to training (each costs about 12 s here).
# A team's few corrections: seen once at 1e-3 none was learned (0/3), nor seen 8 times; about 16 sightings at
# 2e-3 beside one pass of the replayed samples learn all three (ROUGE-L 1.00 each, "Corrections without
# forgetting"). A budget of 120 rows keeps a large dataset at one pass (its steps cost about 5 s each here) and
# shows 30 corrections 4 times: all 30 learned, where 60 rows (twice each) left five close but not word for word.
SMOLLM2_135M = Automatic(learning_rate=2e-3, epochs=1.0, load_in_4bit=False, evaluations=2, new_passes=16.0, repeat_budget=120)
# The first version a chat starts for the fallback model (demo/teach.py) passes 0.3 times over the samples:
# it learns to use the curated answers shown beside a question (references.py), which carry the facts, and
# the chat knows Nimbus Home within 5 minutes of a first start (18 steps: v0001 active after 160 s, 0.57
# ROUGE-L on the held-out rephrasings with references; docs/BENCHMARKS.md). Later retrains take the
# profile's schedule.
FIRST_VERSION_EPOCHS = 0.3
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
    repeat_new: int = 1  # copies of each of the team's rows in the training set (see `sized`)
    new_passes: float = 0.0  # wanted passes over the team's rows (0: `epochs`); `sized` sets repeat_new
    repeat_budget: int = 0
    replay_held_out: bool = False  # train on the held-out sample rows too (a base built from them; `loop.training_rows`)
    references: int = 0  # curated answers shown with each training question, as the chat shows them (references.py)
    # The preference stage (assistant/train/preference.py); zeros are automatic there.
    preference: str = "off"  # auto, dpo, kto or off
    preference_min_pairs: int = 8
    preference_beta: float = 0.1
    preference_learning_rate: float = 0.0  # 0: a tenth of learning_rate
    preference_epochs: float = 0.0  # 0: enough for PREFERENCE_MIN_STEPS steps, within 1 to 30 passes
    kto_desirable_weight: float = 0.0  # 0: balanced against the undesirable rows
    kto_undesirable_weight: float = 0.0

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
            # Epochs set by hand mean every row that many times.
            new_passes=0.0 if settings.epochs else auto.new_passes,
            repeat_budget=auto.repeat_budget,
            replay_held_out=auto.built_from_samples,
            references=count_for(settings.references, is_demo),
            preference=settings.preference,
            preference_min_pairs=settings.preference_min_pairs,
            preference_beta=settings.preference_beta,
            preference_learning_rate=settings.preference_learning_rate,
            preference_epochs=settings.preference_epochs,
            kto_desirable_weight=settings.kto_desirable_weight,
            kto_undesirable_weight=settings.kto_undesirable_weight,
        )

    @property
    def small_data_schedule(self) -> bool:
        """The team's rows are seen more often than the replay rows (the demo model's automatic schedule):
        replay is kept at least half, and the gate may promote a version that learned its new rows."""
        return self.new_passes > self.epochs

    def sized(self, new_rows: int) -> TrainConfig:
        """This config for a dataset with `new_rows` of the team's rows: each repeated so that the run
        passes over them about `new_passes` times, within `repeat_budget` rows."""
        if new_rows <= 0 or not self.small_data_schedule:
            return replace(self, repeat_new=1)
        repeat = max(1, round(self.new_passes / self.epochs))
        if self.repeat_budget:
            repeat = max(1, min(repeat, self.repeat_budget // new_rows))
        return replace(self, repeat_new=repeat)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}  # a run recorded by an older version lacks newer fields
        return cls(**{**{k: v for k, v in values.items() if k in known}, "target_modules": tuple(values["target_modules"])})

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target_modules": list(self.target_modules)}

    def total_steps(self, train_examples: int) -> int:
        per_epoch = math.ceil(train_examples / (self.batch_size * self.gradient_accumulation_steps))
        steps = max(1, math.ceil(per_epoch * self.epochs))
        return min(steps, self.max_steps) if self.max_steps else steps

    def interval(self, total_steps: int) -> int:
        """Steps between evaluations and checkpoints."""
        return self.eval_steps or max(1, math.ceil(total_steps / self.evaluations))
