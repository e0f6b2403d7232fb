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


@migrations()
def m004_curation_and_datasets(db: Database) -> None:
    db.executescript(
        """
        -- A curator's decision on a rated reply. No row (or 'pending') means not reviewed yet.
        -- answer: the curated answer an approval trains on (the reply as it is, the rater's
        -- correction, or the curator's edit, per `source`); the reply itself stays untouched.
        CREATE TABLE reviews (
            message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
            status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
            answer TEXT,
            source TEXT CHECK (source IN ('reply', 'correction', 'edit')),
            tags TEXT NOT NULL DEFAULT '[]',
            curator TEXT NOT NULL,
            decided_at TEXT,                -- when it was last approved, edited or rejected (tags aside)
            updated_at TEXT NOT NULL
        );
        CREATE INDEX reviews_status ON reviews (status, decided_at);

        -- Who did what and when. before/after: the review row as JSON (null: none). A bulk action
        -- shares one batch (the id of its first row), and one undo reverts the whole batch.
        -- No foreign key: erasure deletes a message's rows itself and records only counts.
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            message_id INTEGER,
            batch INTEGER,
            before TEXT,
            after TEXT,
            undone INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX audit_actor ON audit (actor, id);
        CREATE INDEX audit_message ON audit (message_id);

        -- Dataset snapshots built from the log (the files live in datasets/<id>/), and the
        -- conversations each includes, so erasure can mark the snapshots that held erased data.
        CREATE TABLE datasets (
            id TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            counts TEXT NOT NULL DEFAULT '{}',
            erased_at TEXT
        );
        CREATE TABLE dataset_conversations (
            dataset_id TEXT NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
            conversation_id INTEGER NOT NULL,
            PRIMARY KEY (dataset_id, conversation_id)
        ) WITHOUT ROWID;
        CREATE INDEX dataset_conversations_conversation ON dataset_conversations (conversation_id);
        """
    )


@migrations()
def m005_training_and_adapters(db: Database) -> None:
    db.executescript(
        """
        -- One `assistant retrain` run (its files live in runs/<id>/). status: running, interrupted
        -- (killed; `--resume` continues it), failed, nothing (no data), published (a version came out).
        CREATE TABLE training_runs (
            id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL CHECK (status IN ('running', 'interrupted', 'failed', 'nothing', 'published')),
            user TEXT NOT NULL,
            pid INTEGER,
            dataset_id TEXT,
            data_until TEXT,               -- the store's time when the dataset was read
            base_model TEXT NOT NULL DEFAULT '',
            config TEXT NOT NULL DEFAULT '{}',
            version TEXT,
            error TEXT
        );

        -- Per-step metrics, written as training logs them (a resumed run rewrites the steps it repeats).
        CREATE TABLE training_metrics (
            run_id TEXT NOT NULL REFERENCES training_runs (id) ON DELETE CASCADE,
            split TEXT NOT NULL CHECK (split IN ('train', 'eval')),
            step INTEGER NOT NULL,
            epoch REAL,
            loss REAL,
            grad_norm REAL,
            learning_rate REAL,
            at TEXT NOT NULL,
            PRIMARY KEY (run_id, split, step)
        ) WITHOUT ROWID;

        -- Published adapter versions (adapters/<version>/). At most one is active.
        CREATE TABLE adapters (
            version TEXT PRIMARY KEY,
            path TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('candidate', 'active', 'rejected', 'retired')),
            reason TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            run_id TEXT,
            dataset_id TEXT,
            data_until TEXT,
            base_model TEXT NOT NULL DEFAULT '',
            metrics TEXT NOT NULL DEFAULT '{}',
            report TEXT NOT NULL DEFAULT '{}',
            activated_at TEXT,
            deleted_at TEXT
        );
        CREATE UNIQUE INDEX adapters_one_active ON adapters (status) WHERE status = 'active';

        -- Every status change of a version: who, when, why. Rollback walks the activations back.
        CREATE TABLE adapter_events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            version TEXT,
            previous TEXT,
            reason TEXT NOT NULL DEFAULT ''
        );
        """
    )


@migrations()
def m006_reply_errors(db: Database) -> None:
    # Why a reply failed (the model server unreachable, a stream broken off); finish_reason is then 'error'
    # and the content is what arrived before the failure.
    db.execute("ALTER TABLE messages ADD COLUMN error TEXT")


@migrations()
def m007_erasure(db: Database) -> None:
    db.executescript(
        """
        -- One row per erasure (forget, a conversation deleted in the chat): no names, no text. A dataset
        -- build notes the newest id before it reads and refuses to register if a newer one appears.
        CREATE TABLE erasures (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            conversations INTEGER NOT NULL,
            messages INTEGER NOT NULL
        );
        -- The tombstone of a snapshot whose files were deleted because it held erased data: why.
        ALTER TABLE datasets ADD COLUMN erased_reason TEXT;
        """
    )


