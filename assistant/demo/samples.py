"""The sample support conversations the demo model is built from.

They live in `conversations/samples/*.jsonl` (OpenAI chat format, one conversation per line) and
ship inside the wheel as `assistant/demo/samples/`, so the demo model can be built whatever the
data dir is. From a source checkout the repository copy is used.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from assistant.jsonl import read_jsonl

PACKAGED = Path(__file__).with_name("samples")
CHECKOUT = Path(__file__).resolve().parents[2] / "conversations" / "samples"

Conversation = list[dict[str, str]]


def samples_dir() -> Path:
    for candidate in (PACKAGED, CHECKOUT):
        if any(candidate.glob("*.jsonl")):
            return candidate
    raise FileNotFoundError("the sample conversations are missing from this installation")


def sample_files(directory: Path | None = None) -> list[Path]:
    return sorted((directory or samples_dir()).glob("*.jsonl"))


def read_conversations(path: Path) -> list[Conversation]:
    """The conversations of one sample file, in line order."""
    return [[{"role": m["role"], "content": m["content"]} for m in row["messages"]] for row, _ in read_jsonl(path)]


def load_samples(directory: Path | None = None) -> list[Conversation]:
    """Every sample conversation, in file-name then line order (deterministic)."""
    return [c for path in sample_files(directory) for c in read_conversations(path)]


def fingerprint(conversations: list[Conversation]) -> str:
    """A short content hash: the demo model is rebuilt when the samples change."""
    blob = json.dumps(conversations, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def sample_questions(conversations: list[Conversation]) -> list[tuple[Conversation, str]]:
    """(context, expected answer) for every assistant turn of every sample conversation."""
    pairs = []
    for conversation in conversations:
        for index, message in enumerate(conversation):
            if message["role"] == "assistant":
                pairs.append((conversation[:index], message["content"]))
    return pairs


def sample_openers(count: int) -> list[str]:
    """The first question of the first conversation of each sample file: suggestions for the demo."""
    return [read_conversations(path)[0][0]["content"] for path in sample_files()[:count]]
