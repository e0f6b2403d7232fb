"""Curation as a curator relies on it: the review queue and its filters, approve / reject / edit /
tags with their audit trail and undo, the counts, the training snapshot the dataset builder reads,
dataset snapshots, and erasure (forget)."""

from __future__ import annotations

import json

import pytest

from assistant.errors import InputError, NotFoundError
from assistant.store import CurationCounts, Message, ReplyRecord, ReviewFilter, Store

ALL = ReviewFilter(status=None)


def _reply_record(content: str, model: str, adapter: str | None) -> ReplyRecord:
    return ReplyRecord(
        content=content,
        model=model,
        adapter=adapter,
        params={"temperature": 0.7},
        ttft_ms=30.0,
        token_count=8,
        tokens_per_s=50.0,
        finish_reason="stop",
    )


def _reply(
    store: Store,
    question: str = "How do I reset my password?",
    answer: str = "Use the reset link on the login page.",
    *,
    owner: str = "ann",
    reply: ReplyRecord | None = None,
) -> Message:
    """A new conversation of `owner` with one question and its (unrated) reply."""
    conversation = store.create_conversation(owner, "Be helpful.")
    asked = store.add_message(conversation.id, "user", question)
    if reply is not None:
        return store.add_message(conversation.id, "assistant", reply.content, parent_id=asked.id, reply=reply)
    return store.add_message(conversation.id, "assistant", answer, parent_id=asked.id)


def _rated(store: Store, rating: int = 1, *, rater: str = "ann", **kwargs) -> Message:  # noqa: ANN003
    reply = _reply(store, **kwargs)
    store.rate(reply.id, rater, rating)
    return reply


def _ids(items) -> list[int]:  # noqa: ANN001
    return [item.message.id for item in items]


def _rows(store: Store, sql: str, args=()) -> list[tuple]:  # noqa: ANN001
    return store.db.execute(sql, list(args)).fetchall()


def _everything(store: Store) -> str:
    """Every row of every table but the search index's internals, as text."""
    tables = [
        name
        for name in store.db.table_names()
        if not name.startswith("messages_fts") and name != "_sqlite_migrations"
    ]
    return json.dumps({table: _rows(store, f"SELECT * FROM [{table}]") for table in tables})


# -- the queue -------------------------------------------------------------------------------


def test_queue_holds_only_rated_assistant_replies(store: Store) -> None:
    rated = _reply(store, "printer jams", "Open tray two.", owner="bob")
    _reply(store, "unrated question", "unrated answer")
    feedback = store.rate(rated.id, "ann", 1)

    [item] = store.review_queue()
    assert item.message.id == rated.id
    assert item.message.content == "Open tray two."
    assert (item.ups, item.downs, item.raters) == (1, 0, ("ann",))
    assert item.rated_at == feedback.updated_at
    assert (item.conversation_title, item.conversation_user) == ("printer jams", "bob")
    assert (item.status, item.answer, item.source, item.tags, item.curator, item.reviewed_at) == (
        "pending", None, None, (), None, None,
    )
    assert item.disagreement is False
    assert item.proposed_correction == ""
    assert item.curated_answer == "Open tray two."
    assert store.review_queue(ALL) == [item]
    assert store.review_item(rated.id) == item


def test_queue_shows_thumbs_down_first_then_thumbs_up_oldest_rating_first(store: Store) -> None:
    up_old = _reply(store)
    down_old = _reply(store)
    split = _reply(store)
    up_new = _reply(store)
    down_new = _reply(store)
    store.rate(up_old.id, "ann", 1)
    store.rate(down_old.id, "ann", -1)
    store.rate(split.id, "ann", 1)
    store.rate(up_new.id, "ann", 1)
    store.rate(split.id, "bob", -1)  # a disagreement: rated after every reply but down_new
    store.rate(down_new.id, "ann", -1)

    queue = store.review_queue()
    assert _ids(queue) == [down_old.id, split.id, down_new.id, up_old.id, up_new.id]
    assert [item.disagreement for item in queue] == [False, True, False, False, False]
    disagreement = queue[1]
    assert (disagreement.ups, disagreement.downs, disagreement.raters) == (1, 1, ("ann", "bob"))
    assert store.review_queue(limit=2) == queue[:2]


def test_rerating_replaces_the_vote_and_only_current_ratings_count(store: Store) -> None:
    reply = _reply(store)
    store.rate(reply.id, "ann", 1, reasons=["tone"])
    again = store.rate(reply.id, "ann", -1, reasons=["incomplete"])

    [item] = store.review_queue()
    assert (item.ups, item.downs, item.raters) == (0, 1, ("ann",))
    assert item.rated_at == again.updated_at
    assert _ids(store.review_queue(ReviewFilter(rating="down"))) == [reply.id]
    assert store.review_queue(ReviewFilter(rating="up")) == []
    assert _ids(store.review_queue(ReviewFilter(tag="incomplete"))) == [reply.id]
    assert store.review_queue(ReviewFilter(tag="tone")) == []  # the replaced vote's reason
    assert len(store.feedback_history(reply.id)) == 2


