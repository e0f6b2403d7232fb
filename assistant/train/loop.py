"""One training run: a fresh (or warm-started) LoRA adapter on the base model loaded in 4-bit NF4
with double quantisation, prepared with peft's `prepare_model_for_kbit_training` (on CPU, when the
config's `load_in_4bit` is off: in full precision, as a CPU chat serves it), trained by TRL's
SFTTrainer with assistant-only loss, evaluated and checkpointed every interval. With early stopping
on, training stops when the eval loss stops improving and the best checkpoint's adapter comes out;
without it, the adapter of the last step does.

The same code runs on CUDA (bf16 compute) and on CPU (bitsandbytes' CPU 4-bit, fp32 compute), which
is how the tests train real adapters on the tiny model.

Interruptions: every checkpoint gets a `COMPLETE` marker once it is fully written; `resume` continues
from the newest marked one and deletes any checkpoint a kill left half-written. A non-finite loss or
gradient norm aborts at once (the trainer's NaN filtering of logs is off, so nothing hides it).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.chat_templates import training_template
from assistant.errors import TrainingError
from assistant.jsonl import read_jsonl
from assistant.quantization import load_base_4bit
from assistant.store.records import MetricPoint
from assistant.train.config import TrainConfig

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    loss: float | None
    eval_loss: float | None
    stage: str = "sft"  # or "preference"


@dataclass
class Reporter:
    """Where a run's progress goes: per-step metrics (the store) and a progress display."""

    metrics: Callable[[list[MetricPoint]], None] = lambda points: None
    progress: Callable[[Progress], None] = lambda progress: None


@dataclass
class Outcome:
    adapter_dir: Path
    steps: int
    total_steps: int
    train_loss: float | None
    best_eval_loss: float | None
    stopped_early: bool
    resumed_from: int | None
    history: list[MetricPoint] = field(default_factory=list)
    lowest_eval_loss: float | None = None  # of every evaluation in the run (the adapter's may be a later one)

    def metrics(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "total_steps": self.total_steps,
            "train_loss": self.train_loss,
            "eval_loss": self.best_eval_loss,  # the published adapter's
            "lowest_eval_loss": self.lowest_eval_loss,
            "stopped_early": self.stopped_early,
            "resumed_from_step": self.resumed_from,
        }


def lowest_eval(log_history: list[dict[str, Any]], seen: float | None) -> float | None:
    """The run's lowest eval loss: the trainer's log (which a resumed run restores) and this process's."""
    losses = [entry["eval_loss"] for entry in log_history if isinstance(entry.get("eval_loss"), (int, float))]
    losses += [seen] if seen is not None else []
    return min(losses) if losses else None


