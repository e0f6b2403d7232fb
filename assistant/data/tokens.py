"""The model's tokenizer, as the dataset builder needs it: lengths of chat-templated conversations
exactly as TRL's SFTTrainer will tokenise them, and the special-token strings to defuse.

The one module of data/ that imports transformers (and so torch); the builder gets it passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.errors import DatasetError

BATCH = 512


class ChatTokenizer:
    """A Hugging Face tokenizer with a chat template."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise DatasetError(f"the tokenizer of {name} has no chat template, so examples cannot be measured")
        self.tokenizer = tokenizer
        self.name = name
        added = [token.content for token in tokenizer.added_tokens_decoder.values() if token.special]
        self.special_tokens = sorted(set(tokenizer.all_special_tokens) | set(added))

    @classmethod
    def load(cls, path: Path | str, name: str | None = None) -> ChatTokenizer:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot load the tokenizer from {path}: {str(exc).splitlines()[0]}") from None
        return cls(tokenizer, name or str(path))

    def lengths(self, conversations: Sequence[Sequence[dict[str, Any]]]) -> list[int]:
        lengths: list[int] = []
        for start in range(0, len(conversations), BATCH):
            batch = [list(c) for c in conversations[start : start + BATCH]]
            texts = self.tokenizer.apply_chat_template(batch, tokenize=False)
            encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            lengths += [len(ids) for ids in encoded]
        return lengths
