"""Dataset snapshots on disk: `datasets/<snapshot-id>/` with train, eval, dpo and kto JSONL files
and manifest.json, written to a staging directory, flushed and renamed into place.

The snapshot id is a hash of the files' content, so the same database state gives the same id and
byte-identical files, and a rebuild of an unchanged state reuses the existing directory. Times and
paths live in the database's `datasets` table, never in the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.data.builder import BuildPolicy, Dataset, Tokenizer, build_dataset
from assistant.errors import ConflictError, NotFoundError, StoreError
from assistant.store import DatasetRecord, Store

FILES = ("train.jsonl", "eval.jsonl", "dpo.jsonl", "kto.jsonl")
MANIFEST = "manifest.json"
ID_LENGTH = 16
BUILD_ATTEMPTS = 3


@dataclass(frozen=True)
class Snapshot:
    id: str
    path: Path
    manifest: dict[str, Any]
    reused: bool  # the same content was built before
    record: DatasetRecord


def datasets_dir(data_dir: Path) -> Path:
    return data_dir / "datasets"


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows).encode()


def render(dataset: Dataset) -> tuple[str, dict[str, bytes]]:
    """The snapshot id and the bytes of every file."""
    files = {name: jsonl(rows) for name, rows in zip(FILES, (dataset.train, dataset.eval, dataset.dpo, dataset.kto))}
    digest = hashlib.sha256()
    for name in FILES:
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    digest.update(json.dumps(dataset.manifest, sort_keys=True).encode())
    snapshot_id = digest.hexdigest()[:ID_LENGTH]
    manifest = {"snapshot_id": snapshot_id, **dataset.manifest}
    files[MANIFEST] = (json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()
    return snapshot_id, files


def write_snapshot(root: Path, snapshot_id: str, files: dict[str, bytes]) -> tuple[Path, bool]:
    """Write the files atomically under root/<id>; (path, reused) — reused when it already exists."""
    target = root / snapshot_id
    if (target / MANIFEST).is_file():
        return target, True
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{snapshot_id}-", dir=root))
        try:
            for name, content in files.items():
                with open(staging / name, "wb") as handle:
                    handle.write(content)
                    handle.flush()
                    os.fsync(handle.fileno())
            if target.exists():  # a half-written directory from a crash before the rename: replace it
                shutil.rmtree(target)
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _fsync_dir(root)
    except OSError as exc:
        raise StoreError(f"cannot write the dataset to {target}: {exc.strerror or exc}") from None
    return target, False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_snapshot(store: Store, data_dir: Path, policy: BuildPolicy, tokenizer: Tokenizer, *, user: str) -> Snapshot:
    """Build from the database as it is now, write the snapshot and register it.

    A `forget` that runs while the build reads may erase data the snapshot holds: registering then
    fails, the files go, and the build starts again (ConflictError after BUILD_ATTEMPTS tries)."""
    for attempt in range(BUILD_ATTEMPTS):
        seen = store.erasure_mark()
        dataset = build_dataset(store.training_conversations(), policy, tokenizer)
        snapshot_id, files = render(dataset)
        path, reused = write_snapshot(datasets_dir(data_dir), snapshot_id, files)
        manifest = json.loads(files[MANIFEST])
        try:
            record = store.register_dataset(
                snapshot_id, str(path), manifest["counts"]["rows"], dataset.conversation_ids, user, erasures_seen=seen
            )
        except ConflictError:
            if not _registered(store, snapshot_id):
                delete_files(path)
            if attempt + 1 == BUILD_ATTEMPTS:
                raise
            continue
        if not (path / MANIFEST).is_file():  # a forget swept it as unregistered before it was recorded
            path, _ = write_snapshot(datasets_dir(data_dir), snapshot_id, files)
        return Snapshot(snapshot_id, path, manifest, reused, record)
    raise AssertionError("unreachable")


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
    root = datasets_dir(data_dir)
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
        path = datasets_dir(data_dir) / record.id
    if not (path / MANIFEST).is_file():
        raise NotFoundError(f"the files of dataset snapshot {record.id} are gone", hint=f"expected {path}")
    return record, path


def read_manifest(path: Path) -> dict[str, Any]:
    return json.loads((path / MANIFEST).read_text(encoding="utf-8"))
