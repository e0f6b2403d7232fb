"""Dataset snapshots on disk: `datasets/<snapshot-id>/` with a JSONL file per split (`FILES`: train,
eval, dpo, kto, dpo_eval, kto_eval) and manifest.json, written to a staging directory as the builder
hands out rows, flushed and renamed into place.

The snapshot id is a hash of the files' content, so the same database state gives the same id and
byte-identical files, and a rebuild of an unchanged state reuses the existing directory. Times and
paths live in the database's `datasets` table, never in the files. The bytes: each row's line as
`json.dumps(row, ensure_ascii=False, sort_keys=True)`; the manifest as
`json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1)`; the id the first 16 hex digits
of SHA-256 over each file in `FILES` order (name, NUL, content, NUL) and then the manifest without
its id as `json.dumps(manifest, sort_keys=True)`. Its rows section (ids of every row, the biggest
part) is written and hashed in pieces, never held as one string.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from array import array
from itertools import chain
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from assistant.data.builder import (
    SPLITS,
    BuildPolicy,
    RowIndex,
    Tokenizer,
    build,
    resplit_rows,
)
from assistant.errors import ConflictError, NotFoundError, StoreError
from assistant.settings import DataDir
from assistant.store import DatasetRecord, Store
from assistant.store.records import TrainingConversation

FILES = tuple(f"{split}.jsonl" for split in SPLITS)  # train, eval, dpo, kto, dpo_eval, kto_eval
MANIFEST = "manifest.json"
ID_LENGTH = 16
CHUNK = 1 << 20
BUILD_ATTEMPTS = 3


@dataclass(frozen=True)
class Snapshot:
    id: str
    path: Path
    manifest: dict[str, Any]
    reused: bool  # the same content was built before
    record: DatasetRecord


class StagingSink:
    """The builder's rows appended to the split files in a staging directory, in chunks."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: dict[str, BinaryIO] = {split: open(directory / f"{split}.jsonl", "wb") for split in SPLITS}  # noqa: SIM115
        self.buffers: dict[str, list[str]] = {split: [] for split in SPLITS}
        self.sizes = dict.fromkeys(SPLITS, 0)
        self.conversations = {split: array("q") for split in SPLITS}  # each line's, for resplit
        self.closed = False

    def add(self, split: str, conversation_id: int, line: str) -> None:
        self.buffers[split].append(line)
        self.conversations[split].append(conversation_id)
        self.sizes[split] += len(line)
        if self.sizes[split] >= CHUNK:
            self._write(split)

    def _write(self, split: str) -> None:
        self.files[split].write("".join(self.buffers[split]).encode())
        self.buffers[split] = []
        self.sizes[split] = 0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for split, handle in self.files.items():
            self._write(split)
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()

    def resplit(self, moved: frozenset[int]) -> None:
        """Rewrite the files with these conversations moved to the held-out side (train to eval, dpo to
        dpo_eval, kto to kto_eval; rare: only when eval is topped up)."""
        self.close()
        old = {split: self.directory / f".old-{split}.jsonl" for split in SPLITS}
        for split in SPLITS:
            os.replace(self.directory / f"{split}.jsonl", old[split])

        def lines(split: str) -> Iterator[tuple[int, bytes]]:
            with open(old[split], "rb") as handle:
                yield from zip(self.conversations[split], handle, strict=True)

        rows = resplit_rows({split: lambda split=split: lines(split) for split in SPLITS}, moved)
        for split in SPLITS:
            with open(self.directory / f"{split}.jsonl", "wb") as handle:
                handle.writelines(rows[split])
                handle.flush()
                os.fsync(handle.fileno())
        for path in old.values():
            path.unlink()


def _dumps(value: Any, *, indent: bool, level: int) -> str:
    """`value` as json.dumps renders it inside the manifest: compact (hashed) or indented (the file)."""
    if not indent:
        return json.dumps(value, sort_keys=True)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1).replace("\n", "\n" + " " * level)


