"""Store: the only code that speaks SQL. It owns `assistant.db` and hands out plain records.

Several apps (several staff on one server) share one database, so:
- WAL mode, so readers never wait for the writer;
- a busy timeout, so a writer waits for another instead of failing;
- every write is one short transaction that begins IMMEDIATE, taking the write lock up front
  (a DEFERRED transaction that upgrades to a writer fails at once under contention).

Must not import torch, transformers or textual.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def _import_sqlite_utils():  # noqa: ANN202
    """sqlite-utils imports pandas and numpy when they are installed (`datasets` brings them) only to
    accept their scalar types as values: half a second of start-up that the chat's first frame cannot
    afford. They are hidden while it imports, unless something imported them already; the store never
    passes such values."""
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail fast
    try:
        from sqlite_utils import Database
    finally:
        for name in hidden:
            if sys.modules.get(name) is None:
                del sys.modules[name]
    return Database


Database = _import_sqlite_utils()

from assistant.errors import InputError, NotFoundError, StoreError
from assistant.text import one_line
from assistant.store.curation import CurationStore, erase_conversations
from assistant.store.judgements import JudgementStore
from assistant.store.training import TrainingStore
from assistant.store.migrations import migrations
from assistant.store import rows as from_row
from assistant.store.records import (
    REASON_TAGS,
    ROLES,
    Conversation,
    Erasure,
    Feedback,
    ImportedMessage,
    Message,
    ReplyRecord,
    SearchHit,
)

BUSY_TIMEOUT_S = 15.0
TITLE_LENGTH = 60

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def title_from(text: str) -> str:
    """A conversation title from text: one line, no control characters, at most TITLE_LENGTH long."""
    return one_line(text, TITLE_LENGTH)


class Store(CurationStore, TrainingStore, JudgementStore):
    """The conversation log. Create with `Store.open(path)`; one per thread."""

    def __init__(self, db: Database, path: Path, clock: Clock) -> None:
        self.db = db
        self.path = path
        self._clock = clock

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, clock: Clock = utc_now, migrate: bool = True) -> Store:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create data dir {path.parent}: {exc.strerror}") from None
        if path.exists() and not path.is_file():
            raise StoreError(f"database path {path} is not a file")
        try:
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from None
        store = cls(Database(conn), path, clock)
        try:
            store._configure()
            if migrate:
                store.migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _explain(exc, path) from None
        except BaseException:
            conn.close()
            raise
        return store

    def reopen(self) -> Store:
        """Another connection to the same database, with the same clock: for another thread."""
        return type(self).open(self.path, clock=self._clock, migrate=False)

    def _configure(self) -> None:
        conn = self.db.conn
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted content is overwritten with zeros, whichever connection deletes it: a chat that deletes
        # or rewrites a row must not leave its old bytes in a free page for a later `forget` to miss.
        conn.execute("PRAGMA secure_delete = ON")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            _retry_while_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"))
        conn.execute("PRAGMA synchronous = NORMAL")

    def migrate(self) -> None:
        known = {m.name for m in migrations._migrations}
        applied = {m.name for m in migrations.applied(self.db)}
        if applied - known:
            raise StoreError(
                f"database {self.path} was written by a newer version of assistant",
                hint="upgrade assistant to use it",
            )
        if migrations.pending(self.db):
            with self._write():
                # Another process may have migrated while this one waited for the lock.
                created = not migrations.applied(self.db)
                migrations.apply(self.db)
                if created:  # securely deleting from its first byte on: never needs `rewrite_once`
                    self.db.execute("UPDATE secure_deletion SET since = ?", [self._now()])

    def close(self) -> None:
        self.db.close()

    def applied_migrations(self) -> list[str]:
        return [m.name for m in migrations.applied(self.db)]

    def sqlite_version(self) -> str:
        return self.db.execute("SELECT sqlite_version()").fetchone()[0]

    def journal_mode(self) -> str:
        return self.db.execute("PRAGMA journal_mode").fetchone()[0]

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Database]:
        """One short write transaction that takes the write lock at BEGIN."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield self.db
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _explain(exc, self.path) from None
        try:
            yield self.db
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _explain(exc, self.path) from None

    def _now(self) -> str:
        return format_time(self._clock())

    # -- conversations -----------------------------------------------------------------------

    def create_conversation(self, user: str, system_prompt: str, title: str = "") -> Conversation:
        now = self._now()
        with self._write() as db:
            cid = db["conversations"].insert(
                {
                    "title": title_from(title),
                    "user": user,
                    "created_at": now,
                    "updated_at": now,
                    "system_prompt": system_prompt,
                    "archived": 0,
                }
            ).last_pk
        return self.conversation(cid)

    def conversation(self, conversation_id: int) -> Conversation:
        rows = list(self.db.query("SELECT * FROM conversations WHERE id = ?", [conversation_id]))
        if not rows:
            raise NotFoundError(f"no conversation with id {conversation_id}")
        return from_row.conversation(rows[0])

    def conversations(
        self, *, user: str | None = None, include_archived: bool = False, limit: int | None = None
    ) -> list[Conversation]:
        where, args = [], []
        if user is not None:
            where.append("user = ?")
            args.append(user)
        if not include_archived:
            where.append("archived = 0")
        sql = "SELECT * FROM conversations"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY updated_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [from_row.conversation(row) for row in self.db.query(sql, args)]

    def rename_conversation(self, conversation_id: int, title: str) -> Conversation:
        title = title_from(title)
        if not title:
            raise InputError("a conversation title cannot be empty")
        self._update_conversation(conversation_id, title=title)
        return self.conversation(conversation_id)

    def set_archived(self, conversation_id: int, archived: bool) -> Conversation:
        self._update_conversation(conversation_id, archived=int(archived))
        return self.conversation(conversation_id)

    def _update_conversation(self, conversation_id: int, **values: Any) -> None:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE conversations SET "
                + ", ".join(f"{name} = ?" for name in values)
                + ", updated_at = ? WHERE id = ?",
                [*values.values(), self._now(), conversation_id],
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"no conversation with id {conversation_id}")

    def delete_conversation(self, conversation_id: int) -> Erasure:
        """Delete a conversation with its messages, feedback, reviews and search-index rows; dataset
        snapshots that included it are marked as holding erased data (as `forget` does)."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM conversations WHERE id = ?", [conversation_id]).fetchone() is None:
                raise NotFoundError(f"no conversation with id {conversation_id}")
            messages, marked = erase_conversations(
                db, [conversation_id], self._now(), f"held conversation {conversation_id}, deleted in a chat"
            )
        return Erasure(1, messages, tuple(marked), (conversation_id,), self.clear_wal())

    def clear_wal(self, *, wait_s: float = BUSY_TIMEOUT_S) -> bool:
        """Copy the write-ahead log into the database and truncate it to nothing, so that no older
        version of a page (erased text) stays in it. A reader still using the log blocks that: retried
        until `wait_s` passed; False if it stayed blocked."""
        deadline = time.monotonic() + wait_s
        while True:
            busy = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def secure_deletion_since(self) -> str | None:
        """Since when no byte deleted earlier can be left in the database file: its creation, or when
        `rewrite_once` rewrote it; None for a database written before secure deletion, not rewritten yet."""
        return self.db.execute("SELECT since FROM secure_deletion").fetchone()[0]

    def rewrite_once(self, *, wait_s: float = BUSY_TIMEOUT_S) -> bool:
        """Rewrite (VACUUM) a database written before secure deletion, once: text deleted then stays in
        its free pages and in the unused space of pages in use until it is. Other connections may keep it
        open (WAL); one writing makes this wait up to `wait_s`. False: not rewritten (busy, or no space for
        the copy); a later call tries again. The write-ahead log then holds every page: `clear_wal`."""
        if self.secure_deletion_since() is not None:
            return True
        conn = self.db.conn
        conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
        try:
            conn.execute("VACUUM")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL):
                raise
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        with self._write() as db:
            db.execute("UPDATE secure_deletion SET since = ?", [self._now()])
        return True

    def backup(self, target: Path) -> int:
        """A consistent copy of the whole database in `target`, taken while other apps go on writing
        (`VACUUM INTO` reads one snapshot; the copy holds no free pages, so no erased bytes). It is
        written to a temporary file beside `target`, checked, flushed and renamed over it: a failure
        (full disk, unwritable directory) leaves the previous `target` as it was. Returns its size."""
        from assistant.files import write_error

        try:
            fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise write_error(target, exc) from None
        os.close(fd)  # VACUUM INTO fills an empty file
        try:
            self.db.conn.execute("VACUUM INTO ?", [temporary])
            check = sqlite3.connect(temporary)
            try:
                verdict = check.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                check.close()
            if verdict != "ok":
                raise StoreError(f"the copy of {self.path} failed its check ({verdict}); {target} was not changed")
            with open(temporary, "rb") as stream:
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(exc, OSError):
                raise write_error(target, exc) from None
            if isinstance(exc, sqlite3.Error):
                if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                    raise write_error(target, OSError(errno.ENOSPC, "no space left")) from None
                raise StoreError(f"cannot back up {self.path} to {target}: {exc}; it was not changed") from None
            raise
        return target.stat().st_size

    # -- messages ----------------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        parent_id: int | None = None,
        reply: ReplyRecord | None = None,
    ) -> Message:
        """Append a message. A user message's text also names an untitled conversation."""
        if role not in ROLES:
            raise InputError(f"unknown role {role!r}")
        if role == "user" and not content.strip():
            raise InputError("a message cannot be empty")
        now = self._now()
        row: dict[str, Any] = {
            "conversation_id": conversation_id,
            "parent_id": parent_id,
            "role": role,
            "content": content,
            "created_at": now,
        }
        if reply is not None:
            row.update(
                model=reply.model,
                adapter=reply.adapter,
                params=json.dumps(reply.params, sort_keys=True),
                ttft_ms=reply.ttft_ms,
                token_count=reply.token_count,
                tokens_per_s=reply.tokens_per_s,
                finish_reason=reply.finish_reason,
                error=reply.error,
            )
        with self._write() as db:
            conversation = self._conversation_row(conversation_id)
            if parent_id is not None:
                parent = db.execute(
                    "SELECT conversation_id FROM messages WHERE id = ?", [parent_id]
                ).fetchone()
                if parent is None or parent[0] != conversation_id:
                    raise NotFoundError(f"no message {parent_id} in conversation {conversation_id}")
            message_id = db["messages"].insert(row).last_pk
            title = conversation["title"] or (title_from(content) if role == "user" else "")
            db.execute(
                "UPDATE conversations SET updated_at = ?, title = ?, leaf_id = ? WHERE id = ?",
                [now, title, message_id, conversation_id],
            )
        return self.message(message_id)

    def set_leaf(self, conversation_id: int, message_id: int) -> None:
        """Make the branch through `message_id` the conversation's current one (what `thread` shows by
        default): an answer picked among siblings continues the conversation, also after it is reopened."""
        with self._write() as db:
            found = db.execute("SELECT conversation_id FROM messages WHERE id = ?", [message_id]).fetchone()
            if found is None or found[0] != conversation_id:
                raise NotFoundError(f"no message {message_id} in conversation {conversation_id}")
            db.execute("UPDATE conversations SET leaf_id = ? WHERE id = ?", [message_id, conversation_id])

    def _conversation_row(self, conversation_id: int) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM conversations WHERE id = ?", [conversation_id]))
        if not rows:
            raise NotFoundError(f"no conversation with id {conversation_id}")
        return rows[0]

    def message(self, message_id: int) -> Message:
        rows = list(self.db.query("SELECT * FROM messages WHERE id = ?", [message_id]))
        if not rows:
            raise NotFoundError(f"no message with id {message_id}")
        return from_row.message(rows[0])

    def thread(self, conversation_id: int, leaf_id: int | None = None) -> list[Message]:
        """The messages from the first one down to `leaf_id` (default: the end of the current branch, the
        newest message below the one last added or picked (`set_leaf`); the newest message if none is)."""
        if leaf_id is None:
            row = self.db.execute(
                "SELECT coalesce((SELECT leaf_id FROM conversations WHERE id = :c),"
                " (SELECT max(id) FROM messages WHERE conversation_id = :c))",
                {"c": conversation_id},
            ).fetchone()
            if row[0] is not None:
                row = (self.latest_descendant(row[0]),)
            if row[0] is None:
                self._conversation_row(conversation_id)
                return []
            leaf_id = row[0]
        rows = self.db.query(
            """
            WITH RECURSIVE path(id) AS (
                SELECT id FROM messages WHERE id = :leaf AND conversation_id = :conversation
                UNION ALL
                SELECT m.parent_id FROM messages m JOIN path ON m.id = path.id
                WHERE m.parent_id IS NOT NULL
            )
            SELECT messages.* FROM messages JOIN path USING (id) ORDER BY messages.id
            """,
            {"leaf": leaf_id, "conversation": conversation_id},
        )
        return [from_row.message(row) for row in rows]

    def siblings(self, message_id: int) -> list[Message]:
        """The message and its alternatives (regenerated replies), oldest first."""
        message = self.message(message_id)
        if message.parent_id is None:
            rows = self.db.query(
                "SELECT * FROM messages WHERE conversation_id = ? AND parent_id IS NULL AND role = ?"
                " ORDER BY id",
                [message.conversation_id, message.role],
            )
        else:
            rows = self.db.query(
                "SELECT * FROM messages WHERE parent_id = ? AND role = ? ORDER BY id",
                [message.parent_id, message.role],
            )
        return [from_row.message(row) for row in rows]

    def latest_descendant(self, message_id: int) -> int:
        """The newest message in the branch below `message_id` (itself when it has none)."""
        row = self.db.execute(
            """
            WITH RECURSIVE below(id) AS (
                SELECT :start
                UNION ALL
                SELECT m.id FROM messages m JOIN below ON m.parent_id = below.id
            )
            SELECT max(id) FROM below
            """,
            {"start": message_id},
        ).fetchone()
        return row[0]

    # -- feedback ----------------------------------------------------------------------------

    def rate(
        self,
        message_id: int,
        user: str,
        rating: int,
        *,
        reasons: Iterable[str] = (),
        comment: str = "",
        correction: str = "",
    ) -> Feedback:
        """Record `user`'s rating of an assistant message; an earlier rating is kept, not current."""
        if rating not in (1, -1):
            raise InputError("a rating is +1 (thumbs up) or -1 (thumbs down)")
        reasons = tuple(dict.fromkeys(reasons))
        unknown = [tag for tag in reasons if tag not in REASON_TAGS]
        if unknown:
            raise InputError(f"unknown reason tag {unknown[0]!r}; known: {', '.join(REASON_TAGS)}")
        message = self.message(message_id)
        if message.role != "assistant":
            raise InputError("only assistant replies can be rated")
        now = self._now()
        with self._write() as db:
            previous = db.execute(
                "SELECT id, created_at FROM feedback WHERE message_id = ? AND user = ? AND current = 1",
                [message_id, user],
            ).fetchone()
            if previous is not None:
                db.execute("UPDATE feedback SET current = 0 WHERE id = ?", [previous[0]])
            feedback_id = db["feedback"].insert(
                {
                    "message_id": message_id,
                    "user": user,
                    "rating": rating,
                    "reasons": json.dumps(list(reasons)),
                    "comment": comment.strip(),
                    "correction": correction.strip(),
                    "created_at": previous[1] if previous else now,
                    "updated_at": now,
                    "current": 1,
                }
            ).last_pk
        return self._feedback_where("id = ?", [feedback_id])[0]

    def feedback_for(self, message_id: int, *, user: str | None = None) -> list[Feedback]:
        """The current ratings of a message (one per user), or only `user`'s."""
        if user is None:
            return self._feedback_where("message_id = ? AND current = 1", [message_id])
        return self._feedback_where("message_id = ? AND current = 1 AND user = ?", [message_id, user])

    def feedback_history(self, message_id: int) -> list[Feedback]:
        return self._feedback_where("message_id = ?", [message_id])

    def current_ratings(self, message_ids: Sequence[int], user: str) -> dict[int, Feedback]:
        if not message_ids:
            return {}
        marks = ", ".join("?" for _ in message_ids)
        rows = self._feedback_where(
            f"current = 1 AND user = ? AND message_id IN ({marks})", [user, *message_ids]
        )
        return {row.message_id: row for row in rows}

    def _feedback_where(self, where: str, args: Sequence[Any]) -> list[Feedback]:
        rows = self.db.query(f"SELECT * FROM feedback WHERE {where} ORDER BY id", list(args))
        return [from_row.feedback(row) for row in rows]

    # -- search ------------------------------------------------------------------------------

    def search(self, text: str, *, user: str | None = None, limit: int = 50) -> list[SearchHit]:
        """Conversations whose messages contain every word of `text` (the last one as a prefix),
        best match first, each with the snippet of its best-matching message."""
        query = from_row.fts_query(text)
        if not query:
            return []
        sql = """
            WITH hits AS (
                SELECT m.id AS message_id, m.conversation_id, messages_fts.rank AS rank,
                       snippet(messages_fts, 0, '', '', '…', 12) AS snippet
                FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid
                JOIN conversations c ON c.id = m.conversation_id
                WHERE messages_fts MATCH :query {user_filter}
            ),
            best AS (
                SELECT *, row_number() OVER (PARTITION BY conversation_id ORDER BY rank, message_id) AS n
                FROM hits
            )
            SELECT message_id, conversation_id, snippet FROM best WHERE n = 1
            ORDER BY rank, conversation_id DESC
            LIMIT :limit
        """.format(user_filter="AND c.user = :user" if user is not None else "")
        return [
            SearchHit(
                conversation=self.conversation(row["conversation_id"]),
                message_id=row["message_id"],
                snippet=" ".join(row["snippet"].split()),
            )
            for row in self.db.query(sql, {"query": query, "user": user, "limit": limit})
        ]

    # -- import / export ---------------------------------------------------------------------

    def import_conversations(
        self,
        conversations: Sequence[tuple[str, Sequence[ImportedMessage]]],
        *,
        user: str,
        default_system_prompt: str,
    ) -> list[int]:
        """Store parsed conversations (title, messages) in one transaction: all or nothing."""
        now = self._now()
        created: list[int] = []
        try:
            with self._write() as db:
                for title, messages in conversations:
                    created.append(self._insert_imported(db, title, messages, user, default_system_prompt, now))
        except sqlite3.IntegrityError as exc:
            raise InputError(f"the database refused the import, nothing was stored: {exc}") from None
        return created

    def _insert_imported(
        self, db: Database, title: str, messages: Sequence[ImportedMessage], user: str, default_system: str, now: str
    ) -> int:
        leading = 0
        while leading < len(messages) and messages[leading].role == "system":
            leading += 1
        system = [m.content for m in messages[:leading]]
        turns = messages[leading:]
        first_user = next((m.content for m in turns if m.role == "user"), "")
        cid = db["conversations"].insert(
            {
                "title": title_from(title or first_user),
                "user": user,
                "created_at": now,
                "updated_at": now,
                "system_prompt": "\n\n".join(system) if system else default_system,
                "archived": 0,
            }
        ).last_pk
        parent: int | None = None
        for message in turns:
            parent = db["messages"].insert(
                {
                    "conversation_id": cid,
                    "parent_id": parent,
                    "role": message.role,
                    "content": message.content,
                    "created_at": now,
                    "model": "imported" if message.role == "assistant" else None,
                }
            ).last_pk
            if message.feedback:
                feedback = message.feedback
                db["feedback"].insert(
                    {
                        "message_id": parent,
                        "user": feedback.get("user") or user,
                        "rating": feedback["rating"],
                        "reasons": json.dumps(list(feedback.get("reasons") or [])),
                        "comment": (feedback.get("comment") or "").strip(),
                        "correction": (feedback.get("correction") or "").strip(),
                        "created_at": now,
                        "updated_at": now,
                        "current": 1,
                    }
                )
        return cid

    # -- statistics --------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return {
            table: self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("conversations", "messages", "feedback")
        }