def test_proposed_correction_is_the_latest_current_one(store: Store) -> None:
    reply = _reply(store)
    store.rate(reply.id, "ann", -1, correction="Ann's answer.")
    assert store.review_item(reply.id).proposed_correction == "Ann's answer."
    store.rate(reply.id, "bob", -1, correction="  Bob's answer.  ")
    assert store.review_item(reply.id).proposed_correction == "Bob's answer."
    store.rate(reply.id, "ann", -1, correction="Ann's second answer.")
    assert store.review_item(reply.id).proposed_correction == "Ann's second answer."
    # Ann takes hers back: her earlier corrections are no longer current, Bob's is proposed again.
    store.rate(reply.id, "ann", 1)
    item = store.review_item(reply.id)
    assert item.proposed_correction == "Bob's answer."
    assert item.curated_answer == "Bob's answer."


def test_queue_filters_by_status(store: Store) -> None:
    pending = _rated(store)
    approved = _rated(store)
    rejected = _rated(store)
    store.approve([approved.id], "cora")
    store.reject([rejected.id], "cora")

    assert _ids(store.review_queue()) == [pending.id]  # pending is the default
    assert _ids(store.review_queue(ReviewFilter(status="pending"))) == [pending.id]
    assert _ids(store.review_queue(ReviewFilter(status="approved"))) == [approved.id]
    assert _ids(store.review_queue(ReviewFilter(status="rejected"))) == [rejected.id]
    assert sorted(_ids(store.review_queue(ALL))) == [pending.id, approved.id, rejected.id]


def test_queue_filters_by_rating(store: Store) -> None:
    up = _rated(store, 1)
    down = _rated(store, -1)
    split = _rated(store, 1)
    store.rate(split.id, "bob", -1)

    assert sorted(_ids(store.review_queue(ReviewFilter(rating="up")))) == [up.id, split.id]
    assert sorted(_ids(store.review_queue(ReviewFilter(rating="down")))) == [down.id, split.id]


def test_queue_filters_by_rater_reason_tag_and_curator_tag(store: Store) -> None:
    by_reason = _reply(store)
    by_curator = _reply(store)
    untagged = _rated(store, -1)
    store.rate(by_reason.id, "ann", -1, reasons=["wrong facts", "tone"])
    store.rate(by_curator.id, "ann", 1)
    store.set_tags(by_curator.id, "cora", ["wrong facts", "billing"])

    assert _ids(store.review_queue(ReviewFilter(tag="wrong facts"))) == [by_reason.id, by_curator.id]
    assert _ids(store.review_queue(ReviewFilter(tag="tone"))) == [by_reason.id]
    assert _ids(store.review_queue(ReviewFilter(tag="billing"))) == [by_curator.id]
    assert store.review_queue(ReviewFilter(tag="unsafe")) == []
    assert untagged.id in _ids(store.review_queue())


def test_queue_filters_by_current_rater(store: Store) -> None:
    anns = _reply(store)
    bobs = _reply(store)
    both = _reply(store)
    store.rate(anns.id, "ann", 1)
    store.rate(bobs.id, "bob", 1)
    store.rate(both.id, "ann", 1)
    store.rate(both.id, "bob", -1)

    assert sorted(_ids(store.review_queue(ReviewFilter(rater="ann")))) == [anns.id, both.id]
    assert sorted(_ids(store.review_queue(ReviewFilter(rater="bob")))) == [bobs.id, both.id]
    assert store.review_queue(ReviewFilter(rater="carol")) == []


def test_queue_filters_by_model_version_adapter_else_model(store: Store) -> None:
    adapted = _rated(store, reply=_reply_record("With adapter.", "base-model", "support-v2"))
    plain = _rated(store, reply=_reply_record("Without adapter.", "base-model", None))
    other = _rated(store, reply=_reply_record("Other model.", "other-model", None))
    unknown = _rated(store)  # stored without reply metadata: no model at all

    assert _ids(store.review_queue(ReviewFilter(model_version="support-v2"))) == [adapted.id]
    assert _ids(store.review_queue(ReviewFilter(model_version="base-model"))) == [plain.id]
    assert _ids(store.review_queue(ReviewFilter(model_version="other-model"))) == [other.id]
    assert store.review_queue(ReviewFilter(model_version="nope")) == []
    assert unknown.id in _ids(store.review_queue())


