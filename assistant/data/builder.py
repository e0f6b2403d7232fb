"""The dataset builder: a pure, deterministic function from a snapshot of the log to training rows.

Input: the conversations with rated or reviewed replies (`Store.training_conversations()`), the
build policy (from the settings) and a tokenizer to measure lengths. Output: SFT rows in TRL's
conversational format, DPO and KTO preference rows, and a manifest of what was kept and why the
rest was not. The same input always gives the same output; nothing here reads a clock or a file.

- SFT: one row per approved reply (and, when the policy allows, per unreviewed thumbs-up): the
  conversation up to it as context, the curated answer as the target. Only the target trains:
  earlier assistant turns carry `"weight": 0` (the OpenAI fine-tuning convention, honoured by the
  training chat template); an earlier turn that was approved has its own row.
- DPO: a curated answer against the reply it corrects; regenerated siblings rated up and down.
- KTO: rated replies with their rating as the label; curated answers as desirable.
- A rejected reply is never trained on, in any file.
- Split by conversation, from a hash of its id: no conversation is on both sides. Preference rows
  come from the training side only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from assistant.data.clean import TextCleaner, special_token_pattern
from assistant.data.pii import Scrubber
from assistant.errors import DatasetError
from assistant.settings import Settings
from assistant.store.records import TrainingConversation, TrainingMessage

FORMAT_VERSION = 1
Row = dict[str, Any]


class Tokenizer(Protocol):
    """What the builder needs of the model's tokenizer."""

    name: str
    special_tokens: Sequence[str]

    def lengths(self, conversations: Sequence[Sequence[dict[str, Any]]]) -> list[int]:
        """Token count of each conversation rendered with the chat template, as the trainer sees it."""
        ...


@dataclass(frozen=True)
class BuildPolicy:
    train_on_unreviewed_thumbs_up: bool = False
    eval_fraction: float = 0.1
    min_eval_examples: int = 8
    max_length: int = 2048
    max_truncated_fraction: float = 0.05
    pii_patterns: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> BuildPolicy:
        return cls(
            train_on_unreviewed_thumbs_up=settings.train_on_unreviewed_thumbs_up,
            eval_fraction=settings.eval_fraction,
            min_eval_examples=settings.min_eval_examples,
            max_length=settings.max_length,
            max_truncated_fraction=settings.max_truncated_fraction,
            pii_patterns=settings.pii_patterns,
        )


@dataclass
class Example:
    """A row on its way out, with where it came from."""

    conversation_id: int
    target_id: int
    message_ids: list[int]
    row: Row
    source: str = ""
    tokens: int = 0


@dataclass
class Dataset:
    train: list[Row]
    eval: list[Row]
    dpo: list[Row]
    kto: list[Row]
    manifest: dict[str, Any]
    conversation_ids: list[int] = field(default_factory=list)


