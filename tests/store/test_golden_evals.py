"""`assistant eval`'s results in the store: one row per model answered (NULL version: the base model),
one batch per run, per-question scores and totals as JSON, newest first per version; a database written
before them is upgraded with its versions kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from assistant.errors import NotFoundError
from assistant.store import GoldenEval, Store
from assistant.store.migrations import migrations

SCORES = [{"line": 1, "question": "Reset?", "rouge_l": 1.0, "must_share": None, "must_not_share": None, "passed": None}]
TOTALS = {"questions": 1, "rouge_l": 1.0, "rouge_l_questions": 1, "passed": 0, "phrase_questions": 0, "pass_rate": None}


def _record(store: Store, *results, file: str = "golden.jsonl") -> list[GoldenEval]:  # noqa: ANN002
    return store.record_golden_evals(file=file, sha256="ab" * 32, user="ann", model="tiny", results=list(results))


def test_one_run_is_one_batch_of_rows_per_model_newest_first_per_version(store: Store) -> None:
    store.register_adapter("v0001", path="adapters/v0001", actor="cora")
    low = {**TOTALS, "rouge_l": 0.25}

    first = _record(store, ("v0001", SCORES, TOTALS), (None, SCORES, low))
    second = _record(store, ("v0001", SCORES, low), (None, [], low), file="other.jsonl")

    assert [(e.version, e.batch) for e in first] == [("v0001", first[0].id), (None, first[0].id)]
    assert [e.batch for e in second] == [second[0].id] * 2 and second[0].id == first[1].id + 1
    assert first[0] == GoldenEval(first[0].id, first[0].id, "v0001", "tiny", "golden.jsonl", "ab" * 32,
                                  first[0].at, "ann", SCORES, TOTALS)
    assert [(e.file, e.totals["rouge_l"]) for e in store.golden_evals("v0001")] == [("other.jsonl", 0.25), ("golden.jsonl", 1.0)]
    assert [e.id for e in store.golden_evals(None)] == [second[1].id, first[1].id]  # the base model's
    assert store.golden_evals("v0002") == []


def test_an_unknown_version_stores_nothing_of_the_run(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no adapter version v0009"):
        _record(store, (None, SCORES, TOTALS), ("v0009", SCORES, TOTALS))
    assert store.golden_evals(None) == []
    with pytest.raises(sqlite3.IntegrityError):  # and the table's foreign key says so too
        store.db.execute(
            "INSERT INTO golden_evals (batch, version, file, sha256, at, user) VALUES (1, 'v0009', 'f', 's', 't', 'u')"
        )


def test_a_database_from_before_golden_evals_is_upgraded(tmp_path: Path, clock) -> None:  # noqa: ANN001
    path = tmp_path / "assistant.db"
    db = Database(path)
    migrations.apply(db, stop_before="m010_golden_set_evals")
    assert "golden_evals" not in db.table_names()
    db.execute(
        "INSERT INTO adapters (version, path, status, created_at) VALUES ('v0001', 'adapters/v0001', 'candidate', 't')"
    )
    db.conn.commit()
    db.close()

    store = Store.open(path, clock=clock)
    try:
        assert "m010_golden_set_evals" in store.applied_migrations()
        assert store.golden_evals("v0001") == []
        [stored] = _record(store, ("v0001", SCORES, TOTALS))
        assert store.golden_evals("v0001") == [stored]
    finally:
        store.close()


def test_forget_a_user_erases_their_name_from_the_evals_they_ran(store: Store) -> None:
    store.register_adapter("v0001", path="adapters/v0001", actor="cora")
    store.record_golden_evals(file="g.jsonl", sha256="ab" * 32, user="bob", model="tiny", results=[("v0001", SCORES, TOTALS)])
    store.forget("cora", user="bob")
    assert [e.user for e in store.golden_evals("v0001")] != ["bob"]
    assert store.db.execute("SELECT count(*) FROM golden_evals WHERE user = 'bob'").fetchone()[0] == 0