def test_queue_filters_by_rating_time(store: Store) -> None:
    first, second, third = _reply(store), _reply(store), _reply(store)
    t1 = store.rate(first.id, "ann", 1).updated_at
    t2 = store.rate(second.id, "ann", 1).updated_at
    t3 = store.rate(third.id, "ann", 1).updated_at
    assert t1 < t2 < t3

    assert _ids(store.review_queue(ReviewFilter(since=t2))) == [second.id, third.id]  # at or after
    assert _ids(store.review_queue(ReviewFilter(until=t3))) == [first.id, second.id]  # before
    assert _ids(store.review_queue(ReviewFilter(since=t2, until=t3))) == [second.id]
    day = t1[:10]
    assert _ids(store.review_queue(ReviewFilter(since=day))) == [first.id, second.id, third.id]
    assert store.review_queue(ReviewFilter(until=day)) == []

    # Re-rating moves a reply to its new rating time.
    store.rate(first.id, "ann", 1)
    assert _ids(store.review_queue(ReviewFilter(since=t3))) == [third.id, first.id]


def test_queue_search_matches_words_anywhere_in_the_conversation(store: Store) -> None:
    printer = _rated(store, question="my printer shows error 42", answer="Turn it off and on.")
    vpn = _rated(store, question="the vpn drops", answer="Reinstall the client.")
    store.add_message(vpn.conversation_id, "user", "still dropping on the printer floor", parent_id=vpn.id)
    _reply(store, "unrated printer question", "unrated printer answer")

    assert _ids(store.review_queue(ReviewFilter(search="printer error"))) == [printer.id]
    assert _ids(store.review_queue(ReviewFilter(search="reinstall"))) == [vpn.id]  # the reply's own words
    assert _ids(store.review_queue(ReviewFilter(search="print"))) == [printer.id, vpn.id]  # prefix; later message
    assert store.review_queue(ReviewFilter(search="giraffe")) == []
    assert store.review_queue(ReviewFilter(search='"unbalanced AND (')) == []


def test_invalid_status_or_rating_is_refused(store: Store) -> None:
    _rated(store)
    with pytest.raises(InputError, match="status"):
        store.review_queue(ReviewFilter(status="done"))
    with pytest.raises(InputError, match="rating"):
        store.review_queue(ReviewFilter(rating="+1"))


# -- approve, reject, edit, tags ---------------------------------------------------------------


def test_approve_trains_on_the_reply_as_it_is(store: Store) -> None:
    reply = _rated(store, answer="Use the reset link.")
    [item] = store.approve([reply.id], "cora")

    assert (item.status, item.answer, item.source, item.curator) == ("approved", "Use the reset link.", "reply", "cora")
    assert item.reviewed_at is not None
    assert item.curated_answer == "Use the reset link."
    assert store.review_item(reply.id) == item


def test_approve_trains_on_the_proposed_correction(store: Store) -> None:
    reply = _reply(store, answer="Wrong answer.")
    store.rate(reply.id, "ann", -1, correction="The right answer.")
    [item] = store.approve([reply.id], "cora")

    assert (item.status, item.answer, item.source) == ("approved", "The right answer.", "correction")
    assert store.message(reply.id).content == "Wrong answer."


def test_an_earlier_edit_survives_a_later_approve(store: Store) -> None:
    reply = _reply(store, answer="Wrong answer.")
    store.rate(reply.id, "ann", -1, correction="A rater's answer.")
    store.edit(reply.id, "cora", "The curator's answer.")
    [item] = store.approve([reply.id], "dan")

    assert (item.status, item.answer, item.source, item.curator) == (
        "approved", "The curator's answer.", "edit", "dan",
    )


def test_approve_several_returns_them_in_order(store: Store) -> None:
    first, second = _rated(store), _rated(store)
    items = store.approve([second.id, first.id, second.id], "cora")
    assert _ids(items) == [second.id, first.id]
    assert {item.status for item in items} == {"approved"}
    assert store.approve([], "cora") == []


def test_approving_an_unrated_reply_is_refused(store: Store) -> None:
    reply = _reply(store)
    with pytest.raises(NotFoundError, match="no rating"):
        store.approve([reply.id], "cora")
    with pytest.raises(NotFoundError, match="no rating"):
        store.approve([reply.parent_id], "cora")  # the question: never rated
    assert store.audit_log() == []
    assert _rows(store, "SELECT * FROM reviews") == []


@pytest.mark.parametrize("bad", ["unknown", "unrated"])
def test_approve_with_a_bad_id_last_writes_nothing(store: Store, bad: str) -> None:
    good = [_rated(store).id, _rated(store).id]
    bad_id = 999_999 if bad == "unknown" else _reply(store).id
    with pytest.raises(NotFoundError):
        store.approve([*good, bad_id], "cora")

    assert [store.review_item(mid).status for mid in good] == ["pending", "pending"]
    assert store.audit_log() == []
    assert _rows(store, "SELECT * FROM reviews") == []