def build_dataset(
    conversations: Iterable[TrainingConversation], policy: BuildPolicy, tokenizer: Tokenizer
) -> Dataset:
    counts: Counter[str] = Counter()
    scrubber = Scrubber(dict(policy.pii_patterns))
    special = special_token_pattern(tokenizer.special_tokens)
    sft: list[Example] = []
    dpo: list[Example] = []
    kto: list[Example] = []
    pii: Counter[str] = Counter()
    for conversation in conversations:
        counts["conversations_read"] += 1
        scrub = scrubber.conversation()
        examples = _conversation_examples(conversation, policy, TextCleaner(special, scrub, counts), counts)
        sft += examples[0]
        dpo += examples[1]
        kto += examples[2]
        pii.update(scrub.counts)

    sft = _drop_empty(sft, counts)
    sft = _deduplicate(sft, counts, "sft")
    dpo = _deduplicate(dpo, counts, "dpo")
    kto = _deduplicate(kto, counts, "kto")

    _measure(sft, tokenizer, lambda e: e.row["messages"])
    _measure(dpo, tokenizer, lambda e: e.row["prompt"] + e.row["chosen"])
    chosen_tokens = [e.tokens for e in dpo]
    _measure(dpo, tokenizer, lambda e: e.row["prompt"] + e.row["rejected"])
    for example, tokens in zip(dpo, chosen_tokens, strict=True):
        example.tokens = max(example.tokens, tokens)
    _measure(kto, tokenizer, lambda e: e.row["prompt"] + e.row["completion"])
    too_long = [e for e in sft if e.tokens > policy.max_length]
    if sft and len(too_long) / len(sft) > policy.max_truncated_fraction:
        raise DatasetError(
            f"{len(too_long)} of {len(sft)} examples ({len(too_long) / len(sft):.1%}) are longer than "
            f"max_length={policy.max_length} tokens and would be truncated",
            hint=f"allowed: {policy.max_truncated_fraction:.1%}; raise max_length or max_truncated_fraction",
        )
    counts["dropped_too_long"] = len(too_long)
    sft = [e for e in sft if e.tokens <= policy.max_length]
    before = len(dpo) + len(kto)
    dpo = [e for e in dpo if e.tokens <= policy.max_length]
    kto = [e for e in kto if e.tokens <= policy.max_length]
    counts["preference_dropped_too_long"] = before - len(dpo) - len(kto)

    eval_ids = _eval_conversations(sft, policy)
    train = [e for e in sft if e.conversation_id not in eval_ids]
    evaluation = [e for e in sft if e.conversation_id in eval_ids]
    counts["preference_held_out"] = sum(e.conversation_id in eval_ids for e in dpo + kto)
    dpo = [e for e in dpo if e.conversation_id not in eval_ids]
    kto = [e for e in kto if e.conversation_id not in eval_ids]

    splits = {"train": train, "eval": evaluation, "dpo": dpo, "kto": kto}
    manifest = {
        "format_version": FORMAT_VERSION,
        "policy": asdict(policy),
        "tokenizer": tokenizer.name,
        "counts": {
            "rows": {name: len(rows) for name, rows in splits.items()},
            "conversations": {
                "train": len({e.conversation_id for e in train}),
                "eval": len({e.conversation_id for e in evaluation}),
            },
            "sources": dict(sorted(Counter(e.source for e in train + evaluation).items())),
            "filters": dict(sorted(counts.items())),
            "pii_replaced": dict(sorted(pii.items())),
        },
        "tokens": {"train": token_stats([e.tokens for e in train]), "eval": token_stats([e.tokens for e in evaluation])},
        "rows": {
            name: [{"conversation_id": e.conversation_id, "target_id": e.target_id, "message_ids": e.message_ids}
                   for e in rows]
            for name, rows in splits.items()
        },
    }
    used = sorted({e.conversation_id for rows in splits.values() for e in rows})
    return Dataset(
        train=[e.row for e in train],
        eval=[e.row for e in evaluation],
        dpo=[e.row for e in dpo],
        kto=[e.row for e in kto],
        manifest=manifest,
        conversation_ids=used,
    )


# -- one conversation --------------------------------------------------------------------------


def _label(message: TrainingMessage) -> int:
    """+1 thumbs-up only, -1 thumbs-down only, 0 unrated or disputed."""
    ups = sum(1 for _, rating, _ in message.ratings if rating > 0)
    downs = sum(1 for _, rating, _ in message.ratings if rating < 0)
    return (ups > 0 and not downs) - (downs > 0 and not ups)


def _correction(message: TrainingMessage) -> str:
    corrections = [c for _, _, c in message.ratings if c.strip()]
    return corrections[-1] if corrections else ""  # ratings come oldest first


def _target(message: TrainingMessage, policy: BuildPolicy, counts: Counter[str]) -> tuple[str, str] | None:
    """The answer to train on and where it came from, or None."""
    if message.status == "rejected":
        counts["rejected_by_curator"] += 1
        return None
    if message.status == "approved":
        return message.answer or message.content, f"approved_{message.source or 'reply'}"
    label = _label(message)
    if label > 0 and policy.train_on_unreviewed_thumbs_up:
        return _correction(message) or message.content, "unreviewed_thumbs_up"
    if message.ratings:
        counts["not_approved"] += 1
    return None


