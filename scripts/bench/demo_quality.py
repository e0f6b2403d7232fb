"""How well a model answers the sample questions: greedy answers scored with ROUGE-L.

By default builds the demo model if needed (timed); `--model DIR` scores any local model instead
(SmolLM2 converted to safetensors, say), `--adapter DIR` with a LoRA adapter on it. Then answers
every assistant turn of every sample conversation greedily, given the conversation up to that turn,
and prints the mean ROUGE-L F1 against the sample answers per file and overall (`--limit 0`: none).

`--rephrasings` also answers the held-out rephrasings (conversations/rephrasings/rephrasings.jsonl:
sample questions in other words, never trained on), each asked alone (with `--model`, after the
default system prompt, as a chat asks it), and scores them against the
sample answers they should get. The target (>= 0.5) applies to the rephrasings when they are scored,
else to the sample turns; the exit status is 0 when it is met, 1 otherwise.

    python scripts/bench/demo_quality.py [--data-dir DIR] [--recipe demo|tiny] [--seed 0] [--limit N]
    python scripts/bench/demo_quality.py --model DIR [--adapter DIR] [--four-bit] --rephrasings --limit 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from assistant.logs import quiet_libraries, setup_logging

REPHRASINGS = Path(__file__).resolve().parents[2] / "conversations" / "rephrasings" / "rephrasings.jsonl"
TARGET = 0.5


@dataclass(frozen=True)
class Rephrasing:
    question: str  # a sample question in other words
    answer: str  # the sample answer it should get
    source: str  # "<sample file>:<line>" of the conversation it rephrases


def read_rephrasings(path: Path = REPHRASINGS) -> list[Rephrasing]:
    from assistant.jsonl import read_jsonl

    return [Rephrasing(row["question"], row["answer"], row["source"]) for row, _ in read_jsonl(path)]


def answer_rephrasings(
    backend, params, system_prompt: str = "", references=None, count: int = 0  # noqa: ANN001
) -> list[tuple[float, Rephrasing, str]]:
    """Each rephrasing asked alone (after the system prompt, if any), greedily: (ROUGE-L F1, item, answer).
    `references` (an `assistant.references.References` or `Index`): the `count` closest curated answers
    shown with each question, as the chat shows them."""
    from rouge_score import rouge_scorer

    from assistant.engine.base import ChatMessage
    from assistant.references import grounded

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    system = [ChatMessage("system", system_prompt)] if system_prompt else []
    results = []
    for item in read_rephrasings():
        messages = [*system, ChatMessage("user", item.question)]
        if references is not None and count:
            messages = grounded(messages, references.find(item.question, count))
        text = "".join(backend.stream(messages, params))
        results.append((scorer.score(item.answer, text)["rougeL"].fmeasure, item, text))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="Where the built demo model is kept (default: a temp dir).")
    parser.add_argument("--recipe", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, help="A local model directory to score instead of the demo model.")
    parser.add_argument("--adapter", type=Path, help="A LoRA adapter directory (safetensors) to apply to the model.")
    parser.add_argument("--four-bit", action="store_true", help="Load the base in 4-bit NF4 on the CPU too (as trained).")
    parser.add_argument("--rephrasings", action="store_true", help="Also score the held-out rephrasings.")
    parser.add_argument("--limit", type=int, help="Score only the first N sample turns (0: none).")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument(
        "--references",
        type=int,
        default=0,
        help="Show each rephrasing the N closest sample answers, as the chat shows curated answers (default 0: none).",
    )
    parser.add_argument("--show", type=int, default=3, help="Print the N worst answers.")
    args = parser.parse_args()

    quiet_libraries()
    setup_logging(None)
    from rouge_score import rouge_scorer

    from assistant.demo.samples import read_conversations, sample_files
    from assistant.engine.base import ChatMessage, GenerationParams
    from assistant.engine.local import load_local_backend
    from assistant.engine.resolve import ModelChoice

    started = time.perf_counter()
    if args.model is None:
        from assistant.demo.build import BUILD_INFO, ensure_demo_model

        data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="demo-quality-"))
        last = [0.0]

        def progress(stage: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] > 10 or done == total:
                last[0] = now
                print(f"  {stage}: {done}/{total} ({now - started:.0f} s)", file=sys.stderr)

        path = ensure_demo_model(data_dir / "models", recipe=args.recipe, seed=args.seed, progress=progress)
        about = f"build (or reuse): {time.perf_counter() - started:.1f} s; build info: {' '.join((path / BUILD_INFO).read_text().split())}"
        choice = ModelChoice(path, "assistant-demo", "demo", is_demo=True)
    else:
        path = args.model
        choice = ModelChoice(path, path.name, "local path")
    backend = load_local_backend(choice, device="cpu", cpu_load_in_4bit=args.four_bit, adapter=str(args.adapter or ""))
    if args.model is not None:
        about = f"load: {time.perf_counter() - started:.1f} s; serving {backend.identity.label}"

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
    by_file: dict[str, list[float]] = defaultdict(list)
    worst: list[tuple[float, str, str, str]] = []

    def answer(prompt: list[ChatMessage], expected: str) -> tuple[float, str]:
        text = "".join(backend.stream(prompt, params))
        return scorer.score(expected, text)["rougeL"].fmeasure, text

    count = 0
    answer_s = time.perf_counter()
    for file in sample_files():
        for conversation in read_conversations(file):
            for index, message in enumerate(conversation):
                if message["role"] != "assistant" or (args.limit is not None and count >= args.limit):
                    continue
                prompt = [ChatMessage(m["role"], m["content"]) for m in conversation[:index]]
                score, text = answer(prompt, message["content"])
                by_file[file.stem].append(score)
                worst.append((score, conversation[index - 1]["content"], message["content"], text))
                count += 1
    answer_s = time.perf_counter() - answer_s

    rephrased: list[float] = []
    rephrased_s = time.perf_counter()
    if args.rephrasings:
        # A real model is asked as the chat asks it: after the default system prompt.
        from assistant.settings import DEFAULT_SYSTEM_PROMPT

        system_prompt = DEFAULT_SYSTEM_PROMPT if args.model is not None else ""
        index = None
        if args.references:
            from assistant.demo.samples import load_samples, sample_questions
            from assistant.references import Index, Reference

            index = Index([Reference(context[-1]["content"], answer) for context, answer in sample_questions(load_samples())])
        for score, item, text in answer_rephrasings(backend, params, system_prompt, index, args.references):
            rephrased.append(score)
            worst.append((score, item.question, item.answer, text))
    rephrased_s = time.perf_counter() - rephrased_s

    print(f"model: {path}" + (f" + adapter {args.adapter}" if args.adapter else ""))
    print(about)
    overall = None
    if count:
        print(f"answered {count} sample turns greedily in {answer_s:.1f} s")
        for name, scores in by_file.items():
            print(f"  {name:<16} ROUGE-L F1 mean {statistics.mean(scores):.3f} over {len(scores)}")
        overall = statistics.mean(s for scores in by_file.values() for s in scores)
        print(f"sample turns ROUGE-L F1 mean: {overall:.3f}")
    if rephrased:
        overall = statistics.mean(rephrased)
        print(f"answered {len(rephrased)} rephrasings greedily in {rephrased_s:.1f} s")
        print(f"rephrasings ROUGE-L F1 mean: {overall:.3f} (median {statistics.median(rephrased):.3f})")
    if overall is None:
        print("nothing scored: --limit 0 without --rephrasings", file=sys.stderr)
        return 2
    print(f"target: >= {TARGET} ({'met' if overall >= TARGET else 'not met'})")
    for score, question, expected, text in sorted(worst)[: args.show]:
        print(f"\n--- {score:.2f}  Q: {question}\n  expected: {expected[:200]}\n  answered: {text[:200]}")
    return 0 if overall >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
