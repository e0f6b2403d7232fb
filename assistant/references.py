"""Curated answers to similar questions, shown to the model with each new question.

A small model does not learn 200 distinct answers from one pass over them (docs/BENCHMARKS.md,
issue 12): what the team approved reaches a reply sooner when the model is shown the closest
curated answers beside the question. They come from the newest dataset snapshot that holds no
erased data (`data.snapshot.find_snapshot`): what a retrain learns from, already curated, cleaned and
scrubbed of personal data (`pii_allow` applies), the replayed sample conversations included. Each of
its SFT rows gives one (question, answer): the row's target answer and the user turn before it.

The index is an in-memory SQLite FTS5 table (BM25, Porter stemming), built in this process from
the snapshot's files and rebuilt when a newer snapshot appears or its files change or go (`forget`
deletes the files of a snapshot that held erased text); nothing is written to the data dir. A
question is matched by its words less common ones; a row must share at least two of them (or the
question's only one) to be shown. Thread-safe: the chat asks from its reply workers.
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.engine.base import ChatMessage
from assistant.errors import AssistantError
from assistant.jsonl import read_jsonl

log = logging.getLogger(__name__)

AUTO_COUNT = 2  # references shown with a question when `references` is "auto" and the model is not the demo model
MAX_CHARS = 3000  # the references' text with a question, at most (about 750 tokens)
MAX_ANSWER_CHARS = 1200  # a longer curated answer is not shown: it would crowd out the others
HEADER = (
    "Approved answers to similar questions asked before. Use the facts in them where they answer the "
    "question; answer in your own words."
)
_STOP = frozenset(
    """a about after again all also am an and any are as at be been before being but by can could did do
    does doing don't done for from get got had has have having he her here hers him his how i i'm if in
    into is it it's its just me more most my no nor not now of off on once only or other our ours out over
    own please same she should so some such than thank thanks that the their them then there these they
    this those through to too under until up very was we what when where which while who whom why will with
    would you your yours hi hello hey ok okay""".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Reference:
    question: str
    answer: str


def terms(text: str) -> list[str]:
    """The words of `text` that a match counts: lowercased, without common words, in order, once each."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if len(word) > 1 and word not in _STOP and not word.isdigit():
            seen.setdefault(word, None)
    return list(seen)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def pairs_of(path: Path) -> list[Reference]:
    """(question, answer) of each SFT row of a snapshot file: the row's last message, an assistant's,
    and the user message before it."""
    found = []
    for row, _ in read_jsonl(path):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or len(messages) < 2:
            continue
        answer, question = messages[-1], messages[-2]
        if not (isinstance(answer, dict) and isinstance(question, dict)):
            continue
        if answer.get("role") != "assistant" or question.get("role") != "user":
            continue
        a, q = str(answer.get("content") or "").strip(), str(question.get("content") or "").strip()
        if a and q and len(a) <= MAX_ANSWER_CHARS:
            found.append(Reference(q, a))
    return found


class Index:
    """An FTS5 index of references, in memory."""

    def __init__(self, references: Sequence[Reference]) -> None:
        unique = list(dict.fromkeys(references))
        self.size = len(unique)
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE refs USING fts5(question, answer, tokenize='porter unicode61 remove_diacritics 2')")
        self._db.executemany("INSERT INTO refs(question, answer) VALUES (?, ?)", [(r.question, r.answer) for r in unique])

    def find(self, question: str, count: int) -> list[Reference]:
        """The `count` best matches of `question`, best first, each sharing enough of its words."""
        words = terms(question)[:64]
        if not words or count <= 0:
            return []
        query = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        rows = self._db.execute(
            "SELECT question, answer FROM refs WHERE refs MATCH ? ORDER BY bm25(refs, 1.0, 0.5) LIMIT ?",
            (query, count * 4),
        ).fetchall()
        wanted = {_stem(w) for w in words}
        need = min(2, len(wanted))
        found = []
        for q, a in rows:
            shared = wanted & {_stem(w) for w in terms(q + " " + a)}
            if len(shared) >= need:
                found.append(Reference(q, a))
            if len(found) == count:
                break
        return found


