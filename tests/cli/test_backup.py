"""`assistant backup FILE`: a consistent copy of the database while chats write, never destroying the
previous backup when it fails."""

from __future__ import annotations

import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.cli.helpers import REPO, open_store, run_subprocess


def conversations_in(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [title for (title,) in db.execute("SELECT title FROM conversations ORDER BY id")]


def test_backup_holds_what_other_apps_committed_and_not_what_they_are_writing(cli, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    chat = open_store(data_dir)  # a running chat: its commits sit in the write-ahead log
    chat.create_conversation("ana", "", "first")
    chat.create_conversation("ana", "", "second")
    writer = sqlite3.connect(data_dir / "assistant.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another app in the middle of a write
    writer.execute("UPDATE conversations SET title = 'half-written' WHERE title = 'first'")

    result = cli("backup", tmp_path / "copy.db", "--data-dir", data_dir)

    writer.execute("ROLLBACK")
    assert result.code == 0, result.err
    assert "backed up" in result.out and "copy.db" in result.out
    assert conversations_in(tmp_path / "copy.db") == ["first", "second"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".copy.db")] == []  # no temporary left


def test_restored_backup_opens_as_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = open_store(data_dir)
    kept = store.create_conversation("ana", "", "kept")
    store.add_message(kept.id, "user", "where is my order?")
    result = run_subprocess("backup", tmp_path, "--data-dir", data_dir, cwd=tmp_path)
    assert result.code == 0, result.err  # a directory: a dated file in it
    (copy,) = tmp_path.glob("assistant-*.db")
    store.create_conversation("ana", "", "after the backup")
    store.close()

    # The README's restore: stop the apps, move the WAL aside, copy the backup over the database.
    for suffix in ("-wal", "-shm"):
        (data_dir / f"assistant.db{suffix}").unlink(missing_ok=True)
    (data_dir / "assistant.db").write_bytes(copy.read_bytes())
    restored = open_store(data_dir)
    assert [c.title for c in restored.conversations(user="ana")] == ["kept"]
    assert [m.content for m in restored.thread(kept.id)] == ["where is my order?"]


def test_backup_into_the_data_dir_is_refused(cli, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    open_store(data_dir).close()
    result = cli("backup", data_dir / "backups" / "copy.db", "--data-dir", data_dir)
    assert result.code == 4
    assert result.err_lines == [
        f"error: {data_dir / 'backups' / 'copy.db'} is inside the data dir, where `forget` would have to erase it too; back up elsewhere"
    ]


def test_failed_backup_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    """The disk fills while the copy is written (a file-size limit makes every write past 64 KiB fail):
    one line and exit 6, and yesterday's backup is still there, byte for byte."""
    data_dir = tmp_path / "data"
    store = open_store(data_dir)
    for index in range(40):
        conversation = store.create_conversation("ana", "", f"conversation {index}")
        store.add_message(conversation.id, "user", "x" * 4000)
    store.close()
    previous = tmp_path / "copy.db"
    previous.write_bytes(b"yesterday's backup")

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    done = subprocess.run(
        [sys.executable, "-m", "assistant", "backup", str(previous), "--data-dir", str(data_dir)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=small_disk,
    )

    assert done.returncode == 6, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: cannot back up {data_dir / 'assistant.db'} to {previous}:")
    assert line.endswith("it was not changed")
    assert previous.read_bytes() == b"yesterday's backup"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "data"]
