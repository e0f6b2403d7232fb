"""Corrections without forgetting: a few curated corrections, retrained on the demo model.

For each count N (3, 10, 30 by default), on a fresh data dir serving the built-in demo model (built
once, or reused from --models): N customers ask held-out rephrasings of sample questions
(conversations/rephrasings/: sample questions in other words, never trained on), the demo model
answers, and a curator rates each reply down with the sample answer as the correction and approves
it. Then `assistant retrain` runs as a user runs it (dataset snapshot, preflight, QLoRA, gate,
publish, promote). Printed, before (the demo model alone) and after (with the new version, promoted
or not):

  (a) corrections learned: corrected questions whose greedy answer has ROUGE-L F1 >= 0.9 against
      the correction (and the mean);
  (b) untouched: mean ROUGE-L F1 of the greedy answers to the first question of the sample
      conversations no correction rephrases, against their sample answers;
  the gate's verdict and the retrain's wall time.

Target (issue 13): every correction learned, untouched >= 0.7, and the gate promotes the version.
Exit status 0 when every count meets it.

    PYTHONPATH=. python scripts/bench/corrections.py [--counts 3,10,30] [--untouched 60] [--set key=value ...]
    PYTHONPATH=. python scripts/bench/corrections.py --model DIR --set 'sample_training = "on"'   # another base model

`--set` adds a line to each data dir's config.toml (a TOML value: `--set epochs=10`), to compare
training settings.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.logs import quiet_libraries, setup_logging
from scripts.bench.demo_quality import Rephrasing, read_rephrasings

LEARNED = 0.9  # ROUGE-L F1 of a greedy answer against its correction that counts as learned
UNTOUCHED_TARGET = 0.7
DEFAULT_MODELS = Path("/tmp/assistant-bench-models")


@dataclass(frozen=True)
class Scores:
    corrections: list[float]
    untouched: list[float]
    answers: list[str]  # the greedy answers to the corrected questions

    def learned(self) -> int:
        return sum(score >= LEARNED for score in self.corrections)

    def line(self) -> str:
        return (f"corrections learned {self.learned()}/{len(self.corrections)} "
                f"(ROUGE-L mean {statistics.mean(self.corrections):.3f}), "
                f"untouched ROUGE-L mean {statistics.mean(self.untouched):.3f} over {len(self.untouched)}")


def untouched_questions(corrected: list[Rephrasing], limit: int) -> list[tuple[str, str]]:
    """(first question, its sample answer) of sample conversations no correction rephrases, spread over the files."""
    from assistant.demo.samples import read_conversations, sample_files

    taken = {item.source for item in corrected}
    per_file = [
        [(c[0]["content"], c[1]["content"]) for line, c in enumerate(read_conversations(file), start=1)
         if f"{file.name}:{line}" not in taken]
        for file in sample_files()
    ]
    mixed = [pair for group in zip(*per_file, strict=False) for pair in group]
    return mixed[:limit]


def _choice(model: Path, is_demo: bool):  # noqa: ANN202
    from assistant.engine.resolve import ModelChoice

    return ModelChoice(model, "assistant-demo", "demo", is_demo=True) if is_demo else ModelChoice(model, model.name, "local path")


def score(settings, model: Path, adapter: Path | None, corrected: list[Rephrasing], untouched: list[tuple[str, str]], *, is_demo: bool = True) -> Scores:  # noqa: ANN001
    """Greedy answers as the chat asks: after the system prompt, with the curated answers the
    `references` setting shows this model (none for the demo model), from the newest snapshot."""
    from rouge_score import rouge_scorer

    from assistant.chat import with_references
    from assistant.engine.base import ChatMessage, GenerationParams
    from assistant.engine.local import load_local_backend
    from assistant.references import References
    from assistant.store import Store

    backend = load_local_backend(_choice(model, is_demo), device="cpu", cpu_load_in_4bit=settings.cpu_load_in_4bit,
                                 adapter=str(adapter or ""))
    params = GenerationParams(max_new_tokens=200, temperature=0.0)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    store = Store.open(settings.db_path)
    references = References(store, settings.data_dir)

    def answer(question: str) -> str:
        messages = [ChatMessage("system", settings.system_prompt), ChatMessage("user", question)]
        return "".join(backend.stream(with_references(messages, references, settings, backend, params), params))

    def rouge(text: str, expected: str) -> float:
        return scorer.score(expected, text)["rougeL"].fmeasure

    try:
        answers = [answer(item.question) for item in corrected]
        return Scores(
            [rouge(text, item.answer) for text, item in zip(answers, corrected, strict=True)],
            [rouge(answer(q), a) for q, a in untouched],
            answers,
        )
    finally:
        backend.close()
        store.close()


def run_count(count: int, root: Path, model: Path, extra: list[str], seed: int, untouched_limit: int, *, is_demo: bool) -> tuple[bool, str]:
    from assistant.settings import load_settings
    from assistant.store import Store
    from assistant.train.loop import Progress
    from assistant.train.retrain import Events, Options, retrain

    data_dir = root / f"n{count}"
    (data_dir / "models").mkdir(parents=True)
    if is_demo:
        (data_dir / "models" / model.name).symlink_to(model)
    where = ['model = ""', 'fallback_model = "demo"'] if is_demo else [f'model = "{model}"']
    lines = ['user = "bench"', 'hub_model = ""', *where, *extra]
    (data_dir / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = load_settings(data_dir=data_dir, environ={}).settings

    rephrasings = read_rephrasings()
    corrected = random.Random(seed).sample(rephrasings, count)
    untouched = untouched_questions(corrected, untouched_limit)
    before = score(settings, model, None, corrected, untouched, is_demo=is_demo)
    print(f"N={count} before: {before.line()}", flush=True)

    store = Store.open(settings.db_path)
    replies = []
    for item, answer in zip(corrected, before.answers, strict=True):  # the model's own (wrong) answer, rated down and corrected
        conversation = store.create_conversation("staff", settings.system_prompt)
        user = store.add_message(conversation.id, "user", item.question)
        reply = store.add_message(conversation.id, "assistant", answer or "?", parent_id=user.id)
        store.rate(reply.id, "staff", -1, correction=item.answer)
        replies.append(reply.id)
    store.approve(replies, "curator")

    last = [0.0]

    def progress(p: Progress) -> None:
        now = time.perf_counter()
        if now - last[0] > 15 or p.step == p.total:
            last[0] = now
            print(f"  step {p.step}/{p.total} loss {p.loss:.3f}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    result = retrain(settings, store, Options(), Events(status=lambda text: print(f"  {text}", file=sys.stderr, flush=True), progress=progress))
    elapsed = time.perf_counter() - started
    store.close()
    adapter = settings.layout.version(result.version) if result.version else None
    after = score(settings, model, adapter, corrected, untouched, is_demo=is_demo)
    pre = result.preflight or {}
    counts = f"{pre.get('train_examples')} train, {pre.get('eval_examples')} eval rows"
    print(f"N={count} after:  {after.line()}")
    print(f"N={count} each correction: {' '.join(f'{s:.2f}' for s in after.corrections)}")
    print(f"N={count} retrain: {result.status} in {elapsed:.1f} s ({result.metrics.get('steps', '?')} steps; {counts}; gate: {_losses(result.report)}): {result.message}", flush=True)
    met = after.learned() == count and statistics.mean(after.untouched) >= UNTOUCHED_TARGET and result.status == "promoted"
    return met, f"N={count}: {'met' if met else 'not met'}"


def _losses(report: dict) -> str:
    scores = report.get("scores", {})
    return "; ".join(
        f"{name} eval {s.get('eval_loss') or float('nan'):.4f} new {s.get('new_loss') or float('nan'):.4f}" for name, s in scores.items()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="3,10,30", help="How many corrections, comma-separated.")
    parser.add_argument("--untouched", type=int, default=60, help="How many untouched sample questions to score.")
    parser.add_argument("--seed", type=int, default=0, help="Which rephrasings become corrections.")
    parser.add_argument("--model", type=Path, help="A local base model directory (default: the built-in demo model).")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="Where the demo model is built once and reused.")
    parser.add_argument("--data-dir", type=Path, help="Where the data dirs go (default: a temp dir).")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="A config.toml line for every run.")
    args = parser.parse_args()

    quiet_libraries()
    setup_logging(None)
    from assistant.demo.build import ensure_demo_model

    started = time.perf_counter()
    model = args.model or ensure_demo_model(args.models, recipe="demo", seed=0)
    print(f"model: {model} ({time.perf_counter() - started:.0f} s to build or reuse)")
    root = args.data_dir or Path(tempfile.mkdtemp(prefix="corrections-"))
    verdicts = [run_count(int(n), root, model, args.set, args.seed, args.untouched, is_demo=args.model is None)
                for n in args.counts.split(",")]
    for _, line in verdicts:
        print(line)
    return 0 if all(met for met, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
