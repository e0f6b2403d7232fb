"""How well the demo model answers the sample questions: greedy answers scored with ROUGE-L.

Builds the demo model if needed (timed), then answers every assistant turn of every sample
conversation greedily, given the conversation up to that turn, and prints the mean ROUGE-L F1
against the sample answers (target: >= 0.5), per file and overall.

    python scripts/bench/demo_quality.py [--data-dir DIR] [--recipe demo|tiny] [--seed 0] [--limit N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from assistant.logs import quiet_libraries, setup_logging


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="Where the built model is kept (default: a temp dir).")
    parser.add_argument("--recipe", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="Score only the first N turns.")
    parser.add_argument("--show", type=int, default=3, help="Print the N worst answers.")
    args = parser.parse_args()

    quiet_libraries()
    setup_logging(None)
    from rouge_score import rouge_scorer

    from assistant.demo.build import BUILD_INFO, ensure_demo_model
    from assistant.demo.samples import read_conversations, sample_files
    from assistant.engine.base import ChatMessage, GenerationParams
    from assistant.engine.local import load_local_backend
    from assistant.engine.resolve import ModelChoice

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="demo-quality-"))
    started = time.perf_counter()
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 10 or done == total:
            last[0] = now
            print(f"  {stage}: {done}/{total} ({now - started:.0f} s)", file=sys.stderr)

    path = ensure_demo_model(data_dir / "models", recipe=args.recipe, seed=args.seed, progress=progress)
    build_s = time.perf_counter() - started
    info = (path / BUILD_INFO).read_text()
    backend = load_local_backend(ModelChoice(path, "assistant-demo", "demo", is_demo=True))

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    params = GenerationParams(max_new_tokens=200, temperature=0.0)
    by_file: dict[str, list[float]] = defaultdict(list)
    worst: list[tuple[float, str, str, str]] = []
    count = 0
    answer_s = time.perf_counter()
    for file in sample_files():
        for conversation in read_conversations(file):
            for index, message in enumerate(conversation):
                if message["role"] != "assistant":
                    continue
                if args.limit is not None and count >= args.limit:
                    break
                prompt = [ChatMessage(m["role"], m["content"]) for m in conversation[:index]]
                reply = backend.stream(prompt, params)
                answer = "".join(reply)
                score = scorer.score(message["content"], answer)["rougeL"].fmeasure
                by_file[file.stem].append(score)
                worst.append((score, conversation[index - 1]["content"], message["content"], answer))
                count += 1
    answer_s = time.perf_counter() - answer_s

    print(f"demo model: {path}")
    print(f"build (or reuse): {build_s:.1f} s; build info: {' '.join(info.split())}")
    print(f"answered {count} sample turns greedily in {answer_s:.1f} s")
    for name, scores in by_file.items():
        print(f"  {name:<16} ROUGE-L F1 mean {statistics.mean(scores):.3f} over {len(scores)}")
    overall = statistics.mean(s for scores in by_file.values() for s in scores)
    print(f"overall ROUGE-L F1 mean: {overall:.3f} (target >= 0.5)")
    for score, question, expected, answer in sorted(worst)[: args.show]:
        print(f"\n--- {score:.2f}  Q: {question}\n  expected: {expected[:200]}\n  answered: {answer[:200]}")
    return 0 if overall >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
