"""Erasure across the data dir: what `assistant forget` and a chat's delete promise, that no byte of the
erased text (nor the erased user's name) remains anywhere in it.

The store deletes the rows, zeroes the freed pages, purges the search index and empties the
write-ahead log (store/curation.py `forget`). Here the copies outside the database go: the files of
every dataset snapshot that held the data (its record stays as a tombstone saying when and why),
staging directories a killed build or publish left, probe prompts taken from erased conversations in
adapters' gate reports (meta.json and the store's copy), and log lines quoting the text.

Must not import torch or textual.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from assistant.adapters import registry
from assistant.data import snapshot
from assistant.settings import DataDir, Settings
from assistant.store import Erasure, Store

REDACTED = "(erased)"
LINE_REMOVED = "(line removed: it held erased data)"
# A log line is removed when it holds the erased user's name, or a word of 4 or more characters that the
# erased text had and no remaining message has: words every conversation uses say nothing about anyone.
MIN_WORD = 4
_WORD = re.compile(r"\w+")
_HEADER = re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+ \d+ [A-Z]+ ")  # logs.py's format, up to the logger name


@dataclass(frozen=True)
class Outcome:
    erasure: Erasure
    snapshots_deleted: tuple[str, ...]
    adapters_redacted: tuple[str, ...]
    leftovers_removed: tuple[str, ...]
    log_lines_removed: int
    warnings: tuple[str, ...] = field(default=())


def forget(settings: Settings, store: Store, actor: str, *, conversation_id: int | None = None,
           user: str | None = None) -> Outcome:
    """`assistant forget`: a conversation, or everything of a user's, from the database and the data dir."""
    texts = store.erased_texts(conversation_id=conversation_id, user=user)
    erasure = store.forget(actor, conversation_id=conversation_id, user=user)
    return _erase_copies(settings, store, erasure, texts, user)


def delete_conversation(settings: Settings, store: Store, conversation_id: int) -> Outcome:
    """A conversation deleted in the chat: erased as `forget` erases it."""
    texts = store.erased_texts(conversation_id=conversation_id)
    erasure = store.delete_conversation(conversation_id)
    return _erase_copies(settings, store, erasure, texts, None)


def _erase_copies(settings: Settings, store: Store, erasure: Erasure, texts: list[str], user: str | None) -> Outcome:
    warnings: list[str] = []
    if not erasure.rewritten:
        warnings.append("the database was written before deletion was secure and could not be rewritten now (another"
                        " process was writing, or no space for a copy): text deleted before may stay in its unused"
                        " space until the next `assistant forget`")
    marked = [store.dataset(d) for d in erasure.datasets_marked]
    prompts = set(texts) | _eval_prompts(settings.data_dir, marked, set(erasure.conversation_ids))
    redacted = redact_probes(settings.data_dir, store, prompts)
    deleted = []
    for record in marked:
        path = _snapshot_dir(settings.data_dir, record.id, record.path)
        if path.exists():
            snapshot.delete_files(path)
            deleted.append(record.id)
    keep = {d.id for d in store.datasets() if not d.erased_at}
    leftovers = [f"datasets/{name}" for name in snapshot.sweep(settings.data_dir, keep)]
    leftovers += _sweep_adapter_staging(settings, warnings)
    removed = _scrub_logs(settings.log_path, store, texts, user)
    # The redactions above wrote pages again: the database file still has the old ones until the
    # write-ahead log is copied back into it.
    if not store.clear_wal():
        warnings.append("another process kept reading the database: erased text may stay in its write-ahead log"
                        " or free pages until it stops; run `assistant forget` again then")
    return Outcome(erasure, tuple(deleted), tuple(redacted), tuple(leftovers), removed, tuple(warnings))


def _snapshot_dir(data_dir: Path, snapshot_id: str, recorded: str) -> Path:
    path = Path(recorded)
    return path if path.name == snapshot_id and path.is_dir() else DataDir(data_dir).snapshot(snapshot_id)