def _row_entries(rows: RowIndex, split: str, *, indent: bool) -> Iterator[str]:
    """The manifest's list of one split's rows, as json.dumps renders it (every value is an int)."""
    if not rows.count(split):
        yield "[]"
        return
    separator = ",\n   " if indent else ", "
    batch = []
    for n, (cid, target, ids) in enumerate(rows.entries(split)):
        if indent:
            listed = ",\n     ".join(map(str, ids))
            entry = f'{{\n    "conversation_id": {cid},\n    "message_ids": [\n     {listed}\n    ],\n    "target_id": {target}\n   }}'
        else:
            entry = f'{{"conversation_id": {cid}, "message_ids": [{", ".join(map(str, ids))}], "target_id": {target}}}'
        batch.append((separator if n else ("[\n   " if indent else "[")) + entry)
        if len(batch) == 4096:
            yield "".join(batch)
            batch = []
    yield "".join(batch) + ("\n  ]" if indent else "]")


def manifest_text(manifest: dict[str, Any], *, indent: bool) -> Iterator[str]:
    """`json.dumps(manifest, sort_keys=True)` (indent: with `ensure_ascii=False, indent=1`), in pieces;
    its "rows" a RowIndex, rendered row by row."""
    comma, first_level, second_level = (",", "\n ", "\n  ") if indent else (", ", "", "")
    for n, key in enumerate(sorted(manifest)):
        yield ("{" if not n else comma) + first_level + json.dumps(key) + ": "
        if key != "rows":
            yield _dumps(manifest[key], indent=indent, level=1)
            continue
        for m, split in enumerate(sorted(SPLITS)):
            yield ("{" if not m else comma) + second_level + json.dumps(split) + ": "
            yield from _row_entries(manifest[key], split, indent=indent)
        yield first_level + "}"
    yield ("\n" if indent else "") + "}"


