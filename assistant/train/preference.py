"""The preference stage of a retrain: the adapter SFT just trained learns from thumbs and corrections.

Which method (`plan`): DPO learns from pairs, a curated answer against the reply it corrects and
regenerated replies rated up against down; KTO from unpaired labels, every thumb. `auto` takes DPO
from `preference_min_pairs` pairs, else KTO when there are thumbs of both kinds, else no stage (and
says why). KTO needs both labels: a team that only clicks thumbs down gets its approved answers (the
SFT rows, replayed samples included) as the desirable side, at most as many as the undesirable rows.

How (`train_preference`): the base loaded as SFT trains it (4-bit NF4 on CUDA, QLoRA), the starting
adapter on it twice, trainable and frozen as the reference policy (TRL copies it as the "ref"
adapter: no second base model); with no starting adapter (a first version from thumbs alone), a fresh
LoRA whose reference is the base itself. TRL's DPOTrainer or KTOTrainer, with the SFT stage's
guarantees: checkpoints marked COMPLETE and resumed (`preference/checkpoints`), non-finite numbers
abort, per-step metrics recorded as the "preference" stage. KTO's label weights are balanced by
default (TRL's advice for unbalanced data: thumbs down usually outnumber thumbs up).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assistant.errors import TrainingError
from assistant.train.config import TrainConfig
from assistant.train.loop import (
    ADAPTER,
    CHECKPOINTS,
    Outcome,
    Reporter,
    Watch,
    checkpoint_step,
    cpu_has_bf16,
    load_for_training,
    load_training_tokenizer,
    read_rows,
    release_memory,
    resume_point,
    run_trainer,
    save_adapter,
    score_answers_only_on_cpu,
)

STAGE_DIR = "preference"
MIN_STEPS = 16  # automatic epochs give the stage at least this many steps
MAX_EPOCHS = 30


@dataclass(frozen=True)
class Plan:
    """What the preference stage of a run trains on, and why."""

    kind: str | None  # "dpo", "kto", or None: no stage
    why: str
    pairs: int = 0
    desirable: int = 0  # KTO rows labelled good, stand-ins included
    undesirable: int = 0
    stand_ins: int = 0  # approved answers standing in as desirable rows

    @property
    def rows(self) -> int:
        return self.pairs if self.kind == "dpo" else self.desirable + self.undesirable if self.kind == "kto" else 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(mode: str, dataset_dir: Path, *, min_pairs: int) -> Plan:
    """The stage `mode` (auto, dpo, kto, off) gives on this snapshot's training side."""
    pairs = len(read_rows(dataset_dir / "dpo.jsonl"))
    kto = read_rows(dataset_dir / "kto.jsonl")
    good = sum(1 for row in kto if row.get("label"))
    bad = len(kto) - good
    stand_ins = min(bad, len(read_rows(dataset_dir / "train.jsonl"))) if bad and not good else 0
    counts = {"pairs": pairs, "desirable": good + stand_ins, "undesirable": bad, "stand_ins": stand_ins}
    if mode == "off":
        return Plan(None, "preference is off", **counts)
    if mode == "dpo" or (mode == "auto" and pairs >= min_pairs):
        if not pairs:
            return Plan(None, "no DPO pairs (corrected answers or regenerated replies rated up and down)", **counts)
        return Plan("dpo", f"{pairs} pairs" + ("" if mode == "dpo" else f" (at least {min_pairs})"), **counts)
    if counts["desirable"] and bad:
        why = f"{counts['desirable']} desirable and {bad} undesirable rows"
        if stand_ins:
            why += f" ({stand_ins} approved answers standing in for thumbs up)"
        if mode == "auto" and pairs:
            why += f"; {pairs} pairs, fewer than preference_min_pairs {min_pairs}"
        return Plan("kto", why, **counts)
    missing = "no rated replies" if not kto else "no thumbs down" if not bad else "no thumbs up or approved answers"
    if mode == "auto":
        missing += f", and {pairs} pairs (fewer than {min_pairs})"
    return Plan(None, f"nothing to learn preferences from: {missing}", **counts)


def stage_rows(chosen: Plan, dataset_dir: Path, seed: int) -> list[dict[str, Any]]:
    """The training rows of the stage: the DPO pairs, or the KTO rows with their stand-ins."""
    if chosen.kind == "dpo":
        return read_rows(dataset_dir / "dpo.jsonl")
    if chosen.kind != "kto":
        return []
    rows = read_rows(dataset_dir / "kto.jsonl")
    order = random.Random(seed)
    if chosen.stand_ins:
        approved = read_rows(dataset_dir / "train.jsonl")
        picked = order.sample(approved, chosen.stand_ins)
        rows += [{"prompt": _plain(row["messages"][:-1]), "completion": _plain(row["messages"][-1:]), "label": True}
                 for row in picked]
    order.shuffle(rows)  # TRL's KTO reads them in order: both labels in every stretch of steps
    return rows


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages without SFT's training weights (TRL's preference trainers take role and content)."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def kto_weights(config: TrainConfig, chosen: Plan) -> tuple[float, float]:
    """(desirable, undesirable) weights: as set, else the smaller label weighted up so that both weigh alike."""
    good, bad = config.kto_desirable_weight, config.kto_undesirable_weight
    d, u = max(1, chosen.desirable), max(1, chosen.undesirable)
    if good and bad:
        return good, bad
    if good:
        return good, good * d / u
    if bad:
        return bad * u / d, bad
    return (u / d, 1.0) if u > d else (1.0, d / u)