def test_reject(store: Store) -> None:
    reply = _rated(store, -1)
    store.set_tags(reply.id, "cora", ["spam"])
    [item] = store.reject([reply.id], "dan")

    assert (item.status, item.answer, item.source, item.tags, item.curator) == (
        "rejected", None, None, ("spam",), "dan",
    )
    assert store.review_queue() == []
    with pytest.raises(NotFoundError):
        store.reject([424242], "dan")


def test_edit_saves_the_curators_answer_and_keeps_the_reply(store: Store) -> None:
    reply = _reply(store, answer="Original reply.")
    store.rate(reply.id, "ann", -1, correction="A rater's answer.")
    item = store.edit(reply.id, "cora", "  The ideal answer.\n")

    assert (item.status, item.answer, item.source, item.curator) == ("approved", "The ideal answer.", "edit", "cora")
    assert item.curated_answer == "The ideal answer."
    assert item.message.content == "Original reply."
    assert store.message(reply.id).content == "Original reply."
    assert [m.content for m in store.thread(reply.conversation_id)][-1] == "Original reply."
    assert [h.message_id for h in store.search("ideal")] == []  # the edit is not conversation text


def test_edit_with_empty_text_is_refused(store: Store) -> None:
    reply = _rated(store)
    for empty in ("", "   \n\t"):
        with pytest.raises(InputError, match="empty"):
            store.edit(reply.id, "cora", empty)
    assert store.review_item(reply.id).status == "pending"
    assert store.audit_log() == []
    with pytest.raises(NotFoundError):
        store.edit(424242, "cora", "text")


def test_set_tags_trims_and_deduplicates(store: Store) -> None:
    reply = _rated(store)
    item = store.set_tags(reply.id, "cora", ["  billing ", "billing", "wrong   facts", "", "  ", "x" * 50, "b2b"])

    assert item.tags == ("billing", "wrong facts", "x" * 40, "b2b")
    assert (item.status, item.answer, item.source) == ("pending", None, None)  # tagging decides nothing
    assert item in store.review_queue()

    approved = store.approve([reply.id], "cora")[0]
    assert approved.tags == item.tags  # decisions keep the tags
    retagged = store.set_tags(reply.id, "dan", ["vpn"])
    assert (retagged.tags, retagged.status, retagged.answer, retagged.source) == (
        ("vpn",), "approved", approved.answer, "reply",
    )
    assert store.set_tags(reply.id, "dan", []).tags == ()


# -- undo --------------------------------------------------------------------------------------


def test_undo_reverts_the_last_action_of_that_actor_only(store: Store) -> None:
    anns, bobs = _rated(store), _rated(store)
    store.approve([anns.id], "cora")
    store.reject([bobs.id], "dan")  # another curator's later action

    assert store.undo("cora") == [anns.id]
    item = store.review_item(anns.id)
    assert (item.status, item.answer, item.source, item.curator) == ("pending", None, None, None)
    assert store.review_item(bobs.id).status == "rejected"
    assert store.undo("cora") == []  # nothing more of hers
    assert store.undo("dan") == [bobs.id]
    assert store.review_item(bobs.id).status == "pending"


def test_undo_goes_further_back_each_time(store: Store) -> None:
    reply = _reply(store)
    store.rate(reply.id, "ann", -1, correction="Better.")
    store.set_tags(reply.id, "cora", ["vpn"])
    store.approve([reply.id], "cora")
    store.edit(reply.id, "cora", "Best.")

    assert store.undo("cora") == [reply.id]
    item = store.review_item(reply.id)
    assert (item.status, item.answer, item.source, item.tags) == ("approved", "Better.", "correction", ("vpn",))
    assert store.undo("cora") == [reply.id]
    item = store.review_item(reply.id)
    assert (item.status, item.answer, item.source, item.tags) == ("pending", None, None, ("vpn",))
    assert store.undo("cora") == [reply.id]
    assert store.review_item(reply.id).tags == ()
    assert store.undo("cora") == []
    assert _rows(store, "SELECT * FROM reviews") == []


def test_nothing_to_undo(store: Store) -> None:
    assert store.undo("cora") == []
    assert store.audit_log() == []


def test_a_bulk_approve_is_one_batch_undone_at_once(store: Store) -> None:
    earlier = _rated(store)
    store.reject([earlier.id], "cora")
    batch = [_rated(store).id for _ in range(3)]
    store.approve(batch, "cora")

    assert store.undo("cora") == batch
    assert [store.review_item(mid).status for mid in batch] == ["pending"] * 3
    assert store.review_item(earlier.id).status == "rejected"  # one undo, one batch
    assert store.undo("cora") == [earlier.id]


