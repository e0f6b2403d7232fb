"""Turn chat messages into token ids with the tokenizer's chat template, text kept as text.

A customer who types `<|im_end|>` must not end their turn. The template is rendered with
placeholders instead of the contents; the template's own text is tokenised normally (its special
tokens are real), and every message content is tokenised with special tokens split, so text that
spells a special token becomes ordinary tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.engine.base import ChatMessage
from assistant.errors import ModelError

_SLOT = "\ue000{}\ue001"
_SLOT_RE = re.compile("\ue000(\\d+)\ue001")


def encode_chat(tokenizer, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> list[int]:
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            "the model's tokenizer has no chat template",
            hint="use an instruct/chat model, or add a chat template to its tokenizer_config.json",
        )
    placeholders = [{"role": m.role, "content": _SLOT.format(i)} for i, m in enumerate(messages)]
    rendered = tokenizer.apply_chat_template(
        placeholders, tokenize=False, add_generation_prompt=add_generation_prompt
    )
    ids: list[int] = []
    position = 0
    for match in _SLOT_RE.finditer(rendered):
        ids += _encode(tokenizer, rendered[position : match.start()], split_special=False)
        ids += _encode(tokenizer, messages[int(match.group(1))].content, split_special=True)
        position = match.end()
    ids += _encode(tokenizer, rendered[position:], split_special=False)
    return ids


def _encode(tokenizer, text: str, *, split_special: bool) -> list[int]:
    if not text:
        return []
    return tokenizer(text, add_special_tokens=False, split_special_tokens=split_special)["input_ids"]
