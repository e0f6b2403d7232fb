"""Blind A/B judgements in the store: validation, win rates per version pair, erasure."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from assistant.adapters.winrate import WinRate
from assistant.errors import InputError, NotFoundError
from assistant.store import ReplyRecord, Store, VersionPair
from assistant.store.migrations import migrations


def reply(store: Store, cid: int, parent: int, text: str, adapter: str | None) -> int:
    record = ReplyRecord(text, "tiny", adapter, {}, 10.0, 3, 30.0, "stop")
    return store.add_message(cid, "assistant", text, parent_id=parent, reply=record).id


def pair(store: Store, left: str | None, right: str | None, user: str = "ann") -> tuple[int, int, int]:
    """A conversation whose question has two replies, by `left` and `right` (None: the base model)."""
    cid = store.create_conversation(user, "sys").id
    question = store.add_message(cid, "user", "Is the hub waterproof?").id
    return cid, reply(store, cid, question, "Splash-proof.", left), reply(store, cid, question, "Yes, fully.", right)


def judge_many(store: Store, candidate: str | None, baseline: str | None, outcomes: dict[str, int]) -> None:
    """Judgements of `candidate` against `baseline`: "win", "loss", "tie", "both_bad" counts, alternating
    which side the candidate is shown on."""
    n = 0
    for kind, count in outcomes.items():
        for _ in range(count):
            swapped = n % 2 == 1
            _, left, right = pair(store, baseline, candidate) if swapped else pair(store, candidate, baseline)
            candidate_side, other_side = ("right", "left") if swapped else ("left", "right")
            outcome = {"win": candidate_side, "loss": other_side}.get(kind, kind)
            store.judge(left, right, outcome, "bob")
            n += 1


def test_a_judgement_records_both_replies_their_versions_the_outcome_who_and_when(store: Store) -> None:
    cid, left, right = pair(store, "v0002", None)
    judgement = store.judge(left, right, "left", "bob")
    assert (judgement.conversation_id, judgement.left_id, judgement.right_id) == (cid, left, right)
    assert (judgement.left_version, judgement.right_version) == ("v0002", None)
    assert (judgement.outcome, judgement.user, judgement.chosen_id) == ("left", "bob", left)
    assert judgement.created_at.startswith("2026-11-02T09:30")
    assert store.judgements() == [judgement] == store.judgements(cid)
    assert store.judgements(cid + 1) == []
    assert store.judgement(judgement.id) == judgement
    assert store.judge(left, right, "tie", "cora").chosen_id is None


def test_bad_judgements_are_refused_and_nothing_is_stored(store: Store) -> None:
    cid, left, right = pair(store, "v0002", "v0001")
    question = store.message(left).parent_id
    other_cid, other, _ = pair(store, "v0002", "v0001")
    cousin = reply(store, cid, store.add_message(cid, "user", "And the camera?", parent_id=left).id, "Yes.", None)

    with pytest.raises(InputError, match="one of left, right, tie, both_bad"):
        store.judge(left, right, "better", "bob")
    with pytest.raises(InputError, match="two different replies"):
        store.judge(left, left, "left", "bob")
    with pytest.raises(NotFoundError, match="no message with id 999"):
        store.judge(left, 999, "left", "bob")
    with pytest.raises(InputError, match="is a user message; only assistant replies are judged"):
        store.judge(question, right, "left", "bob")
    with pytest.raises(InputError, match="not sibling replies"):
        store.judge(left, cousin, "left", "bob")
    with pytest.raises(InputError, match="not sibling replies"):
        store.judge(left, other, "right", "bob")
    with pytest.raises(InputError, match="who judged"):
        store.judge(left, right, "left", " ")
    assert store.judgements() == []
    with pytest.raises(sqlite3.IntegrityError):  # the table refuses what the store refuses
        store.db.execute(
            "INSERT INTO judgements (conversation_id, left_id, right_id, outcome, user, created_at)"
            " VALUES (?, ?, ?, 'better', 'bob', 'now')", [other_cid, left, right]
        )


def test_win_rate_counts_the_candidates_side_in_either_position(store: Store) -> None:
    judge_many(store, "v0002", "v0001", {"win": 5, "loss": 2, "tie": 2, "both_bad": 1})
    judge_many(store, "v0002", None, {"win": 1})  # another pair: not counted
    judge_many(store, "v0001", "v0001", {"win": 1})  # the same version on both sides: no pair

    score = store.win_rate("v0002", "v0001")
    assert score == WinRate(wins=5, losses=2, ties=3)
    assert score.rate == pytest.approx((5 + 1.5) / 10)
    assert store.win_rate("v0001", "v0002") == WinRate(wins=2, losses=5, ties=3)
    assert store.win_rate("v0002", None) == WinRate(1, 0, 0) and store.win_rate(None, "v0002") == WinRate(0, 1, 0)
    assert store.win_rate("v0003", "v0001") == WinRate(0, 0, 0)
    assert store.win_rate("v0001", "v0001") == WinRate(0, 0, 0)


def test_version_pairs_lists_each_pair_once_newer_against_older(store: Store) -> None:
    assert store.version_pairs() == []
    judge_many(store, "v0010", "v0009", {"win": 2, "loss": 1})
    judge_many(store, None, "v0009", {"win": 1})  # stored base-first: still the version against the base
    judge_many(store, "v0002", "v0002", {"tie": 1})

    pairs = store.version_pairs()
    assert pairs == [
        VersionPair("v0010", "v0009", WinRate(2, 1, 0)),
        VersionPair("v0009", None, WinRate(0, 1, 0)),
    ]
    assert store.version_pairs("v0010") == pairs[:1]
    assert store.version_pairs(None) == pairs[1:]
    assert store.version_pairs("v0002") == []
    assert pairs[0].as_dict()["candidate"] == "v0010" and pairs[0].as_dict()["wins"] == 2


def test_judgements_reach_the_training_snapshot_and_include_their_conversation(store: Store) -> None:
    cid, left, right = pair(store, "v0002", None)
    assert list(store.training_conversations()) == []  # nothing rated, reviewed or judged
    store.judge(left, right, "right", "bob")
    store.judge(left, right, "tie", "cora")
    [conversation] = store.training_conversations()
    assert conversation.id == cid
    assert conversation.judgements == ((left, right, "right"), (left, right, "tie"))


def test_forgetting_a_conversation_erases_its_judgements(store: Store) -> None:
    cid, left, right = pair(store, "v0002", "v0001")
    _, kept_left, kept_right = pair(store, "v0002", "v0001")
    store.judge(left, right, "left", "bob")
    kept = store.judge(kept_left, kept_right, "right", "bob")
    store.forget("cora", conversation_id=cid)
    assert store.judgements() == [kept]
    assert store.win_rate("v0002", "v0001") == WinRate(0, 1, 0)


def test_deleting_a_judged_reply_cascades(store: Store) -> None:
    _, left, right = pair(store, "v0002", "v0001")
    store.judge(left, right, "left", "bob")
    with store._write() as db:
        db.execute("DELETE FROM messages WHERE id = ?", [right])
    assert store.judgements() == []


def test_forgetting_a_user_erases_their_conversations_judgements_and_their_name(store: Store) -> None:
    _, left, right = pair(store, "v0002", "v0001", user="dave")  # dave's own conversation
    store.judge(left, right, "left", "dave")
    _, other_left, other_right = pair(store, "v0002", "v0001", user="erin")  # dave judged in erin's
    store.judge(other_left, other_right, "right", "dave")
    store.judge(other_left, other_right, "tie", "erin")

    store.forget("cora", user="dave")
    judgements = store.judgements()
    assert [(j.outcome, j.user) for j in judgements] == [("right", "(erased)"), ("tie", "erin")]
    assert store.db.execute("SELECT count(*) FROM judgements WHERE user = 'dave'").fetchone()[0] == 0


def test_a_database_from_before_judgements_is_upgraded(tmp_path: Path, clock) -> None:  # noqa: ANN001
    path = tmp_path / "assistant.db"
    db = Database(path)
    migrations.apply(db, stop_before="m011_judgements")
    assert "judgements" not in db.table_names()
    db.conn.commit()
    db.close()

    store = Store.open(path, clock=clock)
    try:
        assert "m011_judgements" in store.applied_migrations()
        _, left, right = pair(store, "v0002", None)
        assert store.judge(left, right, "left", "bob").left_version == "v0002"
    finally:
        store.close()


def test_picks_count_as_new_ratings_for_retrain_min_new_ratings_ties_do_not(store: Store) -> None:
    judge_many(store, "v0002", "v0001", {"win": 2, "loss": 1, "tie": 2, "both_bad": 1})
    assert store.ratings_since(None) == 3  # the picks: a tie or both bad prefers nothing
    since = store.now()  # the clock moves a second per reading: later picks are after it
    judge_many(store, "v0002", "v0001", {"win": 1})
    assert store.ratings_since(since) == 1
