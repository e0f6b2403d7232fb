"""The schema, as named migrations applied in order and recorded in `_sqlite_migrations`.

Append new migrations at the end; never edit one that has shipped. The Store applies them
inside one IMMEDIATE transaction, so apps that open the same database at once do not race.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("assistant")


@migrations()
def m001_conversations_and_messages(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            user TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            system_prompt TEXT NOT NULL DEFAULT '',
            archived INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX conversations_recent ON conversations (archived, updated_at);

        -- parent_id: the message this one answers or follows; regenerated replies are
        -- siblings under the same parent.
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES messages (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            created_at TEXT NOT NULL,
            model TEXT,
            adapter TEXT,
            params TEXT,
            ttft_ms REAL,
            token_count INTEGER,
            tokens_per_s REAL,
            finish_reason TEXT
        );
        CREATE INDEX messages_conversation ON messages (conversation_id, id);
        CREATE INDEX messages_parent ON messages (parent_id);
        """
    )


@migrations()
def m002_feedback(db: Database) -> None:
    db.executescript(
        """
        -- One current rating per user per message; re-rating keeps the earlier rows (current = 0).
        CREATE TABLE feedback (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            user TEXT NOT NULL,
            rating INTEGER NOT NULL CHECK (rating IN (1, -1)),
            reasons TEXT NOT NULL DEFAULT '[]',
            comment TEXT NOT NULL DEFAULT '',
            correction TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            current INTEGER NOT NULL DEFAULT 1
        );
        CREATE UNIQUE INDEX feedback_one_current ON feedback (message_id, user) WHERE current = 1;
        CREATE INDEX feedback_message ON feedback (message_id);
        """
    )


@migrations()
def m003_message_search(db: Database) -> None:
    # No stemming: search runs as the user types, and a prefix must match the words as written.
    db["messages"].enable_fts(
        ["content"], fts_version="FTS5", create_triggers=True, tokenize="unicode61 remove_diacritics 2"
    )
