"""The model's tokenizer, as the dataset builder needs it: lengths of chat-templated conversations
as TRL's SFTTrainer will tokenise them, and the special-token strings to defuse.

Rows share most of their text (each turn's context repeats the turns before; preference rows repeat
the prompts), so a length is counted as the template's own tokens for that sequence of roles plus
the tokens of each message content, every distinct content encoded once. Special tokens split the
text before byte-level BPE and the templates put a newline or a special token around contents, so
this equals tokenising the rendered row for ChatML-style templates (tests/data/test_tokens.py
checks it); `exact=True` renders and tokenises every row instead. The builder asks for the two parts
(`content_lengths`, `template`); contents go straight to the Rust tokenizer's `encode_batch_fast` (no
offsets, and the GIL released, so the builder runs it on a worker thread) when the tokenizer has no
truncation or padding configured that the Python wrapper would switch off.

The one module of data/ that imports transformers (and so torch); the builder gets it passed in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.errors import DatasetError

BATCH = 512
_SLOT = "\ue000{}\ue001"  # private-use characters: never in a template, stripped before counting
_SLOT_RE = re.compile("\ue000(\\d+)\ue001")


class ChatTokenizer:
    """A Hugging Face tokenizer with a chat template."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise DatasetError(f"the tokenizer of {name} has no chat template, so examples cannot be measured")
        self.tokenizer = tokenizer
        self.name = name
        added = [token.content for token in tokenizer.added_tokens_decoder.values() if token.special]
        self.special_tokens = sorted(set(tokenizer.all_special_tokens) | set(added))
        self._template_tokens: dict[tuple, tuple[int, tuple[int, ...]]] = {}

    @classmethod
    def load(cls, path: Path | str, name: str | None = None) -> ChatTokenizer:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot load the tokenizer from {path}: {str(exc).splitlines()[0]}") from None
        return cls(tokenizer, name or str(path))

    def lengths(self, conversations: Sequence[Sequence[dict[str, Any]]], *, exact: bool = False) -> list[int]:
        """Token count of each conversation rendered with the chat template, as the trainer sees it."""
        if exact:
            return self._exact(conversations)
        contents = sorted({m["content"] for c in conversations for m in c})
        counts = dict(zip(contents, self.content_lengths(contents), strict=True))
        lengths = []
        for conversation in conversations:
            overhead, shown = self.template(tuple((m["role"], m.get("weight")) for m in conversation))
            lengths.append(overhead + sum(counts[conversation[i]["content"]] for i in shown))
        return lengths

    def content_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text on its own, no special tokens added (in batches, without offsets)."""
        backend = getattr(self.tokenizer, "_tokenizer", None)  # the Rust tokenizer of a fast tokenizer
        direct = hasattr(backend, "encode_batch_fast") and backend.truncation is None and backend.padding is None
        lengths: list[int] = []
        for start in range(0, len(texts), BATCH * 8):
            batch = list(texts[start : start + BATCH * 8])
            if direct:
                lengths += [len(e) for e in backend.encode_batch_fast(batch, add_special_tokens=False)]
            else:
                lengths += map(len, self.tokenizer(batch, add_special_tokens=False)["input_ids"])
        return lengths

    def template(self, key: tuple[tuple[str, int | None], ...]) -> tuple[int, tuple[int, ...]]:
        """The template's own tokens for a sequence of (role, weight) messages (weight None: no weight
        key), and which messages' contents it shows (a template may leave the system message out)."""
        if key not in self._template_tokens:
            marked = [
                {"role": role, "content": _SLOT.format(i), **({} if weight is None else {"weight": weight})}
                for i, (role, weight) in enumerate(key)
            ]
            rendered = self.tokenizer.apply_chat_template(marked, tokenize=False)
            shown = tuple(int(i) for i in _SLOT_RE.findall(rendered))
            bare = _SLOT_RE.sub("", rendered)
            self._template_tokens[key] = (len(self.tokenizer(bare, add_special_tokens=False)["input_ids"]), shown)
        return self._template_tokens[key]

    def _exact(self, conversations: Sequence[Sequence[dict[str, Any]]]) -> list[int]:
        lengths: list[int] = []
        for start in range(0, len(conversations), BATCH):
            batch = [list(c) for c in conversations[start : start + BATCH]]
            texts = self.tokenizer.apply_chat_template(batch, tokenize=False)
            encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            lengths += [len(ids) for ids in encoded]
        return lengths
