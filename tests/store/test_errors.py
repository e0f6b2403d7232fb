"""An unusable data dir or database gives a one-line StoreError, and nothing on disk is lost."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from assistant.errors import StoreError
from assistant.store import Store


def _not_a_database(path: Path) -> bytes:
    data = random.Random(6).randbytes(8192)
    path.write_bytes(data)
    return data


def test_file_that_is_not_a_database_is_refused_untouched(data_dir: Path) -> None:
    path = data_dir / "assistant.db"
    data = _not_a_database(path)

    with pytest.raises(StoreError, match="corrupt") as excinfo:
        Store.open(path)

    assert "\n" not in str(excinfo.value)
    assert path.read_bytes() == data
    assert sorted(p.name for p in data_dir.iterdir()) == ["assistant.db"]


@pytest.mark.parametrize("below", ["assistant.db", "nested/assistant.db"])
def test_data_dir_below_a_regular_file_is_refused(data_dir: Path, below: str) -> None:
    blocker = data_dir / "not-a-dir"
    blocker.write_text("keep me")

    with pytest.raises(StoreError, match="cannot create data dir") as excinfo:
        Store.open(blocker / below)

    assert "\n" not in str(excinfo.value)
    assert blocker.read_text() == "keep me"


def test_database_path_that_is_a_directory_is_refused(data_dir: Path) -> None:
    path = data_dir / "assistant.db"
    path.mkdir()
    with pytest.raises(StoreError, match="not a file") as excinfo:
        Store.open(path)
    assert "\n" not in str(excinfo.value)


def _newer_version(path: Path) -> Path:
    store = Store.open(path)
    store.db["_sqlite_migrations"].insert({"migration_set": "assistant", "name": "m999_future", "applied_at": "x"})
    store.close()
    return path


def _corrupt(path: Path) -> Path:
    _not_a_database(path)
    return path


def _below_a_file(path: Path) -> Path:
    path.with_name("file").write_text("x")
    return path.with_name("file") / "sub" / path.name


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize("make", [_corrupt, _below_a_file, _directory, _newer_version])
def test_store_errors_are_one_line(data_dir: Path, make) -> None:  # noqa: ANN001
    target = make(data_dir / "assistant.db")
    with pytest.raises(StoreError) as excinfo:
        Store.open(target)
    text = str(excinfo.value)
    assert text
    assert text.strip() == text
    assert "\n" not in text and "\r" not in text
    assert excinfo.value.exit_code == 6


def test_damage_found_after_opening_is_a_store_error(tmp_path: Path) -> None:
    """A database whose header is fine but whose pages are not: reads fail with StoreError, not sqlite3's."""
    import sqlite3

    path = tmp_path / "assistant.db"
    store = Store.open(path)
    conversation = store.create_conversation("ann", "sys")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    schema_pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    for n in range(300):
        store.add_message(conversation.id, "user", f"message {n} " + "x" * 200)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(schema_pages * page, len(data) - page, page):  # the schema and small tables come first
        data[start + 8 : start + 200] = b"\xff" * 192  # wreck page contents, keep the file header
    path.write_bytes(bytes(data))

    store = Store.open(path)
    with pytest.raises(StoreError, match="corrupt"):
        for _ in range(3):
            store.thread(conversation.id)
            store.search("message")
            store.conversations()
    store.close()