def test_undo_is_refused_when_someone_else_changed_the_reply_since(store: Store) -> None:
    reply = _rated(store)
    store.approve([reply.id], "cora")
    store.reject([reply.id], "dan")
    log = store.audit_log()
    reviews = _rows(store, "SELECT * FROM reviews")

    with pytest.raises(InputError, match="dan"):
        store.undo("cora")
    assert store.review_item(reply.id).status == "rejected"
    assert store.audit_log() == log
    assert _rows(store, "SELECT * FROM reviews") == reviews

    # Once Dan takes his back, Cora's can be undone.
    assert store.undo("dan") == [reply.id]
    assert store.review_item(reply.id).status == "approved"
    assert store.undo("cora") == [reply.id]
    assert store.review_item(reply.id).status == "pending"


def test_undo_of_a_batch_is_refused_whole_when_one_reply_changed(store: Store) -> None:
    first, second = _rated(store), _rated(store)
    store.approve([first.id, second.id], "cora")
    store.set_tags(second.id, "dan", ["later"])

    with pytest.raises(InputError, match="dan"):
        store.undo("cora")
    assert store.review_item(first.id).status == "approved"
    assert store.review_item(second.id).status == "approved"
    assert not any(entry.undone for entry in store.audit_log())


# -- approve all thumbs-up -----------------------------------------------------------------------


def test_approve_all_up_skips_thumbs_down_disagreement_and_decided(store: Store) -> None:
    ups = [_rated(store, 1).id, _rated(store, 1).id]
    down = _rated(store, -1)
    split = _rated(store, 1)
    store.rate(split.id, "bob", -1)
    rejected = _rated(store, 1)
    store.reject([rejected.id], "dan")

    items = store.approve_all_up("cora")
    assert _ids(items) == ups
    assert {(item.status, item.source, item.curator) for item in items} == {("approved", "reply", "cora")}
    for mid in (down.id, split.id):
        assert store.review_item(mid).status == "pending"
    assert store.review_item(rejected.id).status == "rejected"

    assert store.approve_all_up("cora") == []  # nothing left: no audit row either
    assert store.undo("cora") == ups  # one batch
    assert store.undo("cora") == []


def test_approve_all_up_since(store: Store) -> None:
    old, new = _reply(store), _reply(store)
    store.rate(old.id, "ann", 1)
    since = store.rate(new.id, "ann", 1).updated_at

    assert _ids(store.approve_all_up("cora", since=since)) == [new.id]
    assert store.review_item(old.id).status == "pending"
    [entry] = store.audit_log()
    assert entry.batch is None  # a single approval is no batch


# -- audit log ----------------------------------------------------------------------------------


def test_audit_log_records_who_did_what_before_and_after(store: Store) -> None:
    reply = _rated(store, answer="The reply.")
    store.approve([reply.id], "cora")
    store.edit(reply.id, "dan", "Dan's answer.")
    store.undo("dan")

    log = store.audit_log()
    assert [(e.actor, e.action, e.message_id, e.undone) for e in log] == [
        ("dan", "undo", reply.id, False),
        ("dan", "edit", reply.id, True),
        ("cora", "approve", reply.id, False),
    ]
    approved = {"status": "approved", "answer": "The reply.", "source": "reply", "tags": []}
    edited = {"status": "approved", "answer": "Dan's answer.", "source": "edit", "tags": []}
    assert (log[2].before, log[2].after) == (None, approved)
    assert (log[1].before, log[1].after) == (approved, edited)
    assert (log[0].before, log[0].after) == (edited, approved)
    assert log[0].id > log[1].id > log[2].id
    assert log[2].at < log[1].at < log[0].at
    assert all(entry.batch is None for entry in log)

    assert store.audit_log(limit=1) == log[:1]
    other = _rated(store)
    store.reject([other.id], "cora")
    assert store.audit_log(message_id=reply.id) == log
    assert [e.message_id for e in store.audit_log(message_id=other.id)] == [other.id]


def test_audit_log_of_a_bulk_action_shares_one_batch(store: Store) -> None:
    batch = [_rated(store).id for _ in range(3)]
    store.approve(batch, "cora")
    log = store.audit_log()
    first = min(entry.id for entry in log)
    assert sorted(e.message_id for e in log) == batch
    assert {entry.batch for entry in log} == {first}


# -- counts ---------------------------------------------------------------------------------------


