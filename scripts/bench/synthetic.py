"""A deterministic synthetic support-chat dataset for the GPU benches (issue 5).

    python scripts/bench/synthetic.py [--rows 256] [--seed 0] [--scale 1.0] [--tokenizer DIR] [--out FILE]

Distribution (per row, independently, from `random.Random(seed)`):
- prompt length P ~ log-uniform on [50, 1500] tokens: median ~274, mean ~426;
- answer length A ~ log-uniform on [20, 400] tokens: median ~89, mean ~127;
- `--scale s` multiplies both (at least 4 tokens each), for quick CPU runs.

Each row is `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}` (the dataset format
`assistant retrain` trains on). The texts are slices of real support-chat wording (the sample
conversations in conversations/samples, in a seeded order): a long pool of text is tokenized once
and each message is the decoded slice of exactly P (or A) token ids, so its token length under the
given tokenizer matches the sampled length up to the merges at the slice edges (checked by
`--check`). Chat-template tokens (role markers, end of turn) come on top.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PROMPT_RANGE = (50, 1500)
ANSWER_RANGE = (20, 400)


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def sample_lengths(rows: int, seed: int = 0, scale: float = 1.0) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        prompt = log_uniform(rng, *PROMPT_RANGE)
        answer = log_uniform(rng, *ANSWER_RANGE)
        out.append((max(4, round(prompt * scale)), max(4, round(answer * scale))))
    return out


def _pool_ids(tokenizer, seed: int, minimum: int) -> list[int]:  # noqa: ANN001
    from assistant.demo.samples import load_samples

    texts = [turn["content"] for conversation in load_samples() for turn in conversation]
    rng = random.Random(seed)
    ids: list[int] = []
    while len(ids) < minimum:
        rng.shuffle(texts)
        ids += tokenizer(" ".join(texts), add_special_tokens=False)["input_ids"]
    return ids


def build_rows(tokenizer, rows: int, seed: int = 0, scale: float = 1.0) -> list[dict[str, Any]]:  # noqa: ANN001
    """`rows` chats with the sampled lengths, deterministic for (tokenizer, rows, seed, scale)."""
    lengths = sample_lengths(rows, seed, scale)
    pool = _pool_ids(tokenizer, seed, 2 * max(p + a for p, a in lengths) + 10_000)
    rng = random.Random(seed + 1)
    out = []
    for prompt, answer in lengths:
        texts = []
        for length in (prompt, answer):
            start = rng.randrange(0, len(pool) - length)
            texts.append(tokenizer.decode(pool[start : start + length], skip_special_tokens=True).strip())
        out.append({"messages": [{"role": "user", "content": texts[0]}, {"role": "assistant", "content": texts[1]}]})
    return out


def check(tokenizer, rows: list[dict[str, Any]], seed: int, scale: float) -> dict[str, float]:  # noqa: ANN001
    """Measured token lengths against the sampled ones: median and worst relative error."""
    errors = []
    for row, lengths in zip(rows, sample_lengths(len(rows), seed, scale), strict=True):
        for message, wanted in zip(row["messages"], lengths, strict=True):
            got = len(tokenizer(message["content"], add_special_tokens=False)["input_ids"])
            errors.append(abs(got - wanted) / wanted)
    return {"median_rel_error": statistics.median(errors), "max_rel_error": max(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--tokenizer", type=Path, help="a saved tokenizer (default: the demo model's)")
    parser.add_argument("--out", type=Path, help="write the rows as JSONL here")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    if args.tokenizer is None:
        from common import demo_tokenizer_dir

        args.tokenizer = demo_tokenizer_dir()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    rows = build_rows(tokenizer, args.rows, args.seed, args.scale)
    lengths = sample_lengths(args.rows, args.seed, args.scale)
    prompts, answers = [p for p, _ in lengths], [a for _, a in lengths]
    print(f"{args.rows} rows, seed {args.seed}, scale {args.scale}")
    print(f"prompt tokens: min {min(prompts)}, median {statistics.median(prompts):.0f}, mean {statistics.mean(prompts):.0f}, max {max(prompts)}")
    print(f"answer tokens: min {min(answers)}, median {statistics.median(answers):.0f}, mean {statistics.mean(answers):.0f}, max {max(answers)}")
    measured = check(tokenizer, rows, args.seed, args.scale)
    print(f"token length vs sampled: median error {measured['median_rel_error']:.1%}, worst {measured['max_rel_error']:.1%}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