def learning_rate(config: TrainConfig) -> float:
    return config.preference_learning_rate or config.learning_rate / 10


def batch_size(config: TrainConfig, kind: str | None) -> int:
    """Rows per device per step: KTO's KL term needs two rows in a batch."""
    return max(2, config.batch_size) if kind == "kto" else config.batch_size


def _steps_per_epoch(config: TrainConfig, rows: int, kind: str | None) -> int:
    return max(1, math.ceil(rows / (batch_size(config, kind) * config.gradient_accumulation_steps)))


def epochs(config: TrainConfig, rows: int, kind: str | None = None) -> float:
    if config.preference_epochs:
        return config.preference_epochs
    return float(min(MAX_EPOCHS, max(1, math.ceil(MIN_STEPS / _steps_per_epoch(config, rows, kind)))))


def total_steps(config: TrainConfig, rows: int, kind: str | None = None) -> int:
    steps = max(1, math.ceil(_steps_per_epoch(config, rows, kind) * epochs(config, rows, kind)))
    return min(steps, config.max_steps) if config.max_steps else steps


def train_preference(
    base_path: Path,
    dataset_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    chosen: Plan,
    *,
    on_cuda: bool,
    start_from: Path | None,
    resume: bool = False,
    reporter: Reporter | None = None,
) -> Outcome:
    """Train the stage; its adapter goes to run_dir/preference/adapter (safetensors)."""
    from datasets import Dataset
    from transformers import set_seed

    if chosen.kind not in ("dpo", "kto"):
        raise TrainingError(f"no preference stage to train: {chosen.why}")
    rows = stage_rows(chosen, dataset_dir, config.seed)
    if not rows:
        raise TrainingError(f"the dataset {dataset_dir.name} has no {chosen.kind.upper()} rows")
    stage_dir = run_dir / STAGE_DIR
    checkpoints = stage_dir / CHECKPOINTS
    resume_from = resume_point(checkpoints) if resume else None
    set_seed(config.seed)
    tokenizer = load_training_tokenizer(base_path)
    # A starting adapter trains and TRL copies it as the frozen reference ("ref"); without one, a fresh
    # adapter's reference is the base (adapter disabled).
    model, peft_config, four_bit = load_for_training(base_path, config, on_cuda=on_cuda, adapter=start_from)

    total = total_steps(config, len(rows), chosen.kind)
    interval = config.interval(total)
    history: list[Any] = []
    watch = Watch(reporter or Reporter(), checkpoints, total, history, stage="preference")
    common: dict[str, Any] = dict(
        output_dir=str(checkpoints),
        max_length=config.max_length,
        num_train_epochs=epochs(config, len(rows), chosen.kind),
        max_steps=total,
        per_device_train_batch_size=batch_size(config, chosen.kind),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=learning_rate(config),
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=max(0, round(total * config.warmup_ratio)),
        beta=config.preference_beta,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=1,
        logging_nan_inf_filter=False,
        eval_strategy="no",
        save_strategy="steps",
        save_steps=interval,
        save_total_limit=2,
        gradient_checkpointing=four_bit,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not on_cuda,
        bf16=on_cuda or (not four_bit and cpu_has_bf16()),
        fp16=False,
        dataloader_num_workers=0,
    )
    score_answers_only_on_cpu()
    try:
        if chosen.kind == "dpo":
            from trl import DPOConfig, DPOTrainer

            trainer = DPOTrainer(
                model=model, args=DPOConfig(**common), train_dataset=Dataset.from_list(rows),
                processing_class=tokenizer, peft_config=peft_config, callbacks=[watch],
            )
        else:
            from trl import KTOConfig, KTOTrainer

            good, bad = kto_weights(config, chosen)
            trainer = KTOTrainer(
                model=model, args=KTOConfig(**common, desirable_weight=good, undesirable_weight=bad),
                train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=peft_config,
                callbacks=[watch],
            )
    except ValueError as exc:
        raise TrainingError(f"cannot set up the {chosen.kind.upper()} stage: {str(exc).splitlines()[0]}") from None
    result = run_trainer(trainer, resume_from)
    steps = trainer.state.global_step
    out = save_adapter(trainer.model, stage_dir / ADAPTER)
    del trainer, model
    release_memory(on_cuda)
    return Outcome(
        adapter_dir=out,
        steps=steps,
        total_steps=total,
        train_loss=result.training_loss,
        best_eval_loss=None,
        stopped_early=False,
        resumed_from=checkpoint_step(resume_from),
        history=history,
    )