def test_curation_counts(store: Store) -> None:
    assert store.curation_counts() == CurationCounts(0, 0, 0, 0)
    _reply(store)  # unrated: not counted
    pending = [_rated(store).id for _ in range(3)]
    early = _rated(store)
    store.approve([early.id], "cora")
    since = store._now()  # the moment an adapter was published
    late = [_rated(store).id, _rated(store).id]
    store.approve(late, "cora")
    store.reject([_rated(store, -1).id], "cora")

    counts = store.curation_counts(since=since)
    assert (counts.pending, counts.approved, counts.rejected, counts.approved_since) == (len(pending), 3, 1, 2)
    assert store.curation_counts().approved_since == 3  # before the first adapter: every approval


def test_retagging_an_old_approval_does_not_count_as_a_new_one(store: Store) -> None:
    reply = _rated(store)
    store.approve([reply.id], "cora")
    since = store._now()
    store.set_tags(reply.id, "cora", ["vpn"])
    assert store.curation_counts(since=since).approved_since == 0


# -- the training snapshot ----------------------------------------------------------------------------


def test_training_conversations_are_whole_with_current_ratings_and_reviews(store: Store) -> None:
    unrated = _reply(store, owner="ann")
    conversation = store.create_conversation("bob", "Answer in French.")
    question = store.add_message(conversation.id, "user", "Bonjour?")
    first = store.add_message(conversation.id, "assistant", "Hello!", parent_id=question.id)
    regenerated = store.add_message(conversation.id, "assistant", "Salut !", parent_id=question.id)
    follow_up = store.add_message(conversation.id, "user", "Merci", parent_id=regenerated.id)
    store.rate(first.id, "bob", 1)
    store.rate(first.id, "bob", -1, correction="Bonjour !")  # replaces the thumbs-up
    store.rate(first.id, "ann", 1)
    store.rate(regenerated.id, "bob", 1)
    store.edit(first.id, "cora", "Bonjour ! Comment puis-je aider ?")
    rejected = _rated(store, -1, owner="dan")
    store.reject([rejected.id], "cora")

    snapshot = list(store.training_conversations())
    assert [c.id for c in snapshot] == [conversation.id, rejected.conversation_id]
    assert unrated.conversation_id not in [c.id for c in snapshot]

    whole = snapshot[0]
    assert (whole.user, whole.system_prompt) == ("bob", "Answer in French.")
    assert [(m.id, m.parent_id, m.role, m.content) for m in whole.messages] == [
        (question.id, None, "user", "Bonjour?"),
        (first.id, question.id, "assistant", "Hello!"),
        (regenerated.id, question.id, "assistant", "Salut !"),
        (follow_up.id, regenerated.id, "user", "Merci"),
    ]
    by_id = {m.id: m for m in whole.messages}
    assert by_id[first.id].ratings == (("bob", -1, "Bonjour !"), ("ann", 1, ""))
    assert (by_id[first.id].status, by_id[first.id].answer, by_id[first.id].source) == (
        "approved", "Bonjour ! Comment puis-je aider ?", "edit",
    )
    assert by_id[regenerated.id].ratings == (("bob", 1, ""),)
    assert (by_id[regenerated.id].status, by_id[regenerated.id].answer) == ("pending", None)
    assert by_id[question.id].ratings == () and by_id[follow_up.id].ratings == ()

    [rejected_message] = [m for m in snapshot[1].messages if m.id == rejected.id]
    assert (rejected_message.status, rejected_message.answer, rejected_message.source) == ("rejected", None, None)


def test_training_conversations_include_a_reviewed_reply_whose_ratings_are_gone(store: Store) -> None:
    reply = _reply(store, owner="ann")
    store.rate(reply.id, "bob", 1)
    store.approve([reply.id], "cora")
    store.forget("admin", user="bob")  # bob's rating goes; the review stays

    [conversation] = store.training_conversations()
    [message] = [m for m in conversation.messages if m.id == reply.id]
    assert (message.ratings, message.status, message.source) == ((), "approved", "reply")


def test_training_conversations_is_one_consistent_snapshot(store: Store, settings, clock) -> None:  # noqa: ANN001
    rated = _rated(store, 1, question="first")
    later = _reply(store, "second")
    other = Store.open(settings.db_path, clock=clock)
    written: list[str] = []

    def another_app_writes(statement: str) -> None:
        # Runs as the snapshot's second query starts: another app rates a new reply and approves one.
        if "FROM reviews" in statement and not written:
            written.append(statement)
            other.rate(later.id, "bob", -1)
            other.approve([rated.id], "cora")

    store.db.conn.set_trace_callback(another_app_writes)
    try:
        snapshot = list(store.training_conversations())
    finally:
        store.db.conn.set_trace_callback(None)
        other.close()

    assert written, "the other app never wrote"
    assert [c.id for c in snapshot] == [rated.conversation_id]
    [message] = [m for m in snapshot[0].messages if m.id == rated.id]
    assert (message.ratings, message.status) == ((("ann", 1, ""),), "pending")
    assert not store.db.conn.in_transaction

    # The next snapshot sees both writes.
    again = list(store.training_conversations())
    assert [c.id for c in again] == [rated.conversation_id, later.conversation_id]
    assert [m.status for m in again[0].messages if m.id == rated.id] == ["approved"]