def _conversation_examples(
    conversation: TrainingConversation, policy: BuildPolicy, clean: TextCleaner, counts: Counter[str]
) -> tuple[list[Example], list[Example], list[Example]]:
    by_id = {m.id: m for m in conversation.messages}
    texts: dict[int, str] = {}
    system = clean(conversation.system_prompt) if conversation.system_prompt.strip() else ""

    def text(message_id: int) -> str:
        if message_id not in texts:  # cleaned once, in message order (placeholders number in reading order)
            texts[message_id] = clean(by_id[message_id].content)
        return texts[message_id]

    def path(message: TrainingMessage) -> list[TrainingMessage]:
        before: list[TrainingMessage] = []
        parent = message.parent_id
        while parent is not None and parent in by_id:
            before.append(by_id[parent])
            parent = by_id[parent].parent_id
        return before[::-1]

    def prompt(context: list[TrainingMessage], *, weights: bool) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        for m in context:
            item: dict[str, Any] = {"role": m.role, "content": text(m.id)}
            if weights and m.role == "assistant":
                item["weight"] = 0
            messages.append(item)
        return messages

    sft: list[Example] = []
    dpo: list[Example] = []
    kto: list[Example] = []
    replies = [m for m in conversation.messages if m.role == "assistant" and (m.ratings or m.status != "pending")]
    for message in replies:  # placeholders number in reading order: clean each path first
        for m in path(message):
            text(m.id)
        text(message.id)
    for message in replies:
        context = path(message)
        if not any(m.role == "user" for m in context):
            counts["dropped_no_question"] += 1
            continue
        ids = [m.id for m in context]
        found = _target(message, policy, counts)
        if found is not None:
            answer, source = found
            target = clean(answer) if answer != message.content else text(message.id)
            row = {"messages": prompt(context, weights=True) + [{"role": "assistant", "content": target, "weight": 1}]}
            sft.append(Example(conversation.id, message.id, ids + [message.id], row, source))
        if message.status == "rejected":
            continue
        plain = prompt(context, weights=False)
        original = text(message.id)
        label = _label(message)
        if label:
            kto.append(_kto(conversation.id, message.id, ids, plain, original, label > 0))
        if message.status == "approved" and message.answer and message.answer != message.content:
            curated = clean(message.answer)
            if curated and curated != original:
                dpo.append(_dpo(conversation.id, message.id, ids, plain, curated, original))
                kto.append(_kto(conversation.id, message.id, ids, plain, curated, True))
    for chosen, rejected in _sibling_pairs(replies):
        context = path(chosen)
        if not any(m.role == "user" for m in context):
            continue
        chosen_text = clean(chosen.answer) if chosen.status == "approved" and chosen.answer else text(chosen.id)
        dpo.append(
            _dpo(conversation.id, chosen.id, [m.id for m in context] + [rejected.id],
                 prompt(context, weights=False), chosen_text, text(rejected.id))
        )
    return sft, dpo, kto


def _sibling_pairs(replies: list[TrainingMessage]) -> list[tuple[TrainingMessage, TrainingMessage]]:
    """Regenerated replies to the same message, one rated up and the other down (neither rejected)."""
    by_parent: dict[int | None, list[TrainingMessage]] = {}
    for message in replies:
        if message.status != "rejected":
            by_parent.setdefault(message.parent_id, []).append(message)
    pairs = []
    for siblings in by_parent.values():
        ups = [m for m in siblings if _label(m) > 0 or m.status == "approved"]
        downs = [m for m in siblings if _label(m) < 0 and m.status != "approved"]
        pairs += [(up, down) for up in ups for down in downs]
    return pairs


def _dpo(cid: int, target: int, ids: list[int], prompt: list[dict[str, Any]], chosen: str, rejected: str) -> Example:
    row = {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }
    return Example(cid, target, ids + [target], row, "dpo")


def _kto(cid: int, target: int, ids: list[int], prompt: list[dict[str, Any]], completion: str, label: bool) -> Example:
    row = {"prompt": prompt, "completion": [{"role": "assistant", "content": completion}], "label": label}
    return Example(cid, target, ids + [target], row, "kto")