def _eval_prompts(data_dir: Path, records: Iterable[Any], conversation_ids: set[int]) -> set[str]:
    """The prompts the gate probes with by default (the last user message of each eval row), of the rows
    the snapshots took from the erased conversations, as the snapshot wrote them (cleaned)."""
    prompts: set[str] = set()
    for record in records:
        path = _snapshot_dir(data_dir, record.id, record.path)
        try:
            origins = snapshot.read_manifest(path)["rows"]["eval"]
            rows = [json.loads(line) for line in (path / "eval.jsonl").read_text(encoding="utf-8").splitlines()]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for origin, row in zip(origins, rows):
            if origin.get("conversation_id") in conversation_ids:
                prompts.update(m["content"] for m in row.get("messages", []) if m.get("role") == "user")
    return prompts


def _redact_report(report: dict[str, Any], prompts: set[str]) -> dict[str, Any] | None:
    """The report with every probe whose prompt is erased text redacted (its answers too); None: unchanged."""
    probes = report.get("probes")
    if not isinstance(probes, list) or not any(isinstance(p, dict) and p.get("prompt") in prompts for p in probes):
        return None
    redacted = [
        {"prompt": REDACTED, "answers": {name: REDACTED for name in (p.get("answers") or {})}}
        if isinstance(p, dict) and p.get("prompt") in prompts else p
        for p in probes
    ]
    return {**report, "probes": redacted}


def redact_probes(data_dir: Path, store: Store, prompts: set[str]) -> list[str]:
    """Redact the probes whose prompt is one of `prompts` in every version's gate report (the store's copy
    and meta.json); the versions changed. Also for a retrain that a forget overlapped (train/retrain.py)."""
    redacted = []
    for record in store.adapters(include_deleted=True):
        changed = False
        report = _redact_report(record.report, prompts)
        if report is not None:
            store.update_adapter_report(record.version, report)
            changed = True
        directory = DataDir(data_dir).version(record.version)
        if (directory / registry.META).is_file() and not directory.is_symlink():
            meta = registry.read_meta(directory)
            report = _redact_report(meta.get("eval_report") or {}, prompts)
            if report is not None:
                registry.rewrite_meta(directory, {**meta, "eval_report": report})
                changed = True
        if changed:
            redacted.append(record.version)
    return redacted


def _sweep_adapter_staging(settings: Settings, warnings: list[str]) -> list[str]:
    """A killed publish's staging directory holds a gate report: removed under the training lock (a
    running retrain publishes through one; it is left alone, with a warning)."""
    from assistant.train.retrain import lock_path

    lock = FileLock(str(lock_path(settings)), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        warnings.append("a retrain is running: the version it publishes will be flagged as trained on erased data"
                        " (its probes from the erased conversations redacted) and not promoted")
        return []
    try:
        return [f"adapters/{name}" for name in registry.sweep_staging(settings.data_dir)]
    finally:
        lock.release()


def _scrub_logs(log_path: Path, store: Store, texts: list[str], user: str | None) -> int:
    """Replace the log lines that quote erased text or name the erased user. Rewritten in place: a chat
    appending to the log meanwhile keeps writing to the same file."""
    words = {w.lower() for text in texts for w in _WORD.findall(text) if len(w) >= MIN_WORD}
    distinctive = words - store.indexed_words(words)
    name = user.lower() if user else None
    removed = 0
    for path in sorted(log_path.parent.glob(log_path.name + "*")) if log_path.parent.is_dir() else []:
        if not path.is_file() or path.is_symlink():
            continue
        with open(path, "r+", encoding="utf-8", errors="surrogateescape", newline="") as handle:
            lines = handle.read().splitlines(keepends=True)
            kept = []
            for line in lines:
                header = _HEADER.match(line)  # when, which process, how severe: no text of anyone's
                text = line[header.end():] if header else line
                tokens = {w.lower() for w in _WORD.findall(text)}
                if tokens & distinctive or (name and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text.lower())):
                    kept.append((header.group(0) if header else "") + LINE_REMOVED + "\n")
                    removed += 1
                else:
                    kept.append(line)
            if kept != lines:
                handle.seek(0)
                handle.write("".join(kept))
                handle.truncate()
    return removed
