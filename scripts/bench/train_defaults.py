"""Which training defaults teach a base model the sample conversations: LoRA runs through the
product's own path, each scored on the held-out rephrasings.

A temporary data dir's database gets the sample conversations imported with every reply rated up
and approved (what a curator does with `assistant import` and `assistant review`); the dataset
builder makes one snapshot of them (`assistant dataset build`); then each setting trains an adapter
with `train.loop.train_adapter` and the `TrainConfig` that `assistant retrain` would resolve, with the
setting's learning rate, epochs and base precision on top. After each run the greedy answers to the
rephrasings are scored with ROUGE-L against the sample answers (scripts/bench/demo_quality.py).

    PYTHONPATH=. python scripts/bench/train_defaults.py --model DIR [--runs 3e-4:2:fp32,...] [--max-steps N] [--no-score]

A run is LR:EPOCHS:4bit|fp32. Prints, per run: steps, wall time, seconds per step, final train
loss, eval loss and the rephrasings' ROUGE-L F1 mean; first the base model's score (no adapter).
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
from scripts.bench.demo_quality import answer_rephrasings

DEFAULT_RUNS = "2e-4:2:4bit,3e-4:2:4bit,1e-3:2:4bit,3e-4:2:fp32"


def prepare(data_dir: Path, model: Path):  # noqa: ANN201 - (settings, snapshot)
    from assistant.data.builder import BuildPolicy
    from assistant.data.snapshot import build_snapshot
    from assistant.data.tokens import ChatTokenizer
    from assistant.settings import load_settings
    from assistant.store import Store

    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "config.toml").write_text(f'user = "bench"\nhub_model = ""\nmodel = "{model}"\n', encoding="utf-8")
    settings = load_settings(data_dir=data_dir, environ={}).settings
    store = Store.open(settings.db_path)
    conversations, approved = import_samples_approved(store, settings.system_prompt)
    snapshot = build_snapshot(store, data_dir, BuildPolicy.from_settings(settings), ChatTokenizer.load(model, model.name), user="bench")
    print(f"imported {conversations} sample conversations, approved {approved} replies; dataset {snapshot.id}")
    return settings, snapshot


def import_samples_approved(store, system_prompt: str, prefix: str = "") -> tuple[int, int]:  # noqa: ANN001
    """The sample conversations as a team's own, every reply rated up and approved (what a curator does
    with `assistant import` and `assistant review`): (conversations, approved replies). `prefix`: put
    before every customer message, so that the rows are not the samples' (the builder's deduplication
    would drop them beside the replayed samples) while their lengths, and the answers, stay those of
    real support chats."""
    from assistant.demo.samples import load_samples
    from assistant.store import ImportedMessage

    def text(role: str, content: str) -> str:
        return f"{prefix} {content}" if prefix and role == "user" else content

    conversations = [
        (text("user", c[0]["content"])[:60],
         [ImportedMessage(m["role"], text(m["role"], m["content"]), {"rating": 1} if m["role"] == "assistant" else None)
          for m in c])
        for c in load_samples()
    ]
    store.import_conversations(conversations, user="bench", default_system_prompt=system_prompt)
    return len(conversations), len(store.approve_all_up("bench"))


def score(model: Path, adapter: Path | None, system_prompt: str, max_new_tokens: int) -> tuple[float, float]:
    """The rephrasings' ROUGE-L F1 mean and the seconds spent answering them."""
    from assistant.engine.base import GenerationParams
    from assistant.engine.local import load_local_backend
    from assistant.engine.resolve import ModelChoice

    backend = load_local_backend(ModelChoice(model, model.name, "local path"), device="cpu", adapter=str(adapter or ""))
    started = time.perf_counter()
    results = answer_rephrasings(backend, GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0), system_prompt)
    elapsed = time.perf_counter() - started
    backend.close()
    return statistics.mean(score for score, _, _ in results), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="The base model directory (safetensors).")
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="Comma-separated LR:EPOCHS:4bit|fp32.")
    parser.add_argument("--max-steps", type=int, default=0, help="Cap on each run's steps (0: the epochs decide).")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--skip-base", action="store_true", help="Do not score the base model first.")
    parser.add_argument("--no-score", action="store_true", help="Time the training only (no rephrasings).")
    parser.add_argument("--data-dir", type=Path, help="Where the runs go (default: a temp dir).")
    args = parser.parse_args()

    quiet_libraries()
    setup_logging(None)
    from assistant.train.config import TrainConfig
    from assistant.train.loop import Progress, Reporter, train_adapter

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="train-defaults-"))
    settings, snapshot = prepare(data_dir, args.model)
    counts = snapshot.manifest["counts"]
    print(f"dataset counts: {({k: v for k, v in counts.items() if k != 'filters'})}")
    if not (args.skip_base or args.no_score):
        base, seconds = score(args.model, None, settings.system_prompt, args.max_new_tokens)
        print(f"base (no adapter): rephrasings ROUGE-L F1 {base:.3f} (answered in {seconds:.0f} s)", flush=True)
    for index, run in enumerate(args.runs.split(",")):
        lr, epochs, precision = run.split(":")
        config = dataclasses.replace(
            TrainConfig.from_settings(settings, is_demo=False, model_name=args.model.name),
            learning_rate=float(lr),
            epochs=float(epochs),
            max_steps=args.max_steps,
            eval_steps=args.max_steps,  # capped runs (timings): one evaluation, at the end
            load_in_4bit=precision == "4bit",
        )
        started = time.perf_counter()
        ticks: list[float] = []

        def step(progress: Progress) -> None:
            ticks.append(time.perf_counter())
            if len(ticks) > 1 and progress.step % 10 == 0 or progress.step == progress.total:
                print(f"  step {progress.step}/{progress.total}: loss {progress.loss:.3f}, "
                      f"{ticks[-1] - ticks[-2]:.1f} s for the last step", file=sys.stderr, flush=True)

        outcome = train_adapter(
            args.model, snapshot.path, data_dir / "runs" / f"run-{index}", config, on_cuda=False, reporter=Reporter(progress=step)
        )
        per_step = (ticks[-1] - ticks[0]) / max(1, len(ticks) - 1) if len(ticks) > 1 else float("nan")
        train_s = time.perf_counter() - started
        rouge, seconds = (float("nan"), 0.0) if args.no_score else score(
            args.model, outcome.adapter_dir, settings.system_prompt, args.max_new_tokens
        )
        print(
            f"run lr={lr} epochs={epochs} base={precision}: {outcome.steps}/{outcome.total_steps} steps in {train_s:.0f} s "
            f"({per_step:.2f} s/step between logged steps, evaluations included); train loss {outcome.train_loss:.3f}, "
            f"eval loss {outcome.best_eval_loss if outcome.best_eval_loss is None else round(outcome.best_eval_loss, 3)}; "
            f"rephrasings ROUGE-L F1 {rouge:.3f} (answered in {seconds:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