def _translating_errors(method: Callable) -> Callable:
    @functools.wraps(method)
    def translated(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise _explain(exc, self.path) from None

    return translated


# A database can turn out damaged after it opened (a corrupt page, a full disk): every public
# method reports that as a StoreError, never as sqlite3's own exception.
for _name in dir(Store):
    _method = getattr(Store, _name)
    if not _name.startswith("_") and callable(_method) and _name != "open" and _name != "training_conversations":
        setattr(Store, _name, _translating_errors(_method))


def _retry_while_busy(statement: Callable[[], Any]) -> Any:
    """Run a statement SQLite answers "locked" at once instead of waiting for the busy timeout.

    Switching a new database to WAL needs a moment alone with the file; another app creating the
    same database holds it briefly.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            return statement()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _explain(exc: sqlite3.Error, path: Path) -> StoreError:
    text = str(exc)
    if "not a database" in text or "malformed" in text or "vtable constructor failed" in text:
        return StoreError(
            f"database {path} is corrupt or not an SQLite database",
            hint="move it aside to start a fresh one; it was left untouched",
        )
    if "locked" in text or "busy" in text:
        return StoreError(f"database {path} stayed busy for {BUSY_TIMEOUT_S:.0f} s; try again")
    if "readonly" in text or "unable to open" in text or "disk I/O" in text:
        return StoreError(f"cannot write database {path}: {text}", hint="check the data dir's permissions")
    return StoreError(f"database {path}: {text}")
