"""The store's curation side: the review queue, curators' decisions with their audit trail and undo,
the training snapshot the dataset builder reads, dataset snapshots, and erasure.

A mixin of `Store` (see db.py): same connection, same short IMMEDIATE write transactions. Who may
curate is decided above this layer (assistant/curation.py); here every action names its actor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import groupby
from typing import Any

from assistant.errors import ConflictError, InputError, NotFoundError
from assistant.store import rows as from_row
from assistant.store.records import (
    REVIEW_STATUSES,
    AuditEntry,
    CurationCounts,
    DatasetRecord,
    Erasure,
    ReviewFilter,
    ReviewItem,
    TrainingConversation,
    TrainingMessage,
)

# The current ratings of each rated message, summed up; the latest correction is the proposed one.
_RATED = """
    SELECT message_id,
           sum(rating = 1) AS ups,
           sum(rating = -1) AS downs,
           max(updated_at) AS rated_at,
           json_group_array(user) AS raters
    FROM (SELECT * FROM feedback WHERE current = 1 ORDER BY user)
    GROUP BY message_id
"""

_QUEUE = f"""
    WITH rated AS ({_RATED})
    SELECT m.*, r.ups, r.downs, r.rated_at, r.raters,
           c.title AS conversation_title, c.user AS conversation_user,
           coalesce((SELECT correction FROM feedback f
                     WHERE f.message_id = m.id AND f.current = 1 AND f.correction != ''
                     ORDER BY f.updated_at DESC, f.id DESC LIMIT 1), '') AS proposed_correction,
           (SELECT json_group_array(DISTINCT t.value) FROM feedback f, json_each(f.reasons) t
            WHERE f.message_id = m.id AND f.current = 1) AS reasons,
           coalesce(v.status, 'pending') AS status, v.answer, v.source,
           coalesce(v.tags, '[]') AS tags, v.curator, v.updated_at AS reviewed_at
    FROM rated r
    JOIN messages m ON m.id = r.message_id
    JOIN conversations c ON c.id = m.conversation_id
    LEFT JOIN reviews v ON v.message_id = m.id
