"""QLoRA training throughput (issue 5): the plain recipe against what `assistant retrain` runs.

    python scripts/bench/train_throughput.py [--shape tiny|qwen2.5-0.5b|qwen2.5-1.5b|qwen2.5-7b]
        [--steps 20] [--warmup 3] [--scale 1.0] [--recipes plain,assistant] [--json train.json]

On a randomly initialised model of a real shape (scripts/bench/shapes.py, the demo tokenizer) and
the synthetic support-chat dataset (scripts/bench/synthetic.py: prompts 50-1500 tokens, answers
20-400, log-uniform, seed 0; --scale shrinks them for CPU runs), one fresh subprocess per recipe
(so peak memory is its own) trains --warmup + --steps optimiser steps on the same rows in the same
order:

(a) plain: the recipe as tutorials write it: TRL SFTTrainer, base in 4-bit NF4 (double quant, bf16
    compute on CUDA), `prepare_model_for_kbit_training`, LoRA r=16 (alpha 32, dropout 0.05) on all
    linear layers, per-device batch 4, padding to the longest in the batch, gradient checkpointing
    on, no packing; learning rate, schedule and seed as retrain's defaults, and assistant-only loss,
    so that the two losses measure the same thing.
(b) assistant: `assistant.train.loop.train_adapter` itself, with `TrainConfig.from_settings(Settings())`
    (the defaults of `assistant retrain` on a real model; data_dir is irrelevant to it) and max_steps set; no eval split is given
    (no evaluations), its checkpoint saves fall outside the timed step intervals. Today this is
    nearly the same recipe as (a): no lever has been tried yet.

Measured per optimiser step, after the --warmup steps: the time from the trainer's step begin to
step end (CUDA synchronised at both), the non-padding tokens and the assistant (loss-bearing) tokens
of the batch. Reported: trained (non-padding) tokens/s = their sum / the sum of step times, and
assistant tokens/s the same way; peak memory (torch.cuda.max_memory_allocated on CUDA, peak RSS of
the subprocess on CPU); MFU = 4 * N * tokens/s / the device's matmul rate measured in this run
(bf16 8192^3 on CUDA, fp32 1024^3 on CPU), N = the shape's matmul parameters (all linear layers and
the output head); the loss of the last step and the mean loss over the measured steps for each
recipe (the two must agree within noise). Prints a table; writes $OUT/<--json> when OUT is set.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

RESULT = "RESULT "


def timing_parts():  # noqa: ANN201
    """A TrainerCallback timing each step and recording losses, and a way to make any SFTTrainer
    subclass count the tokens of every batch it trains on."""
    from transformers import TrainerCallback

    record: dict[str, list] = {"times": [], "tokens": [], "assistant_tokens": [], "padded_tokens": [], "losses": []}

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            common.sync()
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            common.sync()
            record["times"].append(time.perf_counter() - self.started)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "loss" in logs:
                record["losses"].append(float(logs["loss"]))

    def counting(base):  # noqa: ANN001, ANN202
        class Counting(base):
            def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
                super().__init__(*args, **kwargs)
                self.add_callback(StepTimer())

            def training_step(self, model, inputs, num_items_in_batch=None):  # noqa: ANN001, ANN201
                ids = inputs["input_ids"]
                mask = inputs.get("attention_mask")
                record["tokens"].append(int(mask.sum()) if mask is not None else ids.numel())
                record["padded_tokens"].append(ids.numel())
                labels = inputs.get("labels")
                record["assistant_tokens"].append(int((labels != -100).sum()) if labels is not None else ids.numel())
                return super().training_step(model, inputs, num_items_in_batch)

        return Counting

    return record, counting


def retrain_config(steps: int):  # noqa: ANN201
    from dataclasses import replace

    from assistant.settings import Settings
    from assistant.train.config import TrainConfig

    return replace(TrainConfig.from_settings(Settings(data_dir=Path(tempfile.gettempdir())), is_demo=False), max_steps=steps)


def run_plain(model_dir: Path, data_dir: Path, steps: int, record_counting) -> None:  # noqa: ANN001
    from datasets import Dataset
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from assistant.quantization import load_base_4bit
    from assistant.train.loop import load_training_tokenizer, read_rows

    cuda = common.on_cuda()
    config = retrain_config(steps)
    set_seed(config.seed)
    tokenizer = load_training_tokenizer(model_dir)  # the demo template, with its {% generation %} marks
    model = load_base_4bit(model_dir, on_cuda=cuda)  # the base as the product trains it
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    args = SFTConfig(
        output_dir=str(data_dir / "plain-out"),
        assistant_only_loss=True,
        max_length=config.max_length,
        packing=False,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        gradient_checkpointing=True,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=max(0, round(steps * config.warmup_ratio)),
        max_steps=steps,
        seed=config.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not cuda,
        bf16=cuda,
    )
    trainer = record_counting(SFTTrainer)(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(read_rows(data_dir / "train.jsonl")),
        processing_class=tokenizer,
        peft_config=lora,
    )
    trainer.train()


def run_assistant(model_dir: Path, data_dir: Path, steps: int, record_counting) -> None:  # noqa: ANN001
    import trl

    from assistant.train.loop import train_adapter

    trl.SFTTrainer = record_counting(trl.SFTTrainer)  # train_adapter imports it at call time
    train_adapter(model_dir, data_dir, data_dir / "assistant-run", retrain_config(steps), on_cuda=common.on_cuda())


def worker(recipe: str, model_dir: Path, data_dir: Path, steps: int, warmup: int) -> dict[str, Any]:
    import torch

    common.quiet()
    if common.on_cuda():
        torch.cuda.reset_peak_memory_stats()
    record, counting = timing_parts()
    started = time.perf_counter()
    (run_plain if recipe == "plain" else run_assistant)(model_dir, data_dir, warmup + steps, counting)
    wall = time.perf_counter() - started
    times = record["times"][warmup:]
    measured = slice(warmup, warmup + len(times))
    tokens = sum(record["tokens"][measured])
    losses = record["losses"]
    return {
        "recipe": recipe,
        "steps_measured": len(times),
        "step_time_median_s": statistics.median(times),
        "tokens": tokens,
        "padded_tokens": sum(record["padded_tokens"][measured]),
        "assistant_tokens": sum(record["assistant_tokens"][measured]),
        "tokens_per_s": tokens / sum(times),
        "assistant_tokens_per_s": sum(record["assistant_tokens"][measured]) / sum(times),
        "peak_memory_bytes": common.peak_memory_bytes(),
        "final_loss": losses[-1] if losses else None,
        "mean_loss_measured": statistics.mean(losses[warmup:]) if losses[warmup:] else None,
        "losses": losses,
        "wall_s_incl_load": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="tiny")
    parser.add_argument("--steps", type=int, default=20, help="measured optimiser steps")
    parser.add_argument("--warmup", type=int, default=3, help="steps before measuring")
    parser.add_argument("--scale", type=float, default=1.0, help="length scale of the synthetic data")
    parser.add_argument("--recipes", default="plain,assistant")
    parser.add_argument("--json", default="train.json", help="file name under $OUT")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = worker(args.worker, args.model_dir, args.data_dir, args.steps, args.warmup)
        print(RESULT + json.dumps(result), flush=True)
        return 0

    from transformers import AutoTokenizer

    from shapes import SHAPES, matmul_parameters
    from synthetic import build_rows

    common.quiet()
    model_dir = common.model_dir(args.shape)
    rate = common.matmul_rate()
    n_params = matmul_parameters(SHAPES[args.shape])
    batch = retrain_config(1).batch_size
    rows = build_rows(AutoTokenizer.from_pretrained(model_dir), batch * (args.steps + args.warmup), seed=0, scale=args.scale)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as scratch:
        data_dir = Path(scratch)
        with open(data_dir / "train.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
        for recipe in args.recipes.split(","):
            command = [sys.executable, __file__, "--worker", recipe, "--model-dir", str(model_dir), "--data-dir",
                       str(data_dir), "--steps", str(args.steps), "--warmup", str(args.warmup)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
            if done.returncode != 0 or not lines:
                print(done.stdout[-3000:], done.stderr[-6000:], sep="\n", file=sys.stderr)
                raise SystemExit(f"recipe {recipe} failed (exit {done.returncode})")
            result = json.loads(lines[-1][len(RESULT):])
            result["mfu"] = 4 * n_params * result["tokens_per_s"] / rate["flops"]
            results.append(result)

    print(f"device: {common.device_name()}; shape {args.shape} ({n_params:,} matmul parameters); "
          f"{len(rows)} rows at scale {args.scale}; {args.warmup} warm-up + {args.steps} measured steps")
    print(f"matmul rate ({rate['dtype']} {rate['n']}^3): {rate['flops'] / 1e12:.3f} TFLOP/s")
    header = f"{'recipe':<10} {'tokens/s':>10} {'asst tok/s':>10} {'pad %':>6} {'step s':>8} {'peak MiB':>9} {'MFU %':>7} {'loss last':>10} {'loss mean':>10}"
    print(header)
    for r in results:
        pad = 100 * (1 - r["tokens"] / r["padded_tokens"])
        print(f"{r['recipe']:<10} {r['tokens_per_s']:>10.1f} {r['assistant_tokens_per_s']:>10.1f} {pad:>6.1f} "
              f"{r['step_time_median_s']:>8.3f} {r['peak_memory_bytes'] / 2**20:>9.0f} {100 * r['mfu']:>7.2f} "
              f"{r['final_loss']:>10.4f} {r['mean_loss_measured']:>10.4f}")
    by_name = {r["recipe"]: r for r in results}
    ratios = {}
    if {"plain", "assistant"} <= by_name.keys():
        a, b = by_name["plain"], by_name["assistant"]
        ratios = {
            "tokens_per_s_assistant_over_plain": b["tokens_per_s"] / a["tokens_per_s"],
            "peak_memory_assistant_over_plain": b["peak_memory_bytes"] / a["peak_memory_bytes"],
            "final_loss_difference": b["final_loss"] - a["final_loss"],
        }
        print(f"ratio assistant / plain: tokens/s {ratios['tokens_per_s_assistant_over_plain']:.2f}x (target >= 2.0x), "
              f"peak memory {ratios['peak_memory_assistant_over_plain']:.2f}x (target <= 1.0x); "
              f"last-step loss difference {ratios['final_loss_difference']:+.4f}")
    common.write_json(args.json, {
        "bench": "train_throughput", "device": common.device_name(), "shape": args.shape,
        "matmul_parameters": n_params, "matmul_rate": rate, "rows": len(rows), "scale": args.scale,
        "warmup_steps": args.warmup, "steps": args.steps, "results": results, "ratios": ratios,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