def _signature(path: Path) -> tuple[int, int] | None:
    """What tells a file's contents changed (its modification time and size); None when it is gone."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class References:
    """The curated answers of a data dir's newest dataset snapshot, found for a question, from any thread
    (`store` is only reopened, never used itself)."""

    def __init__(self, store, data_dir: Path) -> None:  # noqa: ANN001
        self.store = store
        self.data_dir = data_dir
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._index: Index | None = None

    def _current(self) -> Index | None:
        from assistant.data.snapshot import find_snapshot

        store = self.store.reopen()  # a connection of this thread's own: the chat asks from its reply workers
        try:
            record, path = find_snapshot(store, self.data_dir)
        except AssistantError:
            self._key, self._index = None, None
            return None
        finally:
            store.close()
        files = [path / "train.jsonl", path / "eval.jsonl"]
        key = (record.id, *map(_signature, files))
        if key != self._key:
            try:
                self._index = snapshot_index(path)
            except Exception as exc:  # a damaged snapshot: said once, then answered without references
                log.warning("no references from dataset snapshot %s: %s", record.id, exc)
                self._index = None
            self._key = key
        return self._index

    def find(self, question: str, count: int) -> list[Reference]:
        if count <= 0:
            return []
        with self._lock:
            index = self._current()
            return index.find(question, count) if index is not None else []


def count_for(setting: str, is_demo: bool) -> int:
    """How many references a question gets: the `references` setting ("auto", "off" or a number); auto
    shows none to the demo model, which was built from the samples and answers them from memory."""
    if setting == "off":
        return 0
    if setting == "auto":
        return 0 if is_demo else AUTO_COUNT
    return int(setting)


def reference_text(references: Sequence[Reference]) -> str:
    """The references as the model sees them, within `MAX_CHARS`; empty for none."""
    blocks, used = [], 0
    for ref in references:
        block = f"Question: {ref.question}\nAnswer: {ref.answer}"
        if used + len(block) > MAX_CHARS:
            break
        blocks.append(block)
        used += len(block)
    return HEADER + "\n\n" + "\n\n".join(blocks) if blocks else ""


def _with_system(system: str | None, text: str) -> str:
    return system.rstrip() + "\n\n" + text if system and system.strip() else text


def grounded(messages: Sequence[ChatMessage], references: Sequence[Reference]) -> list[ChatMessage]:
    """`messages` with `references` added to the system prompt (one made when there is none)."""
    text = reference_text(references)
    if not text:
        return list(messages)
    if messages and messages[0].role == "system":
        return [ChatMessage("system", _with_system(messages[0].content, text)), *messages[1:]]
    return [ChatMessage("system", text), *messages]


def augment_rows(
    rows: Sequence[dict], index: Index, count: int, *, seed: int, max_chars: int, share: float = 1.0, own: float = 0.8
) -> list[dict]:
    """SFT rows for training with references, as the chat shows them: each row (a `share` of them, drawn
    with `seed`) gets the `count` closest references to its question in its system prompt, in random
    order; in a fifth of them (1 - `own`) the row's own answer is left out, so that the model learns to
    take the facts from a reference that answers the question, and to answer without one when none
    does. A row that would grow past `max_chars` stays as it is (a trainer truncates a long example
    from its end: the answer). Rows are copied, not changed.

    Measured with SmolLM2-135M (docs/BENCHMARKS.md): every row with references, 18 steps, teaches it to
    use them (0.57 ROUGE-L on the held-out rephrasings); half the rows, 24 steps in about the same
    time, 0.44."""
    rng = random.Random(seed)
    out = []
    for row in rows:
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or len(messages) < 2 or rng.random() >= share:
            out.append(row)
            continue
        question = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        answer = messages[-1].get("content", "")
        keep_own = rng.random() < own
        found = [r for r in index.find(str(question), count + 1) if keep_own or r.answer != answer][:count]
        rng.shuffle(found)
        text = reference_text(found)
        if not text or len(text) + sum(len(str(m.get("content", ""))) for m in messages) > max_chars:
            out.append(row)
            continue
        if messages[0].get("role") == "system":
            head = [{**messages[0], "content": _with_system(messages[0].get("content"), text)}]
            rest = messages[1:]
        else:
            head, rest = [{"role": "system", "content": text}], messages
        out.append({**row, "messages": [*head, *rest]})
    return out


def snapshot_index(dataset_dir: Path, splits: Sequence[str] = ("train", "eval")) -> Index:
    """The references of one dataset snapshot: its train and eval rows (a retrain: its train rows only,
    so that no held-out answer the gate scores is in a training prompt)."""
    paths = [dataset_dir / f"{split}.jsonl" for split in splits]
    return Index([r for path in paths if path.is_file() for r in pairs_of(path)])


def last_question(messages: Sequence[ChatMessage]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")