def test_abandoning_the_training_snapshot_ends_its_read_transaction(store: Store) -> None:
    _rated(store)
    _rated(store)
    snapshot = store.training_conversations()
    next(snapshot)
    assert store.db.conn.in_transaction
    snapshot.close()
    assert not store.db.conn.in_transaction
    store.approve([m for m in _ids(store.review_queue())], "cora")  # writes work again
    assert store.curation_counts().approved == 2


# -- dataset snapshots ----------------------------------------------------------------------------


def test_register_dataset_is_idempotent_for_the_same_id(store: Store) -> None:
    first = store.register_dataset("ds-1", "datasets/ds-1", {"train": 10, "eval": 2}, [3, 1, 3], "cora")
    assert (first.id, first.path, first.created_by, first.counts, first.erased_at) == (
        "ds-1", "datasets/ds-1", "cora", {"train": 10, "eval": 2}, None,
    )
    assert first.created_at
    assert store.dataset("ds-1") == first
    assert _rows(store, "SELECT conversation_id FROM dataset_conversations ORDER BY 1") == [(1,), (3,)]

    again = store.register_dataset("ds-1", "elsewhere", {"train": 99}, [7], "dan")
    assert again == first
    assert _rows(store, "SELECT conversation_id FROM dataset_conversations ORDER BY 1") == [(1,), (3,)]

    second = store.register_dataset("ds-2", "datasets/ds-2", {}, [], "cora")
    assert [d.id for d in store.datasets()] == [second.id, first.id]  # newest first


def test_unknown_dataset_and_forgetting_one(store: Store) -> None:
    with pytest.raises(NotFoundError, match="ds-x"):
        store.dataset("ds-x")
    store.register_dataset("ds-1", "datasets/ds-1", {}, [1], "cora")
    store.forget_dataset("ds-1")
    assert store.datasets() == []
    assert _rows(store, "SELECT * FROM dataset_conversations") == []
    with pytest.raises(NotFoundError):
        store.dataset("ds-1")


# -- forget ------------------------------------------------------------------------------------------


def test_forget_a_conversation_erases_everything_about_it(store: Store) -> None:
    gone = _reply(store, "zanzibar printer setup", "Zanzibar needs driver 7.", owner="ann")
    regenerated = store.add_message(gone.conversation_id, "assistant", "Zanzibar again.", parent_id=gone.parent_id)
    store.rate(gone.id, "bob", -1, correction="Zanzibar correction.")
    store.rate(regenerated.id, "ann", 1)
    store.edit(gone.id, "cora", "Zanzibar edited answer.")
    store.set_tags(regenerated.id, "cora", ["zanzibar-tag"])
    kept = _rated(store, question="keep this quokka", owner="ann")
    store.approve([kept.id], "cora")
    store.register_dataset("with-it", "datasets/with-it", {}, [gone.conversation_id, kept.conversation_id], "cora")
    store.register_dataset("without-it", "datasets/without-it", {}, [kept.conversation_id], "cora")
    gone_ids = [gone.parent_id, gone.id, regenerated.id]

    erasure = store.forget("admin", conversation_id=gone.conversation_id)

    assert (erasure.conversations, erasure.messages, erasure.datasets_marked) == (1, 3, ("with-it",))
    with pytest.raises(NotFoundError):
        store.conversation(gone.conversation_id)
    for mid in gone_ids:
        with pytest.raises(NotFoundError):
            store.message(mid)
        assert store.feedback_history(mid) == []
        assert store.audit_log(message_id=mid) == []
    assert store.search("zanzibar") == []
    assert [h.message_id for h in store.search("quokka")] == [kept.parent_id]
    assert _rows(store, "SELECT message_id FROM reviews") == [(kept.id,)]
    assert "anzibar" not in _everything(store).lower()
    assert _ids(store.review_queue(ALL)) == [kept.id]

    assert store.dataset("with-it").erased_at is not None
    assert store.dataset("without-it").erased_at is None

    last = store.audit_log()[0]
    assert (last.actor, last.action, last.message_id, last.before) == ("admin", "forget", None, None)
    assert last.after == {"conversations": 1, "messages": 3, "datasets_marked": 1}
    assert store.undo("admin") == []  # an erasure cannot be undone
    assert store.review_item(kept.id).status == "approved"