"""

TAG_LENGTH = 40
ERASED_NAME = "(erased)"


class CurationStore:
    """Mixed into Store; relies on its `db`, `_write()`, `_now()` and `message()`."""

    # -- the queue ---------------------------------------------------------------------------

    def review_queue(self, filters: ReviewFilter = ReviewFilter(), *, limit: int | None = None) -> list[ReviewItem]:
        """Rated assistant replies matching `filters`: thumbs-down first, then the rest, oldest
        rating first within each."""
        where, args = _queue_where(filters)
        sql = _QUEUE + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY (r.downs > 0) DESC, r.rated_at, m.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [from_row.review_item(row) for row in self.db.query(sql, args)]

    def review_item(self, message_id: int) -> ReviewItem:
        rows = list(self.db.query(_QUEUE + " WHERE m.id = :id", {"id": message_id}))
        if not rows:
            self.message(message_id)  # NotFoundError when there is no such message
            raise NotFoundError(f"message {message_id} has no rating to review")
        return from_row.review_item(rows[0])

    def curation_counts(self, *, since: str | None = None) -> CurationCounts:
        """Pending, approved and rejected rated replies; `approved_since`: approved after `since`
        (the last published adapter's time; None counts every approval)."""
        row = self.db.execute(
            f"""
            WITH rated AS ({_RATED})
            SELECT sum(coalesce(v.status, 'pending') = 'pending'),
                   sum(v.status = 'approved'),
                   sum(v.status = 'rejected'),
                   sum(v.status = 'approved' AND (:since IS NULL OR v.decided_at > :since))
            FROM rated r LEFT JOIN reviews v ON v.message_id = r.message_id
            """,
            {"since": since},
        ).fetchone()
        pending, approved, rejected, approved_since = (value or 0 for value in row)
        return CurationCounts(pending, approved, rejected, approved_since)

    def ratings_since(self, since: str | None) -> int:
        """Thumbs (each user's current rating of a reply) given or changed, and blind A/B picks made, after
        `since` (None: all): what a preference stage learns from, approved or not."""
        row = self.db.execute(
            "SELECT (SELECT count(*) FROM feedback WHERE current = 1 AND (:since IS NULL OR updated_at > :since))"
            " + (SELECT count(*) FROM judgements WHERE outcome IN ('left', 'right')"
            " AND (:since IS NULL OR created_at > :since))",
            {"since": since},
        ).fetchone()
        return row[0] or 0

    # -- decisions ---------------------------------------------------------------------------

    def approve(self, message_ids: Sequence[int], curator: str) -> list[ReviewItem]:
        """Approve replies for training: a curator's edit stays; else the proposed correction, else
        the reply as it is. Several ids make one batch, undone together."""

        def approved(item: ReviewItem, state: dict[str, Any] | None) -> dict[str, Any]:
            if state and state["source"] == "edit":
                answer, source = state["answer"], "edit"
            elif item.proposed_correction:
                answer, source = item.proposed_correction, "correction"
            else:
                answer, source = item.message.content, "reply"
            return _state("approved", answer, source, item.tags)

        return self._decide("approve", message_ids, curator, approved)

    def reject(self, message_ids: Sequence[int], curator: str) -> list[ReviewItem]:
        """Never train on these replies."""
        def rejected(item: ReviewItem, state: dict[str, Any] | None) -> dict[str, Any]:
            if state is None:
                return _state("rejected", None, None, item.tags)
            return {**state, "status": "rejected"}  # a curator's edit is kept, in case it is approved again

        return self._decide("reject", message_ids, curator, rejected)

    def edit(self, message_id: int, curator: str, answer: str) -> ReviewItem:
        """Save the curator's ideal answer as the curated answer (approved); the reply is kept."""
        answer = answer.strip()
        if not answer:
            raise InputError("the corrected answer is empty")
        return self._decide("edit", [message_id], curator, lambda item, _: _state("approved", answer, "edit", item.tags))[0]

    def set_tags(self, message_id: int, curator: str, tags: Sequence[str]) -> ReviewItem:
        clean = tuple(dict.fromkeys(" ".join(t.split())[:TAG_LENGTH] for t in tags if t.strip()))

        def tagged(item: ReviewItem, state: dict[str, Any] | None) -> dict[str, Any]:
            if state is None:
                return _state("pending", None, None, clean)
            return {**state, "tags": list(clean)}

        return self._decide("tag", [message_id], curator, tagged)[0]

    def approve_all_up(self, curator: str, *, since: str | None = None) -> list[ReviewItem]:
        """Approve every pending reply with a thumbs-up and no thumbs-down (rated since `since`)."""
        items = self.review_queue(ReviewFilter(status="pending", rating="up", since=since))
        ids = [item.message.id for item in items if not item.disagreement]
        return self.approve(ids, curator) if ids else []

    def _decide(self, action: str, message_ids: Sequence[int], actor: str, decide) -> list[ReviewItem]:  # noqa: ANN001
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return []
        now = self._now()
        with self._write() as db:
            # Read inside the write transaction: another app's change cannot slip in between.
            items = [self.review_item(message_id) for message_id in ids]  # NotFoundError: nothing written
            batch = None
            for item in items:
                before = _review_state(db, item.message.id)
                after = decide(item, before)
                _put_review(db, item.message.id, after, actor, now)
                audit_id = _audit(db, now, actor, action, item.message.id, batch, before, after)
                if len(items) > 1 and batch is None:
                    batch = audit_id
                    db.execute("UPDATE audit SET batch = ? WHERE id = ?", [batch, audit_id])
        return [self.review_item(message_id) for message_id in ids]

    def undo(self, actor: str) -> list[int]:
        """Revert `actor`'s last curation action (a whole batch for a bulk approval). Returns the
        message ids it touched; none when there is nothing to undo."""
        now = self._now()
        with self._write() as db:
            last = db.execute(
                "SELECT id, batch FROM audit WHERE actor = ? AND undone = 0"
                " AND action IN ('approve', 'reject', 'edit', 'tag') ORDER BY id DESC LIMIT 1",
                [actor],
            ).fetchone()
            if last is None:
                return []
            rows = db.execute(
                "SELECT id, message_id, before, after FROM audit WHERE id = ? OR (batch IS NOT NULL AND batch = ?)"
                " ORDER BY id",
                [last[0], last[1]],
            ).fetchall()
            for _, message_id, before, after in rows:
                current = _review_state(db, message_id)
                expected = json.loads(after) if after else None
                if _comparable(current) != _comparable(expected):
                    raise InputError(
                        f"cannot undo: reply {message_id} was changed since, by {current['curator'] if current else 'someone'}"
                    )
            for audit_id, message_id, before, after in rows:
                restored = json.loads(before) if before else None
                _put_review(db, message_id, restored, actor, now)
                db.execute("UPDATE audit SET undone = 1 WHERE id = ?", [audit_id])
                _audit(db, now, actor, "undo", message_id, None, json.loads(after) if after else None, restored)
        return [row[1] for row in rows]

    def audit_log(self, *, message_id: int | None = None, limit: int = 100) -> list[AuditEntry]:
        sql = "SELECT * FROM audit" + (" WHERE message_id = :m" if message_id is not None else "")
        sql += " ORDER BY id DESC LIMIT :limit"
        rows = self.db.query(sql, {"m": message_id, "limit": limit})
        return [from_row.audit_entry(row) for row in rows]

    # -- what the dataset builder reads --------------------------------------------------------

    def training_conversations(self) -> Iterator[TrainingConversation]:
        """Every conversation with a rated, reviewed or judged (blind A/B) reply, whole, with current
        ratings, reviews and judgements, ordered by id: one consistent snapshot (a single read transaction)."""
        conn = self.db.conn
        conn.execute("BEGIN")  # a read transaction: one snapshot across the queries below
        try:
            ratings: dict[int, list[tuple[str, int, str]]] = {}
            for message_id, user, rating, correction in conn.execute(
                "SELECT message_id, user, rating, correction FROM feedback WHERE current = 1"
                " ORDER BY message_id, updated_at, id"
            ):
                ratings.setdefault(message_id, []).append((user, rating, correction))
            reviews = {
                row[0]: row[1:]
                for row in conn.execute("SELECT message_id, status, answer, source FROM reviews")
            }
            judgements: dict[int, list[tuple[int, int, str]]] = {}
            for conversation_id, left_id, right_id, outcome in conn.execute(
                "SELECT conversation_id, left_id, right_id, outcome FROM judgements ORDER BY id"
            ):
                judgements.setdefault(conversation_id, []).append((left_id, right_id, outcome))
            rows = conn.execute(
                """
                SELECT c.id, c.user, c.system_prompt, c.title, m.id, m.parent_id, m.role, m.content
                FROM conversations c JOIN messages m ON m.conversation_id = c.id
                WHERE c.id IN (
                    SELECT conversation_id FROM messages
                    WHERE id IN (SELECT message_id FROM feedback WHERE current = 1)
                       OR id IN (SELECT message_id FROM reviews)
                ) OR c.id IN (SELECT conversation_id FROM judgements)
                ORDER BY c.id, m.id
                """
            )
            for (cid, user, system_prompt, title), group in groupby(rows, key=lambda r: r[:4]):
                messages = []
                for *_, mid, parent_id, role, content in group:
                    status, answer, source = reviews.get(mid, ("pending", None, None))
                    messages.append(
                        TrainingMessage(mid, parent_id, role, content, tuple(ratings.get(mid, ())), status, answer, source)
                    )
                yield TrainingConversation(
                    cid, user, system_prompt, tuple(messages), title, judgements=tuple(judgements.get(cid, ()))
                )
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    # -- dataset snapshots -------------------------------------------------------------------

    def register_dataset(
        self,
        dataset_id: str,
        path: str,
        counts: dict[str, Any],
        conversation_ids: Sequence[int],
        created_by: str,
        *,
        erasures_seen: int | None = None,
    ) -> DatasetRecord:
        """Record a built snapshot (again: a rebuild of the same state keeps the first record).

        `erasures_seen`: `erasure_mark()` before the build read the log. An erasure since then may have
        removed data the snapshot holds: ConflictError, and nothing is recorded (the caller rebuilds)."""
        with self._write() as db:
            if erasures_seen is not None and _erasure_mark(db) != erasures_seen:
                raise ConflictError(f"data was erased while dataset {dataset_id} was built; it must be built again")
            exists = db.execute("SELECT 1 FROM datasets WHERE id = ?", [dataset_id]).fetchone()
            if not exists:
                db["datasets"].insert(
                    {
                        "id": dataset_id,
                        "path": path,
                        "created_at": self._now(),
                        "created_by": created_by,
                        "counts": json.dumps(counts, sort_keys=True),
                        "erased_at": None,
                    }
                )
                db.conn.executemany(
                    "INSERT OR IGNORE INTO dataset_conversations (dataset_id, conversation_id) VALUES (?, ?)",
                    [(dataset_id, cid) for cid in sorted(set(conversation_ids))],
                )
        return self.dataset(dataset_id)

    def dataset(self, dataset_id: str) -> DatasetRecord:
        rows = list(self.db.query("SELECT * FROM datasets WHERE id = ?", [dataset_id]))
        if not rows:
            raise NotFoundError(f"no dataset snapshot {dataset_id}")
        return from_row.dataset(rows[0])

    def datasets(self) -> list[DatasetRecord]:
        return [from_row.dataset(row) for row in self.db.query("SELECT * FROM datasets ORDER BY created_at DESC, id")]

    def forget_dataset(self, dataset_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM datasets WHERE id = ?", [dataset_id])

    # -- erasure -----------------------------------------------------------------------------

    def forget(self, actor: str, *, conversation_id: int | None = None, user: str | None = None) -> Erasure:
        """Delete a conversation, or every conversation of `user`, with their messages, feedback,
        reviews, audit and search-index rows, in one transaction; mark the dataset snapshots that
        included them (the files are the caller's: see assistant/erasure.py). Forgetting a user also
        replaces their name in every record that keeps one. A database written before secure deletion is
        rewritten the first time (`rewrite_once`). Then the write-ahead log is emptied."""
        if (conversation_id is None) == (user is None):
            raise InputError("forget needs either a conversation or a user")
        now = self._now()
        with self._write() as db:
            if conversation_id is not None:
                ids = [r[0] for r in db.execute("SELECT id FROM conversations WHERE id = ?", [conversation_id])]
                if not ids:
                    raise NotFoundError(f"no conversation with id {conversation_id}")
                reason = f"held conversation {conversation_id}, erased by {actor}"
            else:
                reason = f"held a user's data, erased by {actor}"
                ids = [r[0] for r in db.execute("SELECT id FROM conversations WHERE user = ? ORDER BY id", [user])]
                # Their ratings of other people's replies go too, an approval of a correction they
                # wrote (its text is theirs) with its audit trail, and their name from curation records.
                written = "SELECT message_id FROM feedback WHERE user = :u AND correction != ''" \
                    " AND correction = (SELECT answer FROM reviews r WHERE r.message_id = feedback.message_id)"
                db.execute(f"DELETE FROM audit WHERE message_id IN ({written})", {"u": user})
                db.execute(
                    f"DELETE FROM reviews WHERE source = 'correction' AND message_id IN ({written})", {"u": user}
                )
                rated = [
                    r[0]
                    for r in db.execute(
                        "SELECT DISTINCT m.conversation_id FROM feedback f JOIN messages m ON m.id = f.message_id"
                        " WHERE f.user = ?",
                        [user],
                    )
                ]
                db.execute("DELETE FROM feedback WHERE user = ?", [user])
                _erase_name(db, user)
            messages, marked = erase_conversations(db, ids, now, reason)
            if user is not None:  # snapshots built from their ratings and corrections held their data too
                marked = sorted(set(marked) | set(_mark_datasets(db, rated, now, reason)))
            summary = {"conversations": len(ids), "messages": messages, "datasets_marked": len(marked)}
            _audit(db, now, actor, "forget", None, None, None, summary)
        rewritten = self.rewrite_once()  # a database written before secure deletion: once
        return Erasure(len(ids), messages, tuple(marked), tuple(ids), self.clear_wal(), rewritten)

    def erased_texts(self, *, conversation_id: int | None = None, user: str | None = None) -> list[str]:
        """What `forget` with the same arguments would erase, as text: the messages and titles of the
        conversations, and the comments and corrections the user wrote. Read before forgetting, to find
        copies outside the database (log lines, probe prompts)."""
        where, args = ("c.id = ?", [conversation_id]) if conversation_id is not None else ("c.user = ?", [user])
        texts = [r[0] for r in self.db.execute(f"SELECT title FROM conversations c WHERE {where}", args)]
        texts += [
            r[0] for r in self.db.execute(
                f"SELECT m.content FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE {where}", args
            )
        ]
        if user is not None:
            for comment, correction in self.db.execute("SELECT comment, correction FROM feedback WHERE user = ?", [user]):
                texts += [comment, correction]
        return [text for text in dict.fromkeys(texts) if text]

    def indexed_words(self, words: Iterable[str]) -> set[str]:
        """Those of `words` (lowercase) that messages in the search index still contain."""
        words = sorted(set(words))
        found: set[str] = set()
        conn = self.db.conn
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.messages_vocab USING fts5vocab(main, messages_fts, 'row')")
        for start in range(0, len(words), 500):
            chunk = words[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            found.update(r[0] for r in conn.execute(f"SELECT term FROM temp.messages_vocab WHERE term IN ({marks})", chunk))
        return found

    def gone_conversations(self, conversation_ids: Iterable[int], *, read_at: str) -> set[int]:
        """Those of `conversation_ids`, all there at store time `read_at`, that were erased since. Ids are
        reused: one that now names a conversation created after `read_at` names another one."""
        ids = sorted(set(conversation_ids))
        present = {
            r[0] for r in self.db.execute(
                "SELECT id FROM conversations WHERE id IN (SELECT value FROM json_each(?)) AND created_at <= ?",
                [json.dumps(ids), read_at],
            )
        }
        return set(ids) - present

    def erasure_mark(self) -> int:
        """The newest erasure so far: a dataset build notes it before reading (see `register_dataset`)."""
        return _erasure_mark(self.db)


def _erasure_mark(db) -> int:  # noqa: ANN001
    return db.execute("SELECT coalesce(max(id), 0) FROM erasures").fetchone()[0]


def erase_conversations(db, ids: Sequence[int], now: str, reason: str) -> tuple[int, list[str]]:  # noqa: ANN001
    """Delete conversations with everything hanging off them (in the caller's transaction), mark the
    dataset snapshots that included them, record the erasure and purge the words from the search
    index. Returns (messages deleted, snapshots marked)."""
    marks = ", ".join("?" for _ in ids) or "NULL"
    # Newest first, one by one: a reply always has a larger id than the message it follows (that one
    # existed when it was inserted), so no delete cascades down a parent_id chain; one statement
    # would, a level of trigger recursion per message, and SQLite stops at 1,000.
    message_ids = [
        (r[0],) for r in db.execute(
            f"SELECT id FROM messages WHERE conversation_id IN ({marks}) ORDER BY id DESC", list(ids)
        )
    ]
    db.execute(
        f"DELETE FROM audit WHERE message_id IN (SELECT id FROM messages WHERE conversation_id IN ({marks}))", list(ids)
    )
    marked = _mark_datasets(db, ids, now, reason)
    db.conn.executemany("DELETE FROM messages WHERE id = ?", message_ids)  # cascades: feedback, reviews, FTS
    db.execute(f"DELETE FROM conversations WHERE id IN ({marks})", list(ids))
    db.execute(
        "INSERT INTO erasures (at, conversations, messages) VALUES (?, ?, ?)", [now, len(ids), len(message_ids)]
    )
    # An FTS5 delete only appends a tombstone: the words stay in the older index segments until they
    # are merged. 'optimize' merges every segment into one, without the deleted rows.
    db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')")
    return len(message_ids), marked


def _erase_name(db, user: str) -> None:  # noqa: ANN001
    """Replace `user`'s name in every record that keeps one (as a whole word in free text)."""
    for table, column in (
        ("reviews", "curator"), ("audit", "actor"), ("datasets", "created_by"), ("training_runs", "user"),
        ("adapter_events", "actor"), ("golden_evals", "user"), ("judgements", "user"),
    ):
        db.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", [ERASED_NAME, user])
    name = re.compile(rf"(?<!\w){re.escape(user)}(?!\w)")
    for table, key, column in (
        ("adapter_events", "id", "reason"), ("adapters", "version", "reason"), ("training_runs", "id", "error"),
    ):
        for row_key, text in db.execute(f"SELECT {key}, {column} FROM {table} WHERE instr({column}, ?) > 0", [user]).fetchall():
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", [name.sub(ERASED_NAME, text), row_key])


def _mark_datasets(db, conversation_ids: Sequence[int], now: str, reason: str) -> list[str]:  # noqa: ANN001
    """Mark the snapshots that included these conversations as holding erased data, with why."""
    marks = ", ".join("?" for _ in conversation_ids) or "NULL"
    marked = [
        r[0]
        for r in db.execute(
            f"SELECT DISTINCT dataset_id FROM dataset_conversations WHERE conversation_id IN ({marks})"
            " ORDER BY dataset_id",
            list(conversation_ids),
        )
    ]
    db.conn.executemany(
        "UPDATE datasets SET erased_at = coalesce(erased_at, ?), erased_reason = coalesce(erased_reason, ?) WHERE id = ?",
        [(now, reason, d) for d in marked],
    )
    return marked


def _queue_where(f: ReviewFilter) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = ["m.role = 'assistant'"]
    args: dict[str, Any] = {}
    if f.status is not None:
        if f.status not in REVIEW_STATUSES:
            raise InputError(f"status must be one of {', '.join(REVIEW_STATUSES)}, got {f.status!r}")
        where.append("coalesce(v.status, 'pending') = :status")
        args["status"] = f.status
    if f.rating is not None:
        if f.rating not in ("up", "down"):
            raise InputError(f"rating must be up or down, got {f.rating!r}")
        where.append("r.ups > 0" if f.rating == "up" else "r.downs > 0")
    if f.tag:
        where.append(
            "(EXISTS (SELECT 1 FROM feedback f, json_each(f.reasons) t"
            "         WHERE f.message_id = m.id AND f.current = 1 AND t.value = :tag)"
            " OR EXISTS (SELECT 1 FROM json_each(coalesce(v.tags, '[]')) t WHERE t.value = :tag))"
        )
        args["tag"] = f.tag
    if f.rater:
        where.append("EXISTS (SELECT 1 FROM feedback f WHERE f.message_id = m.id AND f.current = 1 AND f.user = :rater)")
        args["rater"] = f.rater
    if f.model_version:
        where.append("coalesce(m.adapter, m.model) = :version")
        args["version"] = f.model_version
    if f.since:
        where.append("r.rated_at >= :since")
        args["since"] = f.since
    if f.until:
        where.append("r.rated_at < :until")
        args["until"] = f.until
    if f.search:

        query = from_row.fts_query(f.search)
        if query:
            where.append(
                "m.conversation_id IN (SELECT conversation_id FROM messages WHERE rowid IN"
                " (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :query))"
            )
            args["query"] = query
    return where, args


def _state(status: str, answer: str | None, source: str | None, tags: Sequence[str]) -> dict[str, Any]:
    return {"status": status, "answer": answer, "source": source, "tags": list(tags)}


def _comparable(state: dict[str, Any] | None) -> tuple | None:
    if state is None:
        return None
    return (state["status"], state["answer"], state["source"], tuple(state["tags"]))


def _review_state(db, message_id: int) -> dict[str, Any] | None:  # noqa: ANN001
    row = db.execute(
        "SELECT status, answer, source, tags, curator, decided_at FROM reviews WHERE message_id = ?", [message_id]
    ).fetchone()
    if row is None:
        return None
    return {
        "status": row[0], "answer": row[1], "source": row[2], "tags": json.loads(row[3]), "curator": row[4],
        "decided_at": row[5],
    }


def _put_review(db, message_id: int, state: dict[str, Any] | None, curator: str, now: str) -> None:  # noqa: ANN001
    if state is None:
        db.execute("DELETE FROM reviews WHERE message_id = ?", [message_id])
        return
    old = _review_state(db, message_id)
    decided = old is None or _comparable({**old, "tags": ()}) != _comparable({**state, "tags": ()})
    db.execute(
        "INSERT OR REPLACE INTO reviews (message_id, status, answer, source, tags, curator, decided_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            message_id, state["status"], state["answer"], state["source"], json.dumps(list(state["tags"])), curator,
            now if decided and state["status"] != "pending" else (old or {}).get("decided_at"), now,
        ],
    )


def _audit(db, now: str, actor: str, action: str, message_id: int | None, batch: int | None,  # noqa: ANN001
           before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    def encode(state: dict[str, Any] | None) -> str | None:
        if state is None:
            return None
        return json.dumps({k: v for k, v in state.items() if k not in ("curator", "decided_at")}, sort_keys=True)

    cursor = db.execute(
        "INSERT INTO audit (at, actor, action, message_id, batch, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [now, actor, action, message_id, batch, encode(before), encode(after)],
    )
    return cursor.lastrowid
