"""Fixtures for the dataset builder: the tiny model's real tokenizer and a small curated log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.data.builder import BuildPolicy
from assistant.store import Store

SYSTEM = "You are the Nimbus Home support assistant."


@pytest.fixture(scope="session")
def chat_tokenizer(tiny_model_dir: Path):  # noqa: ANN201
    from assistant.data.tokens import ChatTokenizer

    return ChatTokenizer.load(tiny_model_dir, "tiny")


@pytest.fixture
def policy() -> BuildPolicy:
    return BuildPolicy(eval_fraction=0.0, min_eval_examples=0)


@dataclass
class Log:
    """Ids of the fixture log's messages, by name."""

    ids: dict[str, int]
    conversations: dict[str, int]

    def __getitem__(self, name: str) -> int:
        return self.ids[name]


def approved(store: Store, question: str, answer: str) -> int:
    """A conversation of one turn whose reply was rated up and approved: its id."""
    cid = store.create_conversation("ann", SYSTEM).id
    _, a = turn(store, cid, question, answer)
    store.rate(a, "bob", 1)
    store.approve([a], "cora")
    return cid


def turn(store: Store, cid: int, question: str, answer: str, parent: int | None = None) -> tuple[int, int]:
    q = store.add_message(cid, "user", question, parent_id=parent)
    a = store.add_message(cid, "assistant", answer, parent_id=q.id)
    return q.id, a.id


@pytest.fixture
def log(store: Store) -> Log:
    """A small log covering every rule:

    billing:  3 turns; the 1st approved as it is, the 2nd thumbs-down with a correction, approved;
              the 3rd thumbs-up, not reviewed.
    refund:   thumbs-down, rejected by a curator.
    regen:    a reply rated down and its regenerated sibling rated up (both pending).
    edited:   thumbs-down with a rater's correction, and a curator's edit that wins over it.
    disputed: thumbs-up and thumbs-down from two raters.
    """
    ids: dict[str, int] = {}
    convs: dict[str, int] = {}

    c = store.create_conversation("ann", SYSTEM).id
    convs["billing"] = c
    ids["q1"], ids["a1"] = turn(store, c, "When is my bill due?", "On the 1st of each month.")
    ids["q2"], ids["a2"] = turn(store, c, "Can I pay by card?", "No.", parent=ids["a1"])
    ids["q3"], ids["a3"] = turn(store, c, "Thanks!", "You are welcome.", parent=ids["a2"])
    store.rate(ids["a1"], "bob", 1)
    store.rate(ids["a2"], "bob", -1, reasons=["wrong facts"], correction="Yes: Visa, Mastercard and Amex.")
    store.rate(ids["a3"], "bob", 1)
    store.approve([ids["a1"], ids["a2"]], "cora")

    c = store.create_conversation("ann", SYSTEM).id
    convs["refund"] = c
    ids["q4"], ids["a4"] = turn(store, c, "I want a refund", "Refund approved, no questions asked!")
    store.rate(ids["a4"], "bob", -1)
    store.reject([ids["a4"]], "cora")

    c = store.create_conversation("ann", SYSTEM).id
    convs["regen"] = c
    ids["q5"], ids["a5"] = turn(store, c, "How do I reset the hub?", "Unplug it forever.")
    ids["a5b"] = store.add_message(c, "assistant", "Hold the button for 10 seconds.", parent_id=ids["q5"]).id
    store.rate(ids["a5"], "bob", -1)
    store.rate(ids["a5b"], "bob", 1)

    c = store.create_conversation("ann", SYSTEM).id
    convs["edited"] = c
    ids["q6"], ids["a6"] = turn(store, c, "Is shipping free?", "Never.")
    store.rate(ids["a6"], "bob", -1, correction="Yes, over $50.")
    store.edit(ids["a6"], "cora", "Shipping is free on orders over $50.")

    c = store.create_conversation("ann", SYSTEM).id
    convs["disputed"] = c
    ids["q7"], ids["a7"] = turn(store, c, "Do cameras work offline?", "They record to the SD card.")
    store.rate(ids["a7"], "bob", 1)
    store.rate(ids["a7"], "dan", -1)
    return Log(ids, convs)