def test_a_marked_dataset_keeps_its_first_erasure_time(store: Store) -> None:
    first, second = _rated(store), _rated(store)
    store.register_dataset("ds", "datasets/ds", {}, [first.conversation_id, second.conversation_id], "cora")
    store.forget("admin", conversation_id=first.conversation_id)
    marked = store.dataset("ds").erased_at
    erasure = store.forget("admin", conversation_id=second.conversation_id)
    assert erasure.datasets_marked == ("ds",)
    assert store.dataset("ds").erased_at == marked


def test_forget_a_user_erases_their_conversations_ratings_and_name(store: Store) -> None:
    bobs = [_rated(store, 1, owner="bob", question="bob's first"), _rated(store, -1, owner="bob", question="second")]
    anns = _reply(store, owner="ann", answer="Ann's reply.")
    store.rate(anns.id, "bob", -1, comment="bad")
    store.rate(anns.id, "ann", 1)
    store.reject([anns.id], "bob")  # bob curates too
    store.set_tags(anns.id, "bob", ["bob-tag"])
    store.register_dataset("ds", "datasets/ds", {}, [bobs[0].conversation_id], "bob")
    store.register_dataset("ann-only", "datasets/ann-only", {}, [anns.conversation_id], "cora")

    erasure = store.forget("admin", user="bob")

    assert (erasure.conversations, erasure.messages, erasure.datasets_marked) == (2, 4, ("ann-only", "ds"))
    assert store.conversations(user="bob", include_archived=True) == []
    for reply in bobs:
        with pytest.raises(NotFoundError):
            store.message(reply.id)
    assert [f.user for f in store.feedback_history(anns.id)] == ["ann"]
    item = store.review_item(anns.id)
    assert (item.raters, item.ups, item.downs) == (("ann",), 1, 0)
    assert (item.status, item.curator, item.tags) == ("rejected", "(erased)", ("bob-tag",))
    assert {e.actor for e in store.audit_log()} == {"(erased)", "admin"}
    # bob rated a reply in ann's conversation: the snapshot built from it is marked too.
    assert store.dataset("ann-only").erased_at is not None
    assert store.dataset("ds").erased_at is not None
    assert [e.after for e in store.audit_log() if e.action == "forget"] == [
        {"conversations": 2, "messages": 4, "datasets_marked": 2}
    ]


def test_forget_a_user_without_conversations_still_erases_their_ratings(store: Store) -> None:
    reply = _reply(store, owner="ann")
    store.rate(reply.id, "bob", 1)
    erasure = store.forget("admin", user="bob")
    assert (erasure.conversations, erasure.messages, erasure.datasets_marked) == (0, 0, ())
    assert store.feedback_history(reply.id) == []
    assert store.review_queue(ALL) == []


def test_forget_a_user_erases_the_correction_they_wrote(store: Store) -> None:
    reply = _reply(store, owner="ann")
    store.rate(reply.id, "bob", -1, correction="Bob's private wording.")
    store.approve([reply.id], "cora")
    store.forget("admin", user="bob")
    assert "Bob's private wording." not in _everything(store)


def test_forget_unknown_conversation_or_bad_arguments(store: Store) -> None:
    reply = _rated(store)
    with pytest.raises(NotFoundError):
        store.forget("admin", conversation_id=424242)
    with pytest.raises(InputError):
        store.forget("admin")
    with pytest.raises(InputError):
        store.forget("admin", conversation_id=reply.conversation_id, user="ann")
    assert store.audit_log() == []
    assert store.message(reply.id).id == reply.id


# -- regressions: bugs found while writing these tests -----------------------------------------------


def test_approve_keeps_tags_another_curator_set_meanwhile(store: Store, settings, monkeypatch) -> None:  # noqa: ANN001
    reply = _rated(store)
    other = Store.open(settings.db_path)
    now = store._now

    def meanwhile() -> str:
        other.set_tags(reply.id, "dan", ["urgent"])  # another app, between the read and the write
        monkeypatch.setattr(store, "_now", now)
        return now()

    monkeypatch.setattr(store, "_now", meanwhile)
    try:
        [item] = store.approve([reply.id], "cora")
    finally:
        other.close()
    assert item.tags == ("urgent",)


def test_deleting_a_conversation_drops_its_audit_rows_and_marks_its_datasets(store: Store) -> None:
    kept, deleted = _rated(store), _rated(store)
    store.approve([kept.id], "cora")
    store.edit(deleted.id, "cora", "Curated text of a deleted chat.")
    store.register_dataset("ds", "datasets/ds", {}, [deleted.conversation_id], "cora")
    store.delete_conversation(deleted.conversation_id)

    assert store.audit_log(message_id=deleted.id) == []
    assert "Curated text" not in _everything(store)
    assert store.dataset("ds").erased_at is not None
    # The curator's undo is not stuck on the vanished reply: it reverts her last action still there.
    assert store.undo("cora") == [kept.id]
    assert store.review_item(kept.id).status == "pending"
    assert store.undo("cora") == []