def snapshot_id(directory: Path, manifest: dict[str, Any]) -> str:
    """The id of the files in `directory` with this manifest (see the module's docstring)."""
    digest = hashlib.sha256()
    for name in FILES:
        digest.update(name.encode() + b"\0")
        with open(directory / name, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    for piece in manifest_text(manifest, indent=False):
        digest.update(piece.encode())
    return digest.hexdigest()[:ID_LENGTH]


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    with open(directory / MANIFEST, "wb") as handle:
        handle.writelines(piece.encode() for piece in manifest_text(manifest, indent=True))
        handle.write(b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_snapshot(
    store: Store,
    data_dir: Path,
    policy: BuildPolicy,
    tokenizer: Tokenizer,
    *,
    user: str,
    extra: Sequence[TrainingConversation] = (),
) -> Snapshot:
    """Build from the database as it is now (after `extra`: the sample conversations, under negative
    ids, which are not registered as the snapshot's conversations), write the snapshot and register it.

    A `forget` that runs while the build reads may erase data the snapshot holds: registering then
    fails, the files go, and the build starts again (ConflictError after BUILD_ATTEMPTS tries). So does a
    build whose files a forget swept away before they were registered."""
    for attempt in range(BUILD_ATTEMPTS):
        seen = store.erasure_mark()
        written = _write(store, DataDir(data_dir).datasets, policy, tokenizer, extra)
        if written is not None:
            new_id, target, summary, reused, conversation_ids = written
            try:
                record = store.register_dataset(
                    new_id, str(target), summary["counts"]["rows"], conversation_ids, user, erasures_seen=seen
                )
            except ConflictError:
                if not _registered(store, new_id):
                    delete_files(target)
            else:
                if (target / MANIFEST).is_file():
                    return Snapshot(new_id, target, summary, reused, record)
        if attempt + 1 == BUILD_ATTEMPTS:
            raise ConflictError("data was erased while the dataset was built, each time it was tried; build it again")
    raise AssertionError("unreachable")


def _write(
    store: Store, root: Path, policy: BuildPolicy, tokenizer: Tokenizer, extra: Sequence[TrainingConversation]
) -> tuple[str, Path, dict[str, Any], bool, list[int]] | None:
    """Build into a staging directory and rename it into place: (id, path, manifest less its rows, reused,
    conversation ids), or None when a forget swept the staging directory away meanwhile."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    except OSError as exc:
        raise StoreError(f"cannot write the dataset to {root}: {exc.strerror or exc}") from None
    try:
        sink = StagingSink(staging)
        try:
            built = build(chain(extra, store.training_conversations()), policy, tokenizer, sink)
        finally:
            sink.close()
        if not staging.is_dir():
            return None
        new_id = snapshot_id(staging, built.manifest)
        manifest = {"snapshot_id": new_id, **built.manifest}
        target = root / new_id
        reused = (target / MANIFEST).is_file()
        if not reused:
            _write_manifest(staging, manifest)
            if target.exists():  # a half-written directory from a crash before the rename: replace it
                shutil.rmtree(target)
            os.rename(staging, target)
            _fsync_dir(root)
    except OSError as exc:
        if not staging.is_dir():
            return None
        raise StoreError(f"cannot write the dataset to {root}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary = {key: value for key, value in manifest.items() if key != "rows"}
    return new_id, target, summary, reused, [cid for cid in built.conversation_ids if cid > 0]


def _registered(store: Store, snapshot_id: str) -> bool:
    try:
        store.dataset(snapshot_id)
    except NotFoundError:
        return False
    return True


def delete_files(path: Path) -> None:
    """Delete a snapshot's directory: renamed aside first, so a crash halfway leaves a `.deleted-` directory
    that `sweep` removes, never a snapshot with some files missing."""
    if not path.exists():
        return
    trash = path.with_name(f".deleted-{path.name}")
    os.rename(path, trash)
    shutil.rmtree(trash)


def sweep(data_dir: Path, keep: set[str]) -> list[str]:
    """Remove what killed builds and deletions left under datasets/ (staging and `.deleted-` directories)
    and snapshot directories that no record in `keep` names. Returns the names removed."""
    root = DataDir(data_dir).datasets
    if not root.is_dir():
        return []
    removed = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and not path.is_symlink() and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def find_snapshot(store: Store, data_dir: Path, snapshot_id: str | None = None) -> tuple[DatasetRecord, Path]:
    """A registered snapshot by id (or unique prefix), default the newest one that holds no erased data;
    with its directory. An erased snapshot is refused: its files were deleted."""
    records = store.datasets()
    if snapshot_id is not None:
        records = [r for r in records if r.id.startswith(snapshot_id)]
        if len(records) > 1:
            raise NotFoundError(f"{snapshot_id!r} matches {len(records)} snapshots; give more of the id")
        if records and records[0].erased_at:
            erased = records[0]
            raise NotFoundError(
                f"dataset snapshot {erased.id} was erased on {erased.erased_at[:10]} ({erased.erased_reason or 'it held erased data'});"
                " its files were deleted",
                hint="run `assistant dataset build` for a snapshot without the erased data",
            )
    elif records:
        records = [r for r in records if not r.erased_at]
        if not records:
            raise NotFoundError("every dataset snapshot held data erased since", hint="run `assistant dataset build`")
    if not records:
        what = f"dataset snapshot {snapshot_id}" if snapshot_id else "dataset snapshot yet"
        raise NotFoundError(f"no {what}", hint="run `assistant dataset build`")
    record = records[0]
    path = Path(record.path)
    if not (path / MANIFEST).is_file():
        path = DataDir(data_dir).snapshot(record.id)
    if not (path / MANIFEST).is_file():
        raise NotFoundError(f"the files of dataset snapshot {record.id} are gone", hint=f"expected {path}")
    return record, path


def read_manifest(path: Path) -> dict[str, Any]:
    return json.loads((path / MANIFEST).read_text(encoding="utf-8"))
