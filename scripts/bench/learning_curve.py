"""How the rephrasings' score grows with epochs: one LoRA run through the product's training path, a
checkpoint kept after every epoch, each scored on the held-out rephrasings.

The data dir is prepared as `train_defaults.py` prepares it (the sample conversations imported, rated
up and approved, one dataset snapshot); the run is `train.loop.train_adapter` with the `TrainConfig`
`assistant retrain` resolves and the learning rate, epochs, LoRA rank and dropout given here, on a
full-precision base. The trainer's config is subclassed here only to keep every epoch's checkpoint
(the product keeps two). Each checkpoint answers the rephrasings greedily, in batches of 20
left-padded prompts after the default system prompt (faster than the chat's one-by-one streaming;
the score is the same measure as `demo_quality.py --rephrasings`), and prints ROUGE-L F1's mean.

    PYTHONPATH=. python scripts/bench/learning_curve.py --model DIR [--lr 2e-3] [--epochs 6] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

from assistant.logs import quiet_libraries, setup_logging
from scripts.bench.demo_quality import read_rephrasings
from scripts.bench.train_defaults import prepare

BATCH = 20


def keep_every_epoch(steps_per_epoch: int) -> None:
    """TRL's SFTConfig, made to checkpoint once per epoch and keep them all."""
    import trl

    base = trl.SFTConfig

    @dataclasses.dataclass
    class EveryEpoch(base):  # type: ignore[misc, valid-type]
        def __post_init__(self) -> None:
            self.save_total_limit = None
            self.save_steps = steps_per_epoch
            super().__post_init__()

    trl.SFTConfig = EveryEpoch


def score_checkpoints(model_dir: Path, checkpoints: list[Path], system_prompt: str, max_new_tokens: int) -> None:
    import torch
    from peft import PeftModel
    from rouge_score import rouge_scorer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    items = read_rephrasings()
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": item.question}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for item in items
    ]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    width = encoded["input_ids"].shape[1]
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    for checkpoint in checkpoints:
        model = PeftModel.from_pretrained(base, checkpoint).eval()
        started = time.perf_counter()
        answers: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(prompts), BATCH):
                out = model.generate(
                    input_ids=encoded["input_ids"][start : start + BATCH],
                    attention_mask=encoded["attention_mask"][start : start + BATCH],
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
                answers += tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        scores = [scorer.score(item.answer, answer)["rougeL"].fmeasure for item, answer in zip(items, answers, strict=True)]
        print(
            f"{checkpoint.name}: rephrasings ROUGE-L F1 mean {statistics.mean(scores):.3f} "
            f"(median {statistics.median(scores):.3f}; answered in {time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        base = model.unload()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="The base model directory (safetensors).")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--max-new-tokens", type=int, default=120)
    parser.add_argument("--data-dir", type=Path, help="Where the run goes (default: a temp dir).")
    parser.add_argument("--score-only", action="store_true", help="Score the checkpoints of an earlier run in --data-dir.")
    args = parser.parse_args()

    quiet_libraries()
    setup_logging(None)
    from assistant.train.config import TrainConfig
    from assistant.train.loop import Progress, Reporter, train_adapter

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="learning-curve-"))
    settings, snapshot = prepare(data_dir, args.model)
    run_dir = data_dir / "runs" / "curve"
    if not args.score_only:
        rows = snapshot.manifest["counts"]["rows"]["train"]
        config = dataclasses.replace(
            TrainConfig.from_settings(settings, is_demo=False, model_name=args.model.name),
            learning_rate=args.lr,
            epochs=args.epochs,
            load_in_4bit=False,
            lora_r=args.lora_r,
            lora_alpha=2 * args.lora_r,
            lora_dropout=args.dropout,
            early_stopping_patience=0,
        )
        per_epoch = -(-rows // (config.batch_size * config.gradient_accumulation_steps))
        config = dataclasses.replace(config, eval_steps=per_epoch)
        keep_every_epoch(per_epoch)
        started = time.perf_counter()

        def each_epoch(progress: Progress) -> None:
            if progress.step % per_epoch == 0 and progress.eval_loss is not None:
                print(f"  step {progress.step} (epoch {progress.step // per_epoch}): train loss {progress.loss:.3f}, "
                      f"eval loss {progress.eval_loss:.3f}, {time.perf_counter() - started:.0f} s", flush=True)

        outcome = train_adapter(args.model, snapshot.path, run_dir, config, on_cuda=False, reporter=Reporter(progress=each_epoch))
        print(f"trained {outcome.steps} steps in {time.perf_counter() - started:.0f} s", flush=True)
    checkpoints = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    score_checkpoints(args.model, checkpoints, settings.system_prompt, args.max_new_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
