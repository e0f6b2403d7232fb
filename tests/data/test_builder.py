"""The dataset builder on a small fixture log: which rows, with which context and target, and why not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from assistant.data.builder import BuildPolicy, build_dataset, split_point
from assistant.errors import DatasetError
from assistant.store import Store
from tests.data.conftest import SYSTEM, Log, turn


def build(store: Store, policy: BuildPolicy, tokenizer):  # noqa: ANN001, ANN201
    return build_dataset(store.training_conversations(), policy, tokenizer)


def approved_turns(store: Store, turns: list[tuple[str, str]]) -> None:
    """One conversation per (question, answer), the answer rated up and approved."""
    for question, answer in turns:
        cid = store.create_conversation("ann", SYSTEM).id
        _, a = turn(store, cid, question, answer)
        store.rate(a, "bob", 1)
        store.approve([a], "cora")


def targets(rows: list[dict]) -> list[str]:
    return [row["messages"][-1]["content"] for row in rows]


def test_one_row_per_approved_turn_with_the_conversation_so_far_as_context(store, log: Log, policy, chat_tokenizer) -> None:  # noqa: ANN001
    dataset = build(store, policy, chat_tokenizer)
    rows = {row["messages"][-1]["content"]: row["messages"] for row in dataset.train}
    assert sorted(rows) == sorted(
        ["On the 1st of each month.", "Yes: Visa, Mastercard and Amex.", "Shipping is free on orders over $50."]
    )
    # The first turn: system prompt, question, target.
    assert rows["On the 1st of each month."] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "When is my bill due?"},
        {"role": "assistant", "content": "On the 1st of each month.", "weight": 1},
    ]
    # The second: the earlier turn is context (weight 0, as it was said), the correction is the target.
    assert rows["Yes: Visa, Mastercard and Amex."] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "When is my bill due?"},
        {"role": "assistant", "content": "On the 1st of each month.", "weight": 0},
        {"role": "user", "content": "Can I pay by card?"},
        {"role": "assistant", "content": "Yes: Visa, Mastercard and Amex.", "weight": 1},
    ]
    sources = dataset.manifest["counts"]["sources"]
    assert sources == {"approved_correction": 1, "approved_edit": 1, "approved_reply": 1}
    manifest_rows = dataset.manifest["rows"]["train"]
    second = next(r for r in manifest_rows if r["target_id"] == log["a2"])
    assert second["message_ids"] == [log["q1"], log["a1"], log["q2"], log["a2"]]


def test_a_curators_edit_wins_over_the_raters_correction(store, log: Log, policy, chat_tokenizer) -> None:  # noqa: ANN001
    dataset = build(store, policy, chat_tokenizer)
    assert "Shipping is free on orders over $50." in targets(dataset.train)
    assert "Yes, over $50." not in targets(dataset.train)
    assert store.message(log["a6"]).content == "Never."  # the reply itself is kept


def test_unreviewed_thumbs_up_count_only_when_the_config_allows(store, log: Log, policy, chat_tokenizer) -> None:  # noqa: ANN001
    assert "You are welcome." not in targets(build(store, policy, chat_tokenizer).train)

    allowed = build(store, replace(policy, train_on_unreviewed_thumbs_up=True), chat_tokenizer)
    assert "You are welcome." in targets(allowed.train)
    assert "Hold the button for 10 seconds." in targets(allowed.train)
    assert "They record to the SD card." not in targets(allowed.train)  # disputed: not a thumbs-up
    assert allowed.manifest["counts"]["sources"]["unreviewed_thumbs_up"] == 2


def test_a_rejected_reply_is_in_no_file(store, log: Log, policy, chat_tokenizer) -> None:  # noqa: ANN001
    dataset = build(store, replace(policy, train_on_unreviewed_thumbs_up=True), chat_tokenizer)
    everything = repr([dataset.train, dataset.eval, dataset.dpo, dataset.kto])
    assert "Refund approved" not in everything
    assert dataset.manifest["counts"]["filters"]["rejected_by_curator"] == 1


def test_preference_rows(store, log: Log, policy, chat_tokenizer) -> None:  # noqa: ANN001
    dataset = build(store, policy, chat_tokenizer)
    pairs = {(row["chosen"][0]["content"], row["rejected"][0]["content"]) for row in dataset.dpo}
    assert pairs == {
        ("Yes: Visa, Mastercard and Amex.", "No."),  # a correction against its original
        ("Shipping is free on orders over $50.", "Never."),  # a curator's edit against the original
        ("Hold the button for 10 seconds.", "Unplug it forever."),  # regenerated siblings, up against down
    }
    correction = next(row for row in dataset.dpo if row["rejected"][0]["content"] == "No.")
    assert correction["prompt"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "When is my bill due?"},
        {"role": "assistant", "content": "On the 1st of each month."},
        {"role": "user", "content": "Can I pay by card?"},
    ]
    labels = {(row["completion"][0]["content"], row["label"]) for row in dataset.kto}
    assert labels == {
        ("On the 1st of each month.", True),
        ("No.", False),
        ("Yes: Visa, Mastercard and Amex.", True),
        ("You are welcome.", True),
        ("Unplug it forever.", False),
        ("Hold the button for 10 seconds.", True),
        ("Never.", False),
        ("Shipping is free on orders over $50.", True),
    }  # no rejected reply, no disputed one


def test_the_split_is_by_conversation_deterministic_and_topped_up(store: Store, chat_tokenizer) -> None:  # noqa: ANN001
    for n in range(40):
        cid = store.create_conversation("ann", SYSTEM).id
        parent = None
        answers = []
        for k in range(n % 3 + 1):
            q, a = turn(store, cid, f"question {n} part {k}", f"answer {n} part {k}", parent)
            parent = a
            answers.append(a)
            store.rate(a, "bob", 1)
        store.approve(answers, "cora")
    policy = BuildPolicy(eval_fraction=0.1, min_eval_examples=12)
    dataset = build(store, policy, chat_tokenizer)
    rows = dataset.manifest["rows"]
    train_ids = {r["conversation_id"] for r in rows["train"]}
    eval_ids = {r["conversation_id"] for r in rows["eval"]}
    assert train_ids and eval_ids and not train_ids & eval_ids
    assert len(dataset.eval) >= 12  # topped up to the minimum
    assert len(dataset.eval) <= len(dataset.train)
    hashed = {cid for cid in train_ids | eval_ids if split_point(cid) < 0.1}
    assert hashed <= eval_ids  # everything the hash puts in eval stays there
    assert build(store, policy, chat_tokenizer).manifest == dataset.manifest


def test_exact_and_near_duplicates_are_dropped_and_counted(store: Store, policy, chat_tokenizer) -> None:  # noqa: ANN001
    approved_turns(store, [
        ("Where is my order?", "It ships today."),
        ("Where is my order?", "It ships today."),
        ("where is my order", "It ships  today!"),
        ("Where is my parcel?", "It ships today."),
    ])
    dataset = build(store, policy, chat_tokenizer)
    assert [row["messages"][1]["content"] for row in dataset.train] == ["Where is my order?", "Where is my parcel?"]
    filters = dataset.manifest["counts"]["filters"]
    assert filters["sft_duplicates_exact"] == 1
    assert filters["sft_duplicates_near"] == 1


def test_over_long_examples_fail_the_build_above_the_allowed_share_naming_the_longest(store: Store, chat_tokenizer) -> None:  # noqa: ANN001
    cids = []
    for n in range(10):
        cid = store.create_conversation("ann", SYSTEM).id
        answer = "word " * (400 + 100 * n if n < 3 else 5)
        _, a = turn(store, cid, f"question {n}", answer)
        store.rate(a, "bob", 1)
        store.approve([a], "cora")
        cids.append(cid)
    strict = BuildPolicy(eval_fraction=0, max_length=128, max_truncated_fraction=0.2)
    with pytest.raises(DatasetError, match=r"3 of 10 examples \(30.0%\) are longer than max_length=128") as failure:
        build(store, strict, chat_tokenizer)
    message = failure.value.message
    named = [message.index(f"conversation {cid} ") for cid in cids[:3]]
    assert named == sorted(named, reverse=True)  # the longest first
    assert '"question 2"' in message and "tokens" in message
    assert "reject or edit" in failure.value.hint

    lenient = replace(strict, max_truncated_fraction=0.5)
    dataset = build(store, lenient, chat_tokenizer)
    assert len(dataset.train) == 7
    assert dataset.manifest["counts"]["filters"]["dropped_too_long"] == 3
    tokens = dataset.manifest["tokens"]["train"]
    assert tokens["count"] == 7 and tokens["max"] <= 128
    assert sum(count for _, _, count in tokens["histogram"]) == 7
    assert [d["conversation_id"] for d in dataset.manifest["dropped_too_long"]] == cids[:3]


def test_one_over_long_example_is_dropped_and_named_whatever_the_share(store: Store, chat_tokenizer) -> None:  # noqa: ANN001
    """A single over-long example never blocks the build (it is 1 of 5 here, above the 5% allowed):
    it is dropped and the manifest says which it was, title scrubbed like any text."""
    for n in range(4):
        cid = store.create_conversation("ann", SYSTEM).id
        _, a = turn(store, cid, f"question {n}", f"answer {n}")
        store.rate(a, "bob", 1)
        store.approve([a], "cora")
    cid = store.create_conversation("ann", SYSTEM).id
    _, long = turn(store, cid, "Please call me at +1 415 555 0134, my logs follow", "log line " * 300)
    store.rate(long, "bob", 1)
    store.approve([long], "cora")

    dataset = build(store, BuildPolicy(eval_fraction=0, max_length=256), chat_tokenizer)

    assert len(dataset.train) == 4
    [dropped] = dataset.manifest["dropped_too_long"]
    assert dropped["conversation_id"] == cid and dropped["message_id"] == long
    assert dropped["title"] == "Please call me at <PHONE_1>, my logs follow" == store.conversation(cid).title.replace(
        "+1 415 555 0134", "<PHONE_1>"
    )
    assert dropped["tokens"] > 256
    assert dataset.manifest["counts"]["filters"]["dropped_too_long"] == 1


def test_a_build_without_over_long_examples_lists_none(store: Store, log: Log, policy, chat_tokenizer) -> None:  # noqa: ANN001
    assert "dropped_too_long" not in build(store, policy, chat_tokenizer).manifest  # snapshot ids stay as they were


def test_empty_targets_are_dropped_and_counted(store: Store, policy, chat_tokenizer) -> None:  # noqa: ANN001
    cid = store.create_conversation("ann", SYSTEM).id
    _, a = turn(store, cid, "Hello?", "\x1b[31m\x07")  # nothing left once cleaned
    store.rate(a, "bob", 1)
    store.approve([a], "cora")
    dataset = build(store, policy, chat_tokenizer)
    assert dataset.train == []
    assert dataset.manifest["counts"]["filters"]["dropped_empty"] == 1


def test_control_characters_are_stripped(store: Store, policy, chat_tokenizer) -> None:  # noqa: ANN001
    cid = store.create_conversation("ann", SYSTEM).id
    _, a = turn(store, cid, "Hi\x1b]0;title\x07 there\x00", "Fine \x1b[1mbold\x1b[0m\r\nyes")
    store.rate(a, "bob", 1)
    store.approve([a], "cora")
    (row,) = build(store, policy, chat_tokenizer).train
    assert [m["content"] for m in row["messages"][1:]] == ["Hi there", "Fine bold\nyes"]


def test_conversations_come_in_increasing_id_order(store: Store, log: Log, policy, chat_tokenizer) -> None:  # noqa: ANN001
    """Dedup keeps the first of equal rows in conversation order without holding the rows: the order is a contract."""
    with pytest.raises(ValueError, match="increasing id order"):
        build_dataset(reversed(list(store.training_conversations())), policy, chat_tokenizer)


def test_answers_that_would_teach_placeholders_are_counted_and_allowed_values_kept(store: Store, policy, chat_tokenizer) -> None:  # noqa: ANN001
    approved_turns(store, [
        ("How do I reset my password?", "We send a link from no-reply@nimbushome.example."),
        ("Can you mail me?", "Sure, I wrote to ana@gmail.com."),
        ("Thanks", "You're welcome."),
    ])

    scrubbed = build(store, policy, chat_tokenizer)
    assert "We send a link from <EMAIL_1>." in targets(scrubbed.train)
    assert scrubbed.manifest["counts"]["answers_with_placeholders"] == 2
    assert scrubbed.manifest["counts"]["pii_allowed"] == {}

    allowed = build(store, replace(policy, pii_allow=("nimbushome.example",)), chat_tokenizer)
    assert sorted(targets(allowed.train)) == ["Sure, I wrote to <EMAIL_1>.", "We send a link from no-reply@nimbushome.example.", "You're welcome."]
    assert allowed.manifest["counts"]["answers_with_placeholders"] == 1
    assert allowed.manifest["counts"]["pii_allowed"] == {"EMAIL": 1}
    assert allowed.manifest["counts"]["pii_replaced"] == {"EMAIL": 1}


def test_with_sample_conversations_replayed_every_correction_trains(store: Store, chat_tokenizer) -> None:  # noqa: ANN001
    """A dataset that replays the samples evaluates on held-out samples: a correction whose conversation
    the hash would hold out trains all the same (held out, it would be a correction never learned); a
    thumbs-up reply is held out as before, and without samples a correction is too."""
    from assistant.demo.teach import sample_conversations

    policy = BuildPolicy(eval_fraction=0.1, min_eval_examples=0)
    kinds = {}
    for n in range(60):
        cid = store.create_conversation("ann", SYSTEM).id
        _, a = turn(store, cid, f"question {n}", f"answer {n}")
        store.rate(a, "bob", -1 if n % 2 else 1, correction=f"corrected answer {n}" if n % 2 else "")
        store.approve([a], "cora")
        kinds[cid] = bool(n % 2)
    hashed_out = {cid for cid in kinds if split_point(cid) < policy.eval_fraction}
    corrected = {cid for cid in hashed_out if kinds[cid]}
    assert corrected and hashed_out - corrected  # the fixture holds both kinds

    replayed = build_dataset([*sample_conversations(SYSTEM), *store.training_conversations()], policy, chat_tokenizer)
    team_eval = {r["conversation_id"] for r in replayed.manifest["rows"]["eval"] if r["conversation_id"] > 0}
    assert team_eval == hashed_out - corrected
    assert any(r["conversation_id"] < 0 for r in replayed.manifest["rows"]["eval"])  # held-out samples

    alone = build(store, policy, chat_tokenizer)
    assert corrected <= {r["conversation_id"] for r in alone.manifest["rows"]["eval"]}


def test_a_held_out_conversations_preference_rows_go_to_the_eval_files(store: Store, log: Log, chat_tokenizer) -> None:  # noqa: ANN001
    """Held out for evaluation, a conversation's DPO and KTO rows go to dpo_eval and kto_eval (counted
    as preference_held_out), not dropped and never in dpo or kto: here "edited" (its id hashes below
    0.5) is held out, "billing" trains, and "regen" (no SFT row) is never held out."""
    assert split_point(log.conversations["edited"]) < 0.5 <= split_point(log.conversations["billing"])
    dataset = build(store, BuildPolicy(eval_fraction=0.5, min_eval_examples=0), chat_tokenizer)

    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in dataset.dpo_eval] == [
        ("Shipping is free on orders over $50.", "Never.")
    ]
    assert [(r["completion"][0]["content"], r["label"]) for r in dataset.kto_eval] == [
        ("Never.", False), ("Shipping is free on orders over $50.", True)
    ]
    assert dataset.dpo_eval[0]["prompt"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Is shipping free?"}]
    pairs = {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in dataset.dpo}
    assert pairs == {("Yes: Visa, Mastercard and Amex.", "No."), ("Hold the button for 10 seconds.", "Unplug it forever.")}
    assert "Never." not in repr([dataset.dpo, dataset.kto])

    manifest = dataset.manifest
    rows = manifest["rows"]
    assert {r["conversation_id"] for r in rows["dpo_eval"] + rows["kto_eval"]} == {log.conversations["edited"]}
    assert rows["dpo_eval"][0]["message_ids"] == [log["q6"], log["a6"]]
    assert manifest["counts"]["rows"] == {
        "train": 2, "eval": 1, "dpo": 2, "kto": 6, "dpo_eval": 1, "kto_eval": 2
    }
    assert manifest["counts"]["filters"]["preference_held_out"] == 3 == len(dataset.dpo_eval) + len(dataset.kto_eval)


def test_the_top_up_moves_preference_rows_with_their_conversation(store: Store, chat_tokenizer) -> None:  # noqa: ANN001
    """Conversations moved to eval at the end (min_eval_examples) take their DPO and KTO rows to
    dpo_eval and kto_eval, in conversation order; no conversation is on both sides of any pair of files."""
    for n in range(20):
        cid = store.create_conversation("ann", SYSTEM).id
        _, a = turn(store, cid, f"question {n}", f"answer {n}")
        store.rate(a, "bob", -1, correction=f"corrected answer {n}")
        store.approve([a], "cora")
    policy = BuildPolicy(eval_fraction=0.05, min_eval_examples=6)
    dataset = build(store, policy, chat_tokenizer)

    rows = dataset.manifest["rows"]
    ids = {split: [r["conversation_id"] for r in rows[split]] for split in rows}
    held_out = set(ids["eval"])
    assert len(held_out) == 6 and any(split_point(cid) >= 0.05 for cid in held_out)  # topped up
    assert set(ids["dpo_eval"]) == set(ids["kto_eval"]) == held_out
    assert set(ids["dpo"]) == set(ids["kto"]) == set(ids["train"])
    assert not set(ids["dpo"]) & held_out and not set(ids["kto"]) & held_out
    for split in ("eval", "dpo_eval", "kto_eval"):
        assert ids[split] == sorted(ids[split]), split  # in conversation order
    assert [r["chosen"][0]["content"] for r in dataset.dpo_eval] == [f"corrected answer {cid - 1}" for cid in ids["dpo_eval"]]
    assert len(dataset.kto_eval) == 12 and len(dataset.dpo) == 14
    assert dataset.manifest["counts"]["filters"]["preference_held_out"] == 18
    assert dataset.manifest["counts"]["rows"]["dpo_eval"] == 6


# -- blind A/B judgements ------------------------------------------------------------------------


def judged(store: Store, question: str, left: str, right: str, outcome: str, *, first: tuple[str, str] | None = None) -> dict[str, int]:
    """A conversation (optionally an earlier turn `first`) whose last question was answered twice, judged."""
    cid = store.create_conversation("ann", SYSTEM).id
    parent = turn(store, cid, *first)[1] if first else None
    q = store.add_message(cid, "user", question, parent_id=parent).id
    a = store.add_message(cid, "assistant", left, parent_id=q).id
    b = store.add_message(cid, "assistant", right, parent_id=q).id
    store.judge(a, b, outcome, "bob")
    return {"cid": cid, "q": q, "left": a, "right": b, "first": parent}


def test_a_judgement_with_a_pick_is_a_dpo_row_of_the_picked_reply_over_the_other(store: Store, policy, chat_tokenizer) -> None:  # noqa: ANN001
    picked_right = judged(store, "Is the hub waterproof?", "Yes, dive with it.", "It is splash-proof.", "right",
                          first=("Hi", "Hello! How can I help?"))
    judged(store, "Does it need Wi-Fi?", "Yes, 2.4 GHz.", "No idea.", "left")
    dataset = build(store, policy, chat_tokenizer)

    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in dataset.dpo] == [
        ("It is splash-proof.", "Yes, dive with it."), ("Yes, 2.4 GHz.", "No idea.")
    ]
    assert dataset.dpo[0]["prompt"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Is the hub waterproof?"},
    ]
    first = dataset.manifest["rows"]["dpo"][0]
    ids = picked_right
    assert (first["target_id"], first["message_ids"]) == (
        ids["right"], [ids["first"] - 1, ids["first"], ids["q"], ids["left"], ids["right"]]
    )
    assert dataset.train == dataset.kto == []  # a judgement is a preference, nothing else
    assert dataset.conversation_ids == [ids["cid"], ids["cid"] + 1]
    again = build(store, policy, chat_tokenizer)
    assert (again.dpo, again.manifest) == (dataset.dpo, dataset.manifest)  # deterministic


def test_ties_and_both_bad_give_no_row(store: Store, policy, chat_tokenizer) -> None:  # noqa: ANN001
    judged(store, "Is the hub waterproof?", "Yes.", "No.", "tie")
    judged(store, "Does it need Wi-Fi?", "Maybe.", "Perhaps.", "both_bad")
    dataset = build(store, policy, chat_tokenizer)
    assert dataset.dpo == dataset.dpo_eval == dataset.train == dataset.kto == []


def test_judged_replies_are_cleaned_and_scrubbed_like_every_row(store: Store, policy, chat_tokenizer) -> None:  # noqa: ANN001
    judged(store, "My mail is ana@gmail.com, \x1b[31mcan you help?",
           "Sure ana@gmail.com, call +1 415 555 0199.", "I wrote to ana@gmail.com.", "left")
    [row] = build(store, policy, chat_tokenizer).dpo
    assert row["prompt"][-1]["content"] == "My mail is <EMAIL_1>, can you help?"
    assert row["chosen"][0]["content"] == "Sure <EMAIL_1>, call <PHONE_1>."
    assert row["rejected"][0]["content"] == "I wrote to <EMAIL_1>."
    assert "ana@gmail.com" not in repr(row)


def test_no_row_from_a_judgement_when_a_curator_rejected_either_reply(store: Store, policy, chat_tokenizer) -> None:  # noqa: ANN001
    for outcome in ("left", "right"):
        ids = judged(store, f"Refund {outcome}?", f"Refund approved {outcome}.", f"Ask the shop {outcome}.", outcome)
        store.rate(ids["left"], "bob", -1)
        store.reject([ids["left"]], "cora")
    dataset = build(store, policy, chat_tokenizer)
    assert dataset.dpo == []
    assert "Refund approved" not in repr([dataset.train, dataset.dpo, dataset.kto, dataset.dpo_eval, dataset.kto_eval])
    assert dataset.manifest["counts"]["filters"]["judged_reply_rejected"] == 2


def test_a_held_out_conversations_judgements_go_to_dpo_eval(store: Store, chat_tokenizer) -> None:  # noqa: ANN001
    made = [judged(store, f"Question {n}?", f"Good answer {n}.", f"Bad answer {n}.", "left") for n in range(12)]
    dataset = build(store, BuildPolicy(eval_fraction=0.5, min_eval_examples=0), chat_tokenizer)
    held_out = {m["cid"] for m in made if split_point(m["cid"]) < 0.5}
    assert held_out and len(held_out) < len(made)
    rows = dataset.manifest["rows"]
    assert {r["conversation_id"] for r in rows["dpo_eval"]} == held_out
    assert {r["conversation_id"] for r in rows["dpo"]} == {m["cid"] for m in made} - held_out
    assert dataset.manifest["counts"]["filters"]["preference_held_out"] == len(held_out)
    assert all(r["chosen"][0]["content"].startswith("Good") for r in dataset.dpo + dataset.dpo_eval)