def conversation_ids(dataset_dir: Path, split: str = "train") -> list[int]:
    """The conversation of each row of a split (the manifest's index); replayed sample conversations
    have negative ids. Empty when the manifest cannot be read."""
    from assistant.data.snapshot import read_manifest

    try:
        return [row["conversation_id"] for row in read_manifest(dataset_dir)["rows"][split]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def team_row_flags(dataset_dir: Path) -> list[bool]:
    """For each row of the train split: whether it is the team's own (from the store), not a replayed sample."""
    return [cid > 0 for cid in conversation_ids(dataset_dir)]


def training_rows(
    dataset_dir: Path, repeat_new: int = 1, *, replay_held_out: bool = False, balance: bool = False
) -> list[dict[str, Any]]:
    """The train split, with each of the team's rows `repeat_new` times; the replay rows are repeated too
    where the team's copies would outnumber them, so that they stay at least half of what a run sees.
    `replay_held_out` (a base model built from the samples, which has seen every one): the samples
    held out for evaluation are replayed too, so that the candidate and the base are compared on rows
    both have trained on. `balance` (the automatic small-data schedule): the replay rows stay at least
    half even where the team's rows are too many to repeat."""
    rows = read_rows(dataset_dir / "train.jsonl")
    ids = conversation_ids(dataset_dir)
    if len(ids) != len(rows):
        log.warning("the manifest of %s does not index its train rows; training on them as they are", dataset_dir.name)
        return rows
    if replay_held_out:
        eval_rows, eval_ids = read_rows(dataset_dir / "eval.jsonl"), conversation_ids(dataset_dir, "eval")
        if len(eval_rows) == len(eval_ids):
            held = [(row, cid) for row, cid in zip(eval_rows, eval_ids, strict=True) if cid < 0]
            rows, ids = rows + [row for row, _ in held], ids + [cid for _, cid in held]
    if repeat_new <= 1 and not balance:
        return rows
    team = sum(cid > 0 for cid in ids)
    replay = len(rows) - team
    repeat_replay = max(1, math.ceil(team * repeat_new / replay)) if replay else 1
    return [row for row, cid in zip(rows, ids, strict=True) for _ in range(repeat_new if cid > 0 else repeat_replay)]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A snapshot file's rows; none when the snapshot has no such file."""
    return [row for row, _ in read_jsonl(path)] if path.is_file() else []


def load_training_tokenizer(base_path: Path):  # noqa: ANN201
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    template = training_template(tokenizer)
    if template is None:
        raise TrainingError(
            "the model's chat template does not mark assistant tokens ({% generation %}) and is not ChatML; "
            "assistant-only training is impossible with it"
        )
    tokenizer.chat_template = template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def complete_checkpoints(checkpoints: Path) -> list[Path]:
    """Fully written checkpoints, oldest first."""
    if not checkpoints.is_dir():
        return []
    found = [p for p in checkpoints.glob("checkpoint-*") if (p / COMPLETE).is_file()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[1]))


def discard_incomplete(checkpoints: Path) -> None:
    if checkpoints.is_dir():
        for path in checkpoints.glob("checkpoint-*"):
            if not (path / COMPLETE).is_file():
                shutil.rmtree(path, ignore_errors=True)


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX): bf16 autocast then halves a
    full-precision base's training step (docs/BENCHMARKS.md); elsewhere it is emulated, and slower."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: stay in fp32
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _length_grouping() -> dict[str, Any]:
    """Batches of similar lengths (little padding computed), under the name this transformers knows."""
    from trl import SFTConfig

    names = {f.name for f in dataclasses.fields(SFTConfig)}
    if "train_sampling_strategy" in names:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True} if "group_by_length" in names else {}


def score_answers_only_on_cpu() -> None:
    """Make TRL's fused LM head score only the answer tokens on a CPU too, as it does on CUDA.

    TRL's trainers (1.16: SFT, KTO, DPO) compute each step's loss through `add_fused_lm_head`, which
    projects through the LM head only the positions with a label where Triton runs (CUDA, XPU): on other
    devices every position is scored, prompt and padding included, so that the tile shapes stay fixed
    for compilers (Neuron). A CPU compiles nothing, and there that is most of a step: for SmolLM2
    (49,152 tokens) a batch of 4 x 411 tokens with 292 answer tokens spends 3.3 s in the head, against
    0.4 s for its answer tokens alone (docs/BENCHMARKS.md, "Retrain time"). The losses are the same
    (tests/train/test_cpu_scoring.py). Applied only where TRL's code is the one this was measured on
    (its one use of `_use_triton` decides what is scored); elsewhere nothing changes."""
    import inspect

    from trl.trainer import utils as trl_utils

    decide = getattr(trl_utils, "_use_triton", None)
    if decide is None or hasattr(decide, "__wrapped__"):  # absent, or already this
        return
    try:
        source = inspect.getsource(trl_utils)
    except (OSError, TypeError):
        return
    if source.count("_use_triton(") != 1 or "compact = _use_triton(hidden_states.device)" not in source:
        return

    def compact(device: Any) -> bool:
        return device.type == "cpu" or decide(device)

    compact.__wrapped__ = decide  # type: ignore[attr-defined]
    trl_utils._use_triton = compact