@migrations()
def m008_secure_deletion_since(db: Database) -> None:
    db.executescript(
        """
        -- Since when no byte deleted earlier can be left in the database file. One written before secure
        -- deletion (m007) keeps deleted text in free pages and in the unused space of pages in use until
        -- it is rewritten: the first `forget` does that (VACUUM) and records when. NULL: not yet. The
        -- store records the creation of a database created with secure deletion on.
        CREATE TABLE secure_deletion (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            since TEXT
        );
        INSERT INTO secure_deletion (id, since) VALUES (1, NULL);
        """
    )


@migrations()
def m009_training_metrics_by_stage(db: Database) -> None:
    # A run trains in stages: SFT, then (optionally) a preference stage (KTO or DPO) whose steps start
    # again at 1. SQLite cannot change a primary key in place: the table is rebuilt, its rows kept as
    # the SFT stage's. One statement at a time (not executescript, which would commit first): the
    # rebuild stays inside the migration's transaction. Per-step metrics of each stage, written as
    # training logs them (a resumed stage rewrites the steps it repeats).
    db.execute("ALTER TABLE training_metrics RENAME TO training_metrics_m008")
    db.execute(
        """
        CREATE TABLE training_metrics (
            run_id TEXT NOT NULL REFERENCES training_runs (id) ON DELETE CASCADE,
            stage TEXT NOT NULL DEFAULT 'sft' CHECK (stage IN ('sft', 'preference')),
            split TEXT NOT NULL CHECK (split IN ('train', 'eval')),
            step INTEGER NOT NULL,
            epoch REAL,
            loss REAL,
            grad_norm REAL,
            learning_rate REAL,
            at TEXT NOT NULL,
            PRIMARY KEY (run_id, stage, split, step)
        ) WITHOUT ROWID
        """
    )
    db.execute(
        "INSERT INTO training_metrics (run_id, stage, split, step, epoch, loss, grad_norm, learning_rate, at)"
        " SELECT run_id, 'sft', split, step, epoch, loss, grad_norm, learning_rate, at FROM training_metrics_m008"
    )
    db.execute("DROP TABLE training_metrics_m008")


@migrations()
def m010_golden_set_evals(db: Database) -> None:
    # `assistant eval`: a golden set (its file name and the SHA-256 of its bytes) answered by one model.
    # version: the adapter version, NULL for the bare base model; model: the base model's name. One run of
    # the command writes a row per model, sharing one batch (the id of its first row). scores: per question
    # (its line, question, ROUGE-L F1, the shares of must phrases present and of must_not phrases absent,
    # passed) as a JSON list; totals: the mean ROUGE-L and the pass rate as a JSON object. One statement at
    # a time (executescript would commit first): the migration stays one transaction.
    db.execute(
        """
        CREATE TABLE golden_evals (
            id INTEGER PRIMARY KEY,
            batch INTEGER NOT NULL,
            version TEXT REFERENCES adapters (version),
            model TEXT NOT NULL DEFAULT '',
            file TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            at TEXT NOT NULL,
            user TEXT NOT NULL,
            scores TEXT NOT NULL DEFAULT '[]',
            totals TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    db.execute("CREATE INDEX golden_evals_version ON golden_evals (version, id)")


@migrations()
def m011_judgements(db: Database) -> None:
    # Blind A/B judgements in the chat: two sibling assistant replies (same parent) shown side by side,
    # and which one the user picked. left_version / right_version: the adapter version that wrote each
    # (the message's `adapter`, copied so that win rates need no join; NULL: the base model). A judgement
    # goes with either of its messages (ON DELETE CASCADE), so erasing a conversation erases it. One
    # statement at a time (executescript would commit first): the migration stays one transaction.
    db.execute(
        """
        CREATE TABLE judgements (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            left_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            right_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            left_version TEXT,
            right_version TEXT,
            outcome TEXT NOT NULL CHECK (outcome IN ('left', 'right', 'tie', 'both_bad')),
            user TEXT NOT NULL,
            created_at TEXT NOT NULL,
            CHECK (left_id != right_id)
        )
        """
    )
    db.execute("CREATE INDEX judgements_conversation ON judgements (conversation_id, id)")
    db.execute("CREATE INDEX judgements_left ON judgements (left_id)")
    db.execute("CREATE INDEX judgements_right ON judgements (right_id)")
    db.execute("CREATE INDEX judgements_versions ON judgements (left_version, right_version)")


@migrations()
def m012_conversation_leaf(db: Database) -> None:
    # The message a conversation's current branch ends at: every new message becomes it, and a chat moves
    # it when the agent picks one of two blind answers (or another answer of the same question), so the
    # conversation reopens where it went on. NULL (conversations from before, or its message erased): the
    # newest message, as before.
    db.execute("ALTER TABLE conversations ADD COLUMN leaf_id INTEGER REFERENCES messages (id) ON DELETE SET NULL")
