"""Several apps share one database: real processes opening and writing it at the same moment."""

from __future__ import annotations

import multiprocessing
import sqlite3
import sys
import threading
import time
import traceback
from pathlib import Path

from assistant.store import Store
from assistant.store.migrations import migrations

PROCESSES = 4
ITERATIONS = 60
RACES = 30  # fresh databases, each opened by every process at the same moment
START_TIMEOUT_S = 30


def _write_many(path: str, start, index: int, iterations: int, results) -> None:  # noqa: ANN001
    """A worker: wait for the others, open the store, write fast, report."""
    try:
        start.wait(START_TIMEOUT_S)
        store = Store.open(path)
        user = f"user{index}"
        for i in range(iterations):
            conversation = store.create_conversation(user, "sys")
            question = store.add_message(conversation.id, "user", f"question {index} {i}")
            reply = store.add_message(conversation.id, "assistant", f"answer {index} {i}", parent_id=question.id)
            store.rate(reply.id, user, 1 if i % 2 else -1)
        store.close()
        results.put((index, None))
    except BaseException:
        results.put((index, traceback.format_exc()))
        raise


def _race_fresh_databases(paths: list[str], start, index: int, results) -> None:  # noqa: ANN001
    """A worker: for each new database, wait for the others, open it (migrating) and write."""
    failures = []
    try:
        for path in paths:
            start.wait(START_TIMEOUT_S)
            try:
                store = Store.open(path)
                conversation = store.create_conversation(f"user{index}", "sys")
                store.add_message(conversation.id, "user", f"hello from {index}")
                store.close()
            except Exception as exc:  # noqa: BLE001 - reported to the test, which fails
                cause = exc.__cause__ or exc.__context__
                failures.append(f"{Path(path).parent.name}: {exc!r} caused by {cause!r}")
    except BaseException:
        failures.append(traceback.format_exc())
    results.put((index, "; ".join(failures) or None))
    if failures:
        sys.exit(1)


def _run_together(target, args_for) -> None:  # noqa: ANN001
    """Start PROCESSES spawned workers that begin at the same moment; all must succeed."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=target, args=(*args_for(index, start), results), daemon=True)
        for index in range(PROCESSES)
    ]
    try:
        for process in processes:
            process.start()
        reports = dict(results.get(timeout=START_TIMEOUT_S) for _ in processes)
        for process in processes:
            process.join(timeout=START_TIMEOUT_S)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert {index: error for index, error in reports.items() if error} == {}
    assert sorted(reports) == list(range(PROCESSES))
    assert [process.exitcode for process in processes] == [0] * PROCESSES


def test_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "assistant.db"
    Store.open(path).close()

    _run_together(_write_many, lambda index, start: (str(path), start, index, ITERATIONS))

    total = PROCESSES * ITERATIONS
    store = Store.open(path)
    try:
        assert store.counts() == {"conversations": total, "messages": 2 * total, "feedback": total}
        for index in range(PROCESSES):
            mine = store.conversations(user=f"user{index}")
            assert len(mine) == ITERATIONS
            contents = sorted(m.content for c in mine for m in store.thread(c.id))
            assert contents == sorted(
                [f"question {index} {i}" for i in range(ITERATIONS)] + [f"answer {index} {i}" for i in range(ITERATIONS)]
            )
        # Every conversation holds its own question and answer, in order.
        bad = store.db.execute(
            """
            SELECT c.id FROM conversations c
            WHERE (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) != 2
               OR (SELECT count(*) FROM messages m JOIN messages p ON m.parent_id = p.id
                   WHERE m.conversation_id = c.id AND p.conversation_id = c.id AND m.role = 'assistant') != 1
            """
        ).fetchall()
        assert bad == []
        assert store.db.execute("SELECT count(*) FROM feedback WHERE current = 1").fetchone()[0] == total
        assert len(store.search("question")) == min(total, 50)
    finally:
        store.close()


def test_first_open_race_migrates_once(tmp_path: Path) -> None:
    paths = [str(tmp_path / f"race{n}" / "assistant.db") for n in range(RACES)]

    _run_together(_race_fresh_databases, lambda index, start: (paths, start, index))

    names = [m.name for m in migrations._migrations]
    for path in paths:
        conn = sqlite3.connect(path)
        try:
            recorded = [row[0] for row in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY rowid")]
            assert recorded == names, path
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("SELECT count(*) FROM conversations").fetchone()[0] == PROCESSES
            assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == PROCESSES
            assert conn.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'hello'").fetchone()[0] == PROCESSES
        finally:
            conn.close()


def test_open_waits_while_another_app_initialises_a_new_database(tmp_path: Path) -> None:
    """The first-open race made deterministic: another app holds the new file's write lock (as it
    does while switching it to WAL) for a moment; Store.open must wait for it, as it does for any
    other writer, not fail at once."""
    path = tmp_path / "assistant.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    try:
        # BUG: _configure runs "PRAGMA journal_mode = WAL", which gets SQLITE_BUSY at once (the busy
        # timeout does not apply to it) and Store.open raises "stayed busy for 15 s" after ~0 s.
        store = Store.open(path)
    finally:
        release.join()
        other.close()
    try:
        assert time.monotonic() - started >= 0.25
        assert store.applied_migrations() == [m.name for m in migrations._migrations]
    finally:
        store.close()
