"""Erasure as the right to erasure demands it: conversations of any length go, and no byte of the erased
text stays in the database files (free pages, the WAL, the full-text index) while other connections hold
the database open; the erased user's name goes from every record."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import ConflictError, NotFoundError
from assistant.store import ImportedMessage, Store

MARKER = "Xylophonist7731"  # a word only in the erased conversation
LONG = 20_000


def _long_conversation(store: Store, owner: str, n: int = LONG, marker: str = MARKER) -> int:
    """One imported conversation of `n` messages, each the reply to the one before (a chain `n` deep)."""
    messages = [
        ImportedMessage("user" if i % 2 == 0 else "assistant", f"message {i} about the {marker} case")
        for i in range(n)
    ]
    [cid] = store.import_conversations([("long", messages)], user=owner, default_system_prompt="sys")
    return cid


def _count(store: Store, sql: str, args=()) -> int:  # noqa: ANN001
    return store.db.execute(sql, list(args)).fetchone()[0]


def _bytes_under(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _holding(directory: Path, *needles: str) -> list[str]:
    """The files under `directory` holding any needle, in any case (the search index lowercases words)."""
    found = []
    for name, content in _bytes_under(directory).items():
        lowered = content.lower()
        if any(needle.lower().encode() in lowered for needle in needles):
            found.append(name)
    return found


def test_forget_erases_a_conversation_of_20000_messages(store: Store) -> None:
    cid = _long_conversation(store, "ann")
    kept = store.create_conversation("ann", "sys")
    store.add_message(kept.id, "user", "keep me")

    erasure = store.forget("admin", conversation_id=cid)

    assert (erasure.conversations, erasure.messages) == (1, LONG)
    with pytest.raises(NotFoundError):
        store.conversation(cid)
    assert _count(store, "SELECT count(*) FROM messages WHERE conversation_id = ?", [cid]) == 0
    assert store.search(MARKER) == []
    assert [m.content for m in store.thread(kept.id)] == ["keep me"]


def test_deleting_a_conversation_of_20000_messages_in_the_chat(store: Store) -> None:
    cid = _long_conversation(store, "ann")

    store.delete_conversation(cid)

    assert _count(store, "SELECT count(*) FROM messages") == 0
    assert store.search(MARKER) == []


def test_forget_a_user_erases_every_conversation_however_long(store: Store) -> None:
    _long_conversation(store, "bob")
    _long_conversation(store, "bob", n=1_500, marker="Quokka")
    anns = _long_conversation(store, "ann", n=4, marker="kept")

    erasure = store.forget("admin", user="bob")

    assert (erasure.conversations, erasure.messages) == (2, LONG + 1_500)
    assert [c.id for c in store.conversations(include_archived=True)] == [anns]
    assert _count(store, "SELECT count(*) FROM messages") == 4


def test_no_byte_of_the_erased_text_stays_in_the_database_files_while_another_connection_is_open(
    store: Store, data_dir: Path
) -> None:
    cid = _long_conversation(store, "ann", n=3_000)
    kept = store.create_conversation("ann", "sys")
    store.add_message(kept.id, "user", "the kept question about printers")
    chat = Store.open(store.path)  # another chat, holding the database open
    try:
        assert [h.conversation.id for h in chat.search(MARKER)] == [cid]
        assert _holding(data_dir, MARKER)  # the text is on disk before

        store.forget("admin", conversation_id=cid)

        assert _holding(data_dir, MARKER, MARKER[-8:]) == []
        assert (data_dir / "assistant.db-wal").stat().st_size == 0  # checkpointed and truncated
        assert chat.search(MARKER) == [] and [h.conversation.id for h in chat.search("printers")] == [kept.id]
        chat.add_message(kept.id, "user", "the chat goes on")  # the other connection still writes
    finally:
        chat.close()


def test_text_deleted_earlier_by_another_connection_is_zeroed_too(store: Store, data_dir: Path) -> None:
    """Free pages hold what was deleted through any connection, so every connection deletes securely."""
    chat = Store.open(store.path)
    try:
        cid = _long_conversation(chat, "ann", n=2_000)
        chat.delete_conversation(cid)  # deleted in the chat, not by forget
        other = store.create_conversation("bob", "sys")
        store.add_message(other.id, "user", "something else")

        store.forget("admin", conversation_id=other.id)

        assert _holding(data_dir, MARKER, MARKER[-8:]) == []
    finally:
        chat.close()


def test_forget_a_user_erases_their_name_from_every_record(store: Store) -> None:
    reply = store.add_message(store.create_conversation("ann", "sys").id, "user", "question")
    store.register_dataset("ds-bob", "datasets/ds-bob", {}, [reply.conversation_id], "bob")
    store.start_run("run-1", user="bob", pid=1, base_model="tiny", config={})
    store.register_adapter("v0001", path="adapters/v0001", actor="bob", reason="trained by bob")
    store.promote("v0001", actor="bob", reason="promoted by bob, not bobby")

    store.forget("admin", user="bob")

    assert store.dataset("ds-bob").created_by == "(erased)"
    assert store.training_run("run-1").user == "(erased)"
    assert {e.actor for e in store.adapter_events()} == {"(erased)"}
    assert [e.reason for e in store.adapter_events()] == ["trained by (erased)", "promoted by (erased), not bobby"]
    assert store.adapter("v0001").reason == "promoted by (erased), not bobby"


def test_registering_a_snapshot_read_before_a_forget_is_refused(store: Store) -> None:
    first = store.create_conversation("ann", "sys")
    second = store.create_conversation("ann", "sys")
    mark = store.erasure_mark()
    store.forget("admin", conversation_id=first.id)

    with pytest.raises(ConflictError):
        store.register_dataset("ds", "datasets/ds", {}, [first.id, second.id], "cora", erasures_seen=mark)

    with pytest.raises(NotFoundError):
        store.dataset("ds")
    record = store.register_dataset("ds", "datasets/ds", {}, [second.id], "cora", erasures_seen=store.erasure_mark())
    assert record.erased_at is None


def _written_before_secure_deletion(path: Path) -> None:
    """A database as assistant wrote it before secure deletion (schema up to m006, SQLite's plain
    connection): a conversation quoting MARKER was written and deleted, leaving its bytes in free pages
    and in the unused space of pages still in use."""
    import sqlite3

    from sqlite_utils import Database

    from assistant.store.migrations import migrations

    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA secure_delete = OFF")  # SQLite's default; this build may compile it on
    migrations.apply(Database(conn), stop_before="m007_erasure")
    now = "2025-01-01T00:00:00.000Z"
    for owner, word in (("ann", MARKER), ("ann", "kept"), ("bob", MARKER)):
        cid = conn.execute(
            "INSERT INTO conversations (title, user, created_at, updated_at) VALUES ('t', ?, ?, ?)", [owner, now, now]
        ).lastrowid
        conn.executemany(
            "INSERT INTO messages (conversation_id, role, content, created_at) VALUES (?, 'user', ?, ?)",
            [(cid, f"message {i} about the {word} case", now) for i in range(400)],
        )
    # Deleted as the old chat deleted: every other message of the first (slack in pages still in use),
    # all of the third (free pages).
    conn.execute("DELETE FROM messages WHERE conversation_id = 1 AND id % 2 = 0")
    conn.execute("UPDATE messages SET content = 'message about the other case' WHERE conversation_id = 1")
    conn.execute("DELETE FROM messages WHERE conversation_id = 3")
    conn.execute("DELETE FROM conversations WHERE id = 3")
    conn.close()


def test_the_first_forget_on_a_database_written_before_secure_deletion_leaves_no_byte_deleted_then(
    data_dir: Path,
) -> None:
    path = data_dir / "assistant.db"
    _written_before_secure_deletion(path)
    assert _holding(data_dir, MARKER)
    store = Store.open(path)  # the upgrade
    chat = Store.open(path)  # another chat holds the database open
    try:
        assert chat.search(MARKER) == [] and len(chat.search("kept")) == 1
        other = store.create_conversation("cora", "sys")
        store.add_message(other.id, "user", "nothing to see")

        erasure = store.forget("admin", conversation_id=other.id)

        assert erasure.rewritten
        assert _holding(data_dir, MARKER, MARKER[-8:]) == []
        assert len(chat.search("kept")) == 1 and chat.conversation(1).title == "t"
        chat.add_message(2, "user", "the chat goes on")
        rewritten_at = store.secure_deletion_since()
        assert rewritten_at is not None
        store.forget("admin", conversation_id=2)
        assert store.secure_deletion_since() == rewritten_at, "rewritten once"
    finally:
        chat.close()
        store.close()


def test_a_database_created_with_secure_deletion_is_never_rewritten(store: Store) -> None:
    assert store.secure_deletion_since() is not None


def test_a_database_busy_with_a_writer_is_rewritten_at_a_later_forget(data_dir: Path) -> None:
    path = data_dir / "assistant.db"
    _written_before_secure_deletion(path)
    store = Store.open(path)
    writer = Store.open(path)
    try:
        writer.db.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        assert store.rewrite_once(wait_s=0.2) is False
        assert store.secure_deletion_since() is None
        writer.db.execute("ROLLBACK")
        erasure = store.forget("admin", conversation_id=2)
        assert erasure.rewritten and store.secure_deletion_since() is not None
        assert _holding(data_dir, MARKER, MARKER[-8:]) == []
    finally:
        writer.close()
        store.close()
