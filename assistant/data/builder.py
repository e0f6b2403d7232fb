"""The dataset builder: a pure, deterministic function from a snapshot of the log to training rows.

Input: the conversations with rated, reviewed or judged replies (`Store.training_conversations()`, in
increasing id order), the build policy (from the settings) and a tokenizer to measure lengths.
Output: SFT rows in TRL's conversational format, DPO and KTO preference rows, each handed to a sink
as its JSONL line as soon as it is final, and a manifest of what was kept and why the rest was not.
Splits (`SPLITS`): "train" and "eval" (SFT), "dpo" and "kto" (the training side's preference rows),
"dpo_eval" and "kto_eval" (the held-out side's, in the same formats, for evaluation).
The same input always gives the same output; nothing here reads a clock or a file.

- SFT: one row per approved reply (and, when the policy allows, per unreviewed thumbs-up): the
  conversation up to it as context, the curated answer as the target. Only the target trains:
  earlier assistant turns carry `"weight": 0` (the OpenAI fine-tuning convention, honoured by the
  training chat template); an earlier turn that was approved has its own row.
- DPO: a curated answer against the reply it corrects; regenerated siblings rated up and down; the
  reply picked in a blind A/B judgement against its sibling (nothing for a tie or both bad).
- KTO: rated replies with their rating as the label; curated answers as desirable.
- A rejected reply is never trained on, in any file.
- Split by conversation, from a hash of its id: no conversation is on both sides. A held-out
  conversation's preference rows go to dpo_eval/kto_eval (counted as `preference_held_out`), never
  to dpo/kto. A conversation with preference rows only (thumbs, nothing approved) is held out by the
  same hash, so that the gate scores a preference stage on thumbs it did not train on.

Rows stream: conversations are read one at a time, rows are deduplicated against the keys of the
rows before them (never the rows themselves), measured in batches (each distinct text tokenised
once) and written out; what stays in memory is the dedup keys and, per row, the ids and token count
the manifest lists. A row's JSON line is assembled from each message's JSON, encoded once per
conversation, and is byte for byte `json.dumps(row, ensure_ascii=False, sort_keys=True)`
(tests/data/test_snapshot.py checks it). Conversations held out for evaluation are known as each
one is read (its id's hash), except when the evaluation split has to be topped up to
`min_eval_examples` at the end: then the sink moves those conversations' rows (`resplit`: train to
eval, dpo to dpo_eval, kto to kto_eval).
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import json
import math
import re
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

from assistant.data.clean import TextCleaner, special_token_pattern
from assistant.data.pii import PLACEHOLDER, Scrubber
from assistant.errors import DatasetError
from assistant.settings import Settings
from assistant.store.records import TrainingConversation, TrainingMessage
from assistant.text import one_line

FORMAT_VERSION = 2  # 2: the held-out conversations' preference rows kept (dpo_eval, kto_eval), not dropped
SPLITS = ("train", "eval", "dpo", "kto", "dpo_eval", "kto_eval")
HELD_OUT = {"train": "eval", "dpo": "dpo_eval", "kto": "kto_eval"}  # where a held-out conversation's rows go
CORRECTIONS = frozenset({"approved_correction", "approved_edit"})  # sources of answers a curator wrote
Row = dict[str, Any]
Turn = tuple[str, str, int | None]  # role, cleaned text, weight (None: the message has no "weight" key)
TemplateKey = tuple[tuple[str, int | None], ...]  # (role, weight) of each message of a row

BATCH_TEXTS = 4096  # new distinct texts per batch of rows measured (bounds the rows waiting)
CACHE_TEXTS = 100_000  # token counts kept for texts seen before (cleared beyond: the output is the same)
_json_string: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]  # what json.dumps uses


class Tokenizer(Protocol):
    """What the builder needs of the model's tokenizer."""

    name: str
    special_tokens: Sequence[str]

    def content_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text on its own (no special tokens added)."""
        ...

    def template(self, key: TemplateKey) -> tuple[int, tuple[int, ...]]:
        """The chat template's own tokens for messages with these roles and weights, and the indexes of
        the messages whose contents it shows; a row's length is that plus its shown contents' tokens."""
        ...



def placeholder_advice(counts: dict[str, Any]) -> str | None:
    """What to do when training answers hold placeholders (a snapshot's counts): the model would learn
    to write "<EMAIL_1>" to customers."""
    found = counts.get("answers_with_placeholders", 0)
    if not found:
        return None
    return (
        f"{found} training answer{'s' if found != 1 else ''} hold{'s' if found == 1 else ''} PII placeholders "
        "(<EMAIL_1>, <PHONE_1>, ...), which the model would learn to write: list your organisation's own "
        "addresses, domains and numbers in pii_allow, or correct those answers (`assistant review`)"
    )

@dataclass(frozen=True)
class BuildPolicy:
    train_on_unreviewed_thumbs_up: bool = False
    eval_fraction: float = 0.1
    min_eval_examples: int = 8
    max_length: int = 2048
    max_truncated_fraction: float = 0.05
    pii_patterns: tuple[tuple[str, str], ...] = ()
    pii_allow: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> BuildPolicy:
        return cls(
            train_on_unreviewed_thumbs_up=settings.train_on_unreviewed_thumbs_up,
            eval_fraction=settings.eval_fraction,
            min_eval_examples=settings.min_eval_examples,
            max_length=settings.max_length,
            max_truncated_fraction=settings.max_truncated_fraction,
            pii_patterns=settings.pii_patterns,
            pii_allow=settings.pii_allow,
        )


@dataclass(slots=True)
class Example:
    """A row on its way out, with where it came from. `sections` are the row's keys in sorted order,
    each with its messages (or, for KTO's label, a bool)."""

    kind: str  # sft, dpo or kto
    conversation_id: int
    target_id: int
    message_ids: list[int]
    sections: tuple[tuple[str, Any], ...]
    source: str = ""
    tokens: int = 0

    def sequences(self) -> list[tuple[Turn, ...]]:
        """The message sequences whose length counts (DPO: the longer of its two sides)."""
        values = dict(self.sections)
        if self.kind == "sft":
            return [values["messages"]]
        if self.kind == "dpo":
            return [values["prompt"] + values["chosen"], values["prompt"] + values["rejected"]]
        return [values["prompt"] + values["completion"]]


class Sink(Protocol):
    """Where the rows go: each split's JSON lines in order, with the conversation each came from."""

    def add(self, split: str, conversation_id: int, line: str) -> None: ...

    def resplit(self, moved: frozenset[int]) -> None:
        """Move these conversations' rows from train, dpo and kto to eval, dpo_eval and kto_eval (see
        `resplit_rows`); called at most once, after the last `add`."""
        ...


class RowIndex:
    """Per split, the ids of each row the manifest lists (compact: millions of rows fit in little memory)."""

    def __init__(self) -> None:
        self.conversation = {split: array("q") for split in SPLITS}
        self.target = {split: array("q") for split in SPLITS}
        self.ids_end = {split: array("q") for split in SPLITS}
        self.ids = {split: array("q") for split in SPLITS}
        self.tokens = {split: array("q") for split in SPLITS}

    def add(self, split: str, example: Example) -> None:
        self.conversation[split].append(example.conversation_id)
        self.target[split].append(example.target_id)
        self.ids[split].extend(example.message_ids)
        self.ids_end[split].append(len(self.ids[split]))
        self.tokens[split].append(example.tokens)

    def __len__(self) -> int:
        return sum(len(c) for c in self.conversation.values())

    def count(self, split: str) -> int:
        return len(self.conversation[split])

    def entries(self, split: str) -> Iterator[tuple[int, int, array]]:
        """(conversation_id, target_id, message_ids) of each row of a split, in order."""
        ids, start = self.ids[split], 0
        for cid, target, end in zip(self.conversation[split], self.target[split], self.ids_end[split], strict=True):
            yield cid, target, ids[start:end]
            start = end

    def as_lists(self) -> dict[str, list[dict[str, Any]]]:
        return {
            split: [{"conversation_id": c, "target_id": t, "message_ids": list(ids)} for c, t, ids in self.entries(split)]
            for split in SPLITS
        }

    def resplit(self, moved: frozenset[int]) -> RowIndex:
        moved_index = RowIndex()
        for split, rows in resplit_rows(
            {split: lambda split=split: ((cid, (split, i)) for i, cid in enumerate(self.conversation[split])) for split in SPLITS},
            moved,
        ).items():
            for old_split, i in rows:
                start = self.ids_end[old_split][i - 1] if i else 0
                moved_index.conversation[split].append(self.conversation[old_split][i])
                moved_index.target[split].append(self.target[old_split][i])
                moved_index.ids[split].extend(self.ids[old_split][start : self.ids_end[old_split][i]])
                moved_index.ids_end[split].append(len(moved_index.ids[split]))
                moved_index.tokens[split].append(self.tokens[old_split][i])
        return moved_index


T = TypeVar("T")


def resplit_rows(rows: dict[str, Callable[[], Iterable[tuple[int, T]]]], moved: frozenset[int]) -> dict[str, Iterator[T]]:
    """Each split's items after the conversations in `moved` go to the held-out side: their rows of
    train, dpo and kto merged into eval, dpo_eval and kto_eval (`HELD_OUT`) in conversation order.
    `rows` opens a split's (conversation_id, item) pairs, in increasing conversation order; each is
    opened at most twice."""

    def kept(split: str) -> Iterator[T]:
        return (item for cid, item in rows[split]() if cid not in moved)

    def merged(split: str) -> Iterator[T]:
        moving = ((cid, item) for cid, item in rows[split]() if cid in moved)
        return (item for _, item in heapq.merge(rows[HELD_OUT[split]](), moving, key=lambda pair: pair[0]))

    out: dict[str, Iterator[T]] = {}
    for split, held_out in HELD_OUT.items():
        out[split], out[held_out] = kept(split), merged(split)
    return {split: out[split] for split in SPLITS}


@dataclass
class Built:
    """What a build leaves once every row went to the sink: the manifest (its "rows" as a RowIndex,
    see `manifest_rows`) and the conversations that contributed rows."""

    manifest: dict[str, Any]
    conversation_ids: list[int]


@dataclass
class Dataset:
    train: list[Row]
    eval: list[Row]
    dpo: list[Row]
    kto: list[Row]
    dpo_eval: list[Row]
    kto_eval: list[Row]
    manifest: dict[str, Any]
    conversation_ids: list[int] = field(default_factory=list)


class MemorySink:
    """Rows kept in memory, as lines (for `build_dataset` and small builds)."""

    def __init__(self) -> None:
        self.lines: dict[str, list[tuple[int, str]]] = {split: [] for split in SPLITS}

    def add(self, split: str, conversation_id: int, line: str) -> None:
        self.lines[split].append((conversation_id, line))

    def resplit(self, moved: frozenset[int]) -> None:
        old = self.lines
        new = resplit_rows({split: lambda split=split: [(cid, (cid, line)) for cid, line in old[split]] for split in SPLITS}, moved)
        self.lines = {split: list(items) for split, items in new.items()}


def build_dataset(conversations: Iterable[TrainingConversation], policy: BuildPolicy, tokenizer: Tokenizer) -> Dataset:
    """The whole dataset in memory: rows as dicts, the manifest with its rows listed."""
    sink = MemorySink()
    built = build(conversations, policy, tokenizer, sink)
    rows = {split: [json.loads(line) for _, line in sink.lines[split]] for split in SPLITS}
    manifest = {**built.manifest, "rows": built.manifest["rows"].as_lists()}
    return Dataset(**rows, manifest=manifest, conversation_ids=built.conversation_ids)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The build makes millions of short-lived objects and no cycles: the cyclic collector only costs time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build(conversations: Iterable[TrainingConversation], policy: BuildPolicy, tokenizer: Tokenizer, sink: Sink) -> Built:
    """Every row to `sink` as it is final; the manifest once all are."""
    with _gc_paused(), ThreadPoolExecutor(1, thread_name_prefix="dataset-tokenize") as tokenizing:
        builder = _Builder(policy, tokenizer, sink, tokenizing)
        for conversation in conversations:
            builder.add(conversation)
        return builder.finish()


# -- the stream --------------------------------------------------------------------------------


@dataclass
class _Batch:
    """Conversations' rows waiting for the token counts of their new texts (counted on the worker)."""

    cache_generation: int  # the token cache's when the batch began (cleared since: look texts up again)
    texts: list[str] = field(default_factory=list)
    counted: Future[list[int]] | None = None
    conversations: list[tuple[TrainingConversation, list[tuple[Example, str]]]] = field(default_factory=list)


class _Rows:
    """One conversation's rows as JSON lines and dedup keys, each message's part made once."""

    def __init__(self) -> None:
        self.parts: dict[Turn, tuple[str, bytes, bytes]] = {}  # a message's JSON, its digest, its words' digest
        self.words: dict[str, str] = {}

    def _part(self, turn: Turn) -> tuple[str, bytes, bytes]:
        role, text, weight = turn
        weight_part = "" if weight is None else f', "weight": {weight}'
        fragment = f'{{"content": {_json_string(text)}, "role": {_json_string(role)}{weight_part}}}'
        if text not in self.words:
            self.words[text] = " ".join(_WORDS.findall(text.casefold()))
        self.parts[turn] = part = (fragment, _digest(fragment), _digest(role + ":" + self.words[text]))
        return part

    def row(self, example: Example) -> tuple[str, bytes, bytes]:
        """The row's line, `json.dumps(row, ensure_ascii=False, sort_keys=True)` made of each message's
        JSON, and its keys. Exact: the sequence of its messages' digests (the sections of a kind always
        have the same shape, so the sequence tells rows apart). Near: each message's role and words,
        as `role:words` lines (the label as `label=True`): the same words whatever the case, spacing
        and punctuation."""
        parts = self.parts
        sections, exact, near = [], [], []
        for key, value in example.sections:
            if value is True or value is False:
                sections.append(f'"{key}": {"true" if value else "false"}')
                exact.append(b"\1" if value else b"\0")
                near.append(_digest(f"{key}={value}"))
                continue
            fragments = []
            for turn in value:
                fragment, exact_digest, near_digest = parts.get(turn) or self._part(turn)
                fragments.append(fragment)
                exact.append(exact_digest)
                near.append(near_digest)
            sections.append(f'"{key}": [' + ", ".join(fragments) + "]")
        line = "{" + ", ".join(sections) + "}\n"
        return line, _digest_bytes(b"".join(exact)), _digest_bytes(b"".join(near))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()[:16]


def _digest_bytes(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:16]


_WORDS = re.compile(r"\w+")


class _NotPersonal:
    """The scrubber of a conversation that holds no personal data (the sample conversations: their
    addresses are the demo company's, which the model should learn as they are)."""

    counts: Counter[str] = Counter()

    def scrub(self, text: str) -> str:
        return text


_NOT_PERSONAL = _NotPersonal()


class _Builder:
    def __init__(self, policy: BuildPolicy, tokenizer: Tokenizer, sink: Sink, tokenizing: ThreadPoolExecutor) -> None:
        self.policy = policy
        self.tokenizer = tokenizer
        self.sink = sink
        self.tokenizing = tokenizing
        self.counts: Counter[str] = Counter()
        self.pii: Counter[str] = Counter()
        self.scrubber = Scrubber(dict(policy.pii_patterns), policy.pii_allow)
        self.pii_allowed: Counter[str] = Counter()
        self.placeholder_answers = 0  # training answers that hold a placeholder: the model would learn to write it
        self.special = special_token_pattern(tokenizer.special_tokens)
        self.seen = {kind: (set(), set()) for kind in ("sft", "dpo", "kto")}  # exact and near keys
        self.index = RowIndex()
        self.sources: Counter[str] = Counter()
        self.sft_rows: dict[int, int] = {}  # conversation -> SFT rows kept (for topping up eval)
        self.eval_ids: set[int] = set()
        self.replays = False  # sample conversations (negative ids, read first) are in the dataset
        self.keep_in_train: set[int] = set()  # the team's conversations with corrections, when it replays
        self.considered = 0  # SFT rows measured against max_length
        self.too_long: list[dict[str, Any]] = []  # which ones were longer, in row order
        self.last_id: int | None = None
        self.cache_generation = 0
        self.batch = _Batch(0)
        self.new_texts: dict[str, None] = {}
        self.counting: set[str] = set()  # texts of batches on the worker
        self.waiting: deque[_Batch] = deque()
        self.token_cache: dict[str, int] = {}
        self.templates: dict[TemplateKey, tuple[int, tuple[int, ...]]] = {}
        for name in ("dropped_empty", "dropped_too_long", "preference_dropped_too_long", "preference_held_out"):
            self.counts[name] = 0  # always in the manifest, zero or not

    def add(self, conversation: TrainingConversation) -> None:
        if self.last_id is not None and conversation.id <= self.last_id:
            raise ValueError("the builder takes conversations in increasing id order")
        self.last_id = conversation.id
        self.counts["conversations_read"] += 1
        scrub = self.scrubber.conversation() if conversation.personal else _NOT_PERSONAL
        sft, dpo, kto = _conversation_examples(conversation, self.policy, TextCleaner(self.special, scrub, self.counts), self.counts)
        self.pii.update(scrub.counts)
        self.pii_allowed.update(getattr(scrub, "allowed", ()))
        kept = [e for e in sft if e.sections[0][1][-1][1].strip()]
        self.counts["dropped_empty"] += len(sft) - len(kept)
        rows = _Rows()
        examples = []
        for kind, group in (("sft", kept), ("dpo", dpo), ("kto", kto)):
            unique = self._deduplicate(kind, group, rows)
            if kind == "sft":
                self.placeholder_answers += sum(1 for e, _ in unique if PLACEHOLDER.search(e.sections[0][1][-1][1]))
            examples += unique
        for text in rows.words:
            if text not in self.token_cache and text not in self.counting:
                self.new_texts[text] = None
        self.batch.conversations.append((conversation, examples))
        if len(self.new_texts) >= BATCH_TEXTS:
            self._send()

    def _deduplicate(self, kind: str, examples: list[Example], rows: _Rows) -> list[tuple[Example, str]]:
        """Drop exact duplicates, then near-exact ones; the first in (conversation, message) order
        stays. Returns the rest with their lines."""
        seen_exact, seen_near = self.seen[kind]
        kept = []
        for example in sorted(examples, key=lambda e: (e.target_id, e.message_ids)):
            line, exact, near = rows.row(example)
            if exact in seen_exact:
                self.counts[f"{kind}_duplicates_exact"] += 1
            elif near in seen_near:
                self.counts[f"{kind}_duplicates_near"] += 1
            else:
                kept.append((example, line))
            seen_exact.add(exact)
            seen_near.add(near)
        return kept

    def _send(self) -> None:
        """The batch's new texts to the worker; rows of the batch before it out once that is counted
        (one batch is tokenised while the next is prepared)."""
        batch, self.batch = self.batch, _Batch(self.cache_generation)
        batch.texts = list(self.new_texts)
        self.new_texts = {}
        if batch.texts:
            batch.counted = self.tokenizing.submit(self.tokenizer.content_lengths, batch.texts)
            self.counting.update(batch.texts)
        self.waiting.append(batch)
        while len(self.waiting) > 1:
            self._receive()

    def _receive(self) -> None:
        """The oldest batch's rows measured, filtered, split and handed out."""
        batch = self.waiting.popleft()
        if batch.counted is not None:
            self.token_cache.update(zip(batch.texts, batch.counted.result(), strict=True))
            self.counting.difference_update(batch.texts)
        if batch.cache_generation != self.cache_generation:  # texts it found counted may be gone
            missing = list(
                {text: None for _, examples in batch.conversations for example, _ in examples
                 for sequence in example.sequences() for _, text, _ in sequence if text not in self.token_cache}
            )
            self.token_cache.update(zip(missing, self.tokenizer.content_lengths(missing), strict=True))
        for conversation, examples in batch.conversations:
            for example, _ in examples:
                example.tokens = max(self._length(sequence) for sequence in example.sequences())
            self._emit(conversation, examples)
        if len(self.token_cache) > CACHE_TEXTS:
            self.token_cache.clear()
            self.cache_generation += 1

    def _length(self, sequence: tuple[Turn, ...]) -> int:
        key = tuple([(role, weight) for role, _, weight in sequence])
        if key not in self.templates:
            self.templates[key] = self.tokenizer.template(key)
        overhead, shown = self.templates[key]
        cache = self.token_cache
        return overhead + sum([cache[sequence[i][1]] for i in shown])

    def _emit(self, conversation: TrainingConversation, examples: list[tuple[Example, str]]) -> None:
        conversation_id = conversation.id
        max_length = self.policy.max_length
        sft = []
        preference = []
        for example, line in examples:
            if example.kind == "sft":
                self.considered += 1
                if example.tokens > max_length:
                    self._drop_too_long(conversation, example)
                else:
                    sft.append((example, line))
            elif example.tokens > max_length:
                self.counts["preference_dropped_too_long"] += 1
            else:
                preference.append((example, line))
        # A dataset that replays the sample conversations evaluates on its held-out samples: the team's
        # corrections all go to training there (one held out would be a correction never learned).
        if conversation_id > 0 and self.replays and any(e.source in CORRECTIONS for e, _ in sft):
            self.keep_in_train.add(conversation_id)
        # Conversations with only preference rows (thumbs, no approved answer) are held out alike: the gate
        # scores a preference stage on thumbs it did not train on.
        held_out = (
            bool(sft or preference)
            and conversation_id not in self.keep_in_train
            and split_point(conversation_id) < self.policy.eval_fraction
        )
        if conversation_id < 0 and sft:
            self.replays = True
        if sft and conversation_id not in self.keep_in_train:
            self.sft_rows[conversation_id] = len(sft)
        if held_out:
            self.eval_ids.add(conversation_id)
            self.counts["preference_held_out"] += len(preference)
        for example, line in sft:
            self.sources[example.source] += 1
            self._add("eval" if held_out else "train", example, line)
        for example, line in preference:
            self._add(HELD_OUT[example.kind] if held_out else example.kind, example, line)

    def _drop_too_long(self, conversation: TrainingConversation, example: Example) -> None:
        """Dropped, and remembered so that a curator can find it: its title cleaned like any text
        (numbered placeholders of its own, not counted)."""
        self.counts["dropped_too_long"] += 1
        title = TextCleaner(self.special, self.scrubber.conversation(), Counter())(conversation.title)
        self.too_long.append(
            {"conversation_id": conversation.id, "message_id": example.target_id, "title": title, "tokens": example.tokens}
        )

    def _add(self, split: str, example: Example, line: str) -> None:
        self.index.add(split, example)
        self.sink.add(split, example.conversation_id, line)

    def finish(self) -> Built:
        self._send()
        while self.waiting:
            self._receive()
        policy = self.policy
        dropped = len(self.too_long)
        if too_many_too_long(dropped, self.considered, policy.max_truncated_fraction):
            longest = sorted(self.too_long, key=lambda d: (-d["tokens"], d["conversation_id"], d["message_id"]))
            named = ", ".join(describe_too_long(d) for d in longest[:NAMED])
            more = f" and {dropped - NAMED} more" if dropped > NAMED else ""
            raise DatasetError(
                f"{dropped} of {self.considered} examples ({dropped / self.considered:.1%}) are longer than "
                f"max_length={policy.max_length} tokens and would be truncated; the longest: {named}{more}",
                hint=f"allowed: {policy.max_truncated_fraction:.1%}; a curator can reject or edit them "
                "(`assistant review`), or raise max_length or max_truncated_fraction",
            )
        topped_up = frozenset(_eval_conversations(self.sft_rows, self.eval_ids, policy) - self.eval_ids)
        index = self.index
        if topped_up:
            moving = sum(1 for split in ("dpo", "kto") for cid in index.conversation[split] if cid in topped_up)
            self.counts["preference_held_out"] += moving  # to dpo_eval and kto_eval
            index = index.resplit(topped_up)
            self.sink.resplit(topped_up)
        manifest = {
            "format_version": FORMAT_VERSION,
            "policy": asdict(policy),
            "tokenizer": self.tokenizer.name,
            "counts": {
                "rows": {split: index.count(split) for split in SPLITS},
                "conversations": {split: len(set(index.conversation[split])) for split in ("train", "eval")},
                "sources": dict(sorted(self.sources.items())),
                "filters": dict(sorted(self.counts.items())),
                "pii_replaced": dict(sorted(self.pii.items())),
                "pii_allowed": dict(sorted(self.pii_allowed.items())),
                "answers_with_placeholders": self.placeholder_answers,
            },
            "tokens": {split: token_stats(list(index.tokens[split])) for split in ("train", "eval")},
            "rows": index,
        }
        if self.too_long:  # only then: the manifest (and the snapshot id) of every other build stays as it was
            manifest["dropped_too_long"] = self.too_long
        used = sorted({cid for split in SPLITS for cid in index.conversation[split]})
        return Built(manifest, used)


NAMED = 3  # over-long examples a failed build names


def too_many_too_long(dropped: int, considered: int, allowed: float) -> bool:
    """Whether examples longer than max_length fail the build: more than `allowed` of them, and more
    than one (a single one is dropped and named, never fatal, however small the dataset)."""
    return dropped > 1 and dropped / considered > allowed


def describe_too_long(dropped: dict[str, Any]) -> str:
    """One over-long example, for people: which conversation (id and title) and message, how long."""
    title = one_line(dropped["title"], 40)
    return f'conversation {dropped["conversation_id"]} "{title}" message {dropped["message_id"]} ({dropped["tokens"]} tokens)'


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

    def prompt(context: list[TrainingMessage], *, weights: bool) -> tuple[Turn, ...]:
        turns: list[Turn] = [("system", system, None)] if system else []
        for m in context:
            turns.append((m.role, text(m.id), 0 if weights and m.role == "assistant" else None))
        return tuple(turns)

    sft: list[Example] = []
    dpo: list[Example] = []
    kto: list[Example] = []
    cid = conversation.id
    replies = [m for m in conversation.messages if m.role == "assistant" and (m.ratings or m.status != "pending")]
    # Placeholders number in reading order: clean each path first (judged replies' too, in message order).
    judged = {message_id for left, right, _ in conversation.judgements for message_id in (left, right)}
    judged.update(m.id for m in replies)
    for message in [m for m in conversation.messages if m.id in judged] if conversation.judgements else replies:
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
            turns = prompt(context, weights=True) + (("assistant", target, 1),)
            sft.append(Example("sft", cid, message.id, ids + [message.id], (("messages", turns),), source))
        if message.status == "rejected":
            continue
        plain = prompt(context, weights=False)
        original = text(message.id)
        label = _label(message)
        if label:
            kto.append(_kto(cid, message.id, ids, plain, original, label > 0))
        if message.status == "approved" and message.answer and message.answer != message.content:
            curated = clean(message.answer)
            if curated and curated != original:
                dpo.append(_dpo(cid, message.id, ids, plain, curated, original))
                kto.append(_kto(cid, message.id, ids, plain, curated, True))
    for chosen, rejected in _sibling_pairs(replies) + _judged_pairs(conversation, by_id, counts):
        context = path(chosen)
        if not any(m.role == "user" for m in context):
            continue
        chosen_text = clean(chosen.answer) if chosen.status == "approved" and chosen.answer else text(chosen.id)
        dpo.append(
            _dpo(cid, chosen.id, [m.id for m in context] + [rejected.id],
                 prompt(context, weights=False), chosen_text, text(rejected.id))
        )
    return sft, dpo, kto


def _judged_pairs(
    conversation: TrainingConversation, by_id: dict[int, TrainingMessage], counts: Counter[str]
) -> list[tuple[TrainingMessage, TrainingMessage]]:
    """Blind A/B judgements as (picked, other), oldest first: nothing for a tie or both bad, nor when a
    curator rejected either reply (counted as `judged_reply_rejected`)."""
    pairs = []
    for left_id, right_id, outcome in conversation.judgements:
        if outcome not in ("left", "right") or left_id not in by_id or right_id not in by_id:
            continue
        chosen, rejected = (by_id[left_id], by_id[right_id]) if outcome == "left" else (by_id[right_id], by_id[left_id])
        if chosen.status == "rejected" or rejected.status == "rejected":
            counts["judged_reply_rejected"] += 1
            continue
        pairs.append((chosen, rejected))
    return pairs


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


def _dpo(cid: int, target: int, ids: list[int], prompt: tuple[Turn, ...], chosen: str, rejected: str) -> Example:
    sections = (("chosen", (("assistant", chosen, None),)), ("prompt", prompt), ("rejected", (("assistant", rejected, None),)))
    return Example("dpo", cid, target, ids + [target], sections, "dpo")


def _kto(cid: int, target: int, ids: list[int], prompt: tuple[Turn, ...], completion: str, label: bool) -> Example:
    sections = (("completion", (("assistant", completion, None),)), ("label", label), ("prompt", prompt))
    return Example("kto", cid, target, ids + [target], sections, "kto")


# -- the split and statistics ------------------------------------------------------------------


def _eval_conversations(rows_per: dict[int, int], hashed: set[int], policy: BuildPolicy) -> set[int]:
    """Conversations held out: those whose id hashes below eval_fraction (`hashed`, among those with
    rows), topped up (the next ones by hash) to min_eval_examples rows while at most half the rows and
    one conversation go to eval. (`hashed` may hold conversations with preference rows only: no SFT rows
    to count.)"""
    chosen = {cid for cid in hashed if cid in rows_per}
    in_eval = sum(rows_per[cid] for cid in chosen)
    if in_eval >= policy.min_eval_examples or policy.eval_fraction == 0:
        return chosen
    ranked = sorted(rows_per, key=lambda cid: (split_point(cid), cid))
    total = sum(rows_per.values())
    for cid in ranked:
        if in_eval >= policy.min_eval_examples:
            break
        if cid in chosen:
            continue
        if in_eval + rows_per[cid] > total / 2 or len(chosen) + 1 >= len(ranked):
            break
        chosen.add(cid)
        in_eval += rows_per[cid]
    return chosen | set(hashed)


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