def save_adapter(model: Any, out: Path) -> Path:
    """The trained adapter (only the one named "default": a preference stage also holds its frozen
    reference) written beside `out` and renamed into place."""
    partial = out.with_name(f"{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    kwargs = {"selected_adapters": ["default"]} if "default" in getattr(model, "peft_config", {}) else {}
    model.save_pretrained(partial, safe_serialization=True, **kwargs)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return out


def Watch(report: Reporter, checkpoints: Path, total: int, history: list[MetricPoint], stage: str = "sft"):  # noqa: ANN201, N802
    """A trainer callback that records every logged step (as `stage`), refuses non-finite numbers,
    reports progress and marks each checkpoint COMPLETE once written."""
    from transformers import TrainerCallback

    class _Watch(TrainerCallback):
        def __init__(self) -> None:
            self.best_eval: float | None = None
            self.last_eval: float | None = None
            self.last_train: float | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            logs = logs or {}
            step = state.global_step
            points = []
            if "loss" in logs:
                points.append(MetricPoint(
                    "train", step, logs.get("epoch"), logs["loss"], logs.get("grad_norm"), logs.get("learning_rate"), stage
                ))
                self.last_train = logs["loss"]
            if "eval_loss" in logs:
                points.append(MetricPoint("eval", step, logs.get("epoch"), logs["eval_loss"], None, None, stage))
                self.last_eval = logs["eval_loss"]
                if self.best_eval is None or logs["eval_loss"] < self.best_eval:
                    self.best_eval = logs["eval_loss"]
            for name in ("loss", "grad_norm", "eval_loss"):
                value = logs.get(name)
                if isinstance(value, (int, float)) and not math.isfinite(value):
                    report.metrics(points)
                    where = "" if stage == "sft" else f" of the {stage} stage"
                    raise TrainingError(
                        f"non-finite {name.replace('_', ' ')} ({value}) at step {step}{where}; the run is aborted"
                    )
            if points:
                history.extend(points)
                report.metrics(points)
                report.progress(Progress(step, total, self.last_train, self.last_eval, stage))  # the latest of each

        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
            saved = checkpoints / f"checkpoint-{state.global_step}"
            if saved.is_dir():
                (saved / COMPLETE).write_text(str(state.global_step), encoding="utf-8")

    return _Watch()


def release_memory(on_cuda: bool) -> None:
    """Free a finished stage's model before the next stage or the gate loads another: the trainer holds
    reference cycles, so only a collection frees it (and only then can CUDA's cache be emptied)."""
    gc.collect()
    if on_cuda:
        import torch

        torch.cuda.empty_cache()


def run_trainer(trainer: Any, resume_from: Path | None) -> Any:
    """Train (from `resume_from`, a checkpoint, when given) without the trainer printing its logs: the
    stage's `Watch` reports them."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)


def checkpoint_step(checkpoint: Path | None) -> int | None:
    """The step a checkpoint directory (`checkpoint-N`) was saved at; None for none."""
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else None


def resume_point(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint to resume from (half-written ones are deleted), or None."""
    discard_incomplete(checkpoints)
    done = complete_checkpoints(checkpoints)
    return done[-1] if done else None


def load_for_training(base_path: Path, config: TrainConfig, *, on_cuda: bool, adapter: Path | None):  # noqa: ANN201
    """(model, peft_config, four_bit): the base as trained (4-bit on CUDA, or where the config says, prepared
    for k-bit training) with `adapter` on it, trainable; without one, the LoRA config of a fresh adapter."""
    from peft import LoraConfig, PeftModel, prepare_model_for_kbit_training

    four_bit = on_cuda or config.load_in_4bit
    model = load_base_4bit(base_path, on_cuda=on_cuda, four_bit=four_bit)
    if four_bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    if adapter is not None:
        return PeftModel.from_pretrained(model, adapter, is_trainable=True), None, four_bit
    targets = config.target_modules
    peft_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear" if targets == ("all-linear",) else list(targets),
        task_type="CAUSAL_LM",
    )
    return model, peft_config, four_bit