# -- filters -----------------------------------------------------------------------------------


def _drop_empty(examples: list[Example], counts: Counter[str]) -> list[Example]:
    kept = [e for e in examples if e.row["messages"][-1]["content"].strip()]
    counts["dropped_empty"] = len(examples) - len(kept)
    return kept


_WORDS = re.compile(r"\w+")


def _deduplicate(examples: list[Example], counts: Counter[str], kind: str) -> list[Example]:
    """Drop exact duplicates, then near-exact ones (the same words, whatever the case, spacing and
    punctuation); the first in (conversation, message) order stays."""
    seen_exact: set[bytes] = set()
    seen_near: set[bytes] = set()
    kept = []
    for example in sorted(examples, key=lambda e: (e.conversation_id, e.target_id, e.message_ids)):
        exact = hashlib.blake2b(json.dumps(example.row, sort_keys=True).encode(), digest_size=16).digest()
        near = hashlib.blake2b(_near_key(example.row).encode(), digest_size=16).digest()
        if exact in seen_exact:
            counts[f"{kind}_duplicates_exact"] += 1
        elif near in seen_near:
            counts[f"{kind}_duplicates_near"] += 1
        else:
            kept.append(example)
        seen_exact.add(exact)
        seen_near.add(near)
    return kept


def _near_key(row: Row) -> str:
    parts = []
    for key in sorted(row):
        value = row[key]
        if isinstance(value, list):
            for message in value:
                parts.append(message["role"] + ":" + " ".join(_WORDS.findall(message["content"].casefold())))
        else:
            parts.append(f"{key}={value}")
    return "\n".join(parts)


def _measure(examples: list[Example], tokenizer: Tokenizer, messages_of) -> None:  # noqa: ANN001
    if not examples:
        return
    for example, length in zip(examples, tokenizer.lengths([messages_of(e) for e in examples]), strict=True):
        example.tokens = length


def _eval_conversations(examples: list[Example], policy: BuildPolicy) -> set[int]:
    """Conversations held out: those whose id hashes below eval_fraction, topped up (the next ones
    by hash) to min_eval_examples rows while at most half the rows and one conversation go to eval."""
    rows_per: Counter[int] = Counter(e.conversation_id for e in examples)
    ranked = sorted(rows_per, key=lambda cid: (split_point(cid), cid))
    chosen = {cid for cid in ranked if split_point(cid) < policy.eval_fraction}
    in_eval = sum(rows_per[cid] for cid in chosen)
    total = sum(rows_per.values())
    for cid in ranked:
        if in_eval >= policy.min_eval_examples or policy.eval_fraction == 0:
            break
        if cid in chosen:
            continue
        if in_eval + rows_per[cid] > total / 2 or len(chosen) + 1 >= len(ranked):
            break
        chosen.add(cid)
        in_eval += rows_per[cid]
    return chosen


def split_point(conversation_id: int) -> float:
    """Where a conversation falls in [0, 1): a hash of its id, the same on every machine."""
    digest = hashlib.sha256(f"assistant-split:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def token_stats(lengths: list[int]) -> dict[str, Any]:
    if not lengths:
        return {"count": 0}
    ordered = sorted(lengths)

    def quantile(q: float) -> int:
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]

    return {
        "count": len(ordered),
        "total": sum(ordered),
        "min": ordered[0],
        "p50": quantile(0.5),
        "p90": quantile(0.9),
        "p99": quantile(0.99),
        "max": ordered[-1],
        "histogram": histogram(ordered),
    }


def histogram(lengths: list[int], bins: int = 12) -> list[list[int]]:
    """[[lower, upper, count], ...]: `bins` equal bins from 0 to the longest, lower bound included."""
    if not lengths:
        return []
    width = max(1, math.ceil((max(lengths) + 1) / bins))
    counts = Counter(length // width for length in lengths)
    return [[i * width, (i + 1) * width, counts.get(i, 0)] for i in range(max(counts) + 1)]
