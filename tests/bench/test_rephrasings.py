"""The held-out rephrasings (conversations/rephrasings/): at least 30 questions in our own words, each
paired with the sample answer it should get, and never part of what the demo build or any training
path reads (the sample loader's files and conversations, the wheel's packaged samples)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from assistant.demo.samples import CHECKOUT, load_samples, read_conversations, sample_files
from scripts.bench.demo_quality import REPHRASINGS, read_rephrasings

ROOT = Path(__file__).resolve().parents[2]


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() else " " for c in text).split()


def test_there_are_at_least_30_rephrasings_each_with_the_answer_of_the_sample_it_rephrases() -> None:
    rephrasings = read_rephrasings()
    assert len(rephrasings) >= 30
    assert len({r.question for r in rephrasings}) == len(rephrasings)
    for item in rephrasings:
        file, line = item.source.split(":")
        conversation = read_conversations(CHECKOUT / file)[int(line) - 1]
        assert conversation[1]["content"] == item.answer, item.source
        original = _words(conversation[0]["content"])
        # our own wording: not the sample question again, and far from word-for-word
        assert _words(item.question) != original
        shared = sum(1 for a, b in zip(_words(item.question), original) if a == b)
        assert shared < len(original) / 2, item.question


def test_neither_the_demo_build_nor_the_sample_loader_reads_the_rephrasings() -> None:
    assert REPHRASINGS.is_file() and REPHRASINGS.parent != CHECKOUT
    assert all(REPHRASINGS.resolve() != path.resolve() for path in sample_files())
    questions = {m["content"] for c in load_samples() for m in c if m["role"] == "user"}
    assert not questions & {r.question for r in read_rephrasings()}
    packaged = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert not any("rephrasings" in source for source in packaged.get("force-include", {}))