def train_adapter(
    base_path: Path,
    dataset_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    *,
    on_cuda: bool,
    warm_start_from: Path | None = None,
    resume: bool = False,
    reporter: Reporter | None = None,
) -> Outcome:
    """Train, and save the best adapter to run_dir/adapter (safetensors)."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    report = reporter or Reporter()
    train_rows = training_rows(
        dataset_dir, config.repeat_new, replay_held_out=config.replay_held_out, balance=config.small_data_schedule
    )
    if config.references:
        from assistant.references import augment_rows, snapshot_index

        train_rows = augment_rows(
            train_rows, snapshot_index(dataset_dir, ("train",)), config.references, seed=config.seed, max_chars=2 * config.max_length
        )
    eval_rows = read_rows(dataset_dir / "eval.jsonl")
    if not train_rows:
        raise TrainingError(f"the dataset {dataset_dir.name} has no training examples")
    checkpoints = run_dir / CHECKPOINTS
    resume_from = resume_point(checkpoints) if resume else None
    set_seed(config.seed)
    tokenizer = load_training_tokenizer(base_path)
    model, peft_config, four_bit = load_for_training(base_path, config, on_cuda=on_cuda, adapter=warm_start_from)
    cpu_bf16 = not four_bit and cpu_has_bf16()

    total = config.total_steps(len(train_rows))
    interval = config.interval(total)
    has_eval = bool(eval_rows)
    # Early stopping needs more evaluations than its patience to ever act. A run with fewer (SmolLM2's
    # two on a CPU, each about 10 s of a first start) evaluates once, at the end, and still checkpoints
    # every interval (to resume from); with no early stopping configured (the demo model) every
    # interval's evaluation is kept for the loss curve.
    patience = config.early_stopping_patience
    stop_early = has_eval and 0 < patience < total // interval  # evaluations happen at multiples of interval
    eval_every = total if patience > 0 and not stop_early else interval
    history: list[MetricPoint] = []
    watch = Watch(report, checkpoints, total, history)
    callbacks: list[Any] = [watch]
    if stop_early:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    sft = SFTConfig(
        output_dir=str(checkpoints),
        assistant_only_loss=True,
        max_length=config.max_length,
        num_train_epochs=config.epochs,
        max_steps=total,
        per_device_train_batch_size=config.batch_size,
        **_length_grouping(),
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=max(0, round(total * config.warmup_ratio)),
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=1,
        logging_nan_inf_filter=False,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_every if has_eval else None,
        save_strategy="steps",
        save_steps=interval,
        save_total_limit=2,
        load_best_model_at_end=stop_early,
        metric_for_best_model="eval_loss" if stop_early else None,
        greater_is_better=False if stop_early else None,
        # A 4-bit base needs the memory checkpointing saves; a full-precision base trains on a CPU, where
        # recomputing the forward pass costs a third more time and memory is not short.
        gradient_checkpointing=four_bit,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not on_cuda,
        bf16=on_cuda or cpu_bf16,
        fp16=False,
        dataloader_num_workers=0,
    )
    score_answers_only_on_cpu()
    try:
        trainer = SFTTrainer(
            model=model,
            args=sft,
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(eval_rows) if has_eval else None,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    except ValueError as exc:
        raise TrainingError(f"cannot set up training: {str(exc).splitlines()[0]}") from None
    result = run_trainer(trainer, resume_from)
    steps = trainer.state.global_step

    out = save_adapter(trainer.model, run_dir / ADAPTER)
    best_eval = trainer.state.best_metric if stop_early else watch.last_eval
    trainer_history = list(trainer.state.log_history)  # restored from the checkpoint on a resume
    del trainer, model
    release_memory(on_cuda)
    return Outcome(
        adapter_dir=out,
        steps=steps,
        total_steps=total,
        train_loss=result.training_loss,
        best_eval_loss=best_eval if best_eval is not None else watch.best_eval,
        stopped_early=steps < total,
        resumed_from=checkpoint_step(resume_from),
        history=history,
        lowest_eval_loss=lowest_eval(trainer_history, watch.best_eval),
    )
