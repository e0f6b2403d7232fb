"""SVG snapshots of the main screen (also in small terminals), the feedback dialog and the help screen.

Time is frozen (the store's clock), replies are stored ahead (no sampling), and the model is the
session's tiny model, so every run draws the same screen. Update with `--snapshot-update` after
checking the change by eye.
"""

from __future__ import annotations

import pytest

from assistant.store import ReplyRecord, Store
from tests.tui.helpers import make_app, wait_for, wait_loaded

SIZE = (110, 34)


def seed_history(store: Store) -> None:
    """Three conversations; the latest has two turns, a rating and a regenerated answer."""
    older = store.create_conversation("ann", "sys")
    asked = store.add_message(older.id, "user", "My doorbell chime stopped ringing")
    store.add_message(older.id, "assistant", "Check the chime setting in the app.", parent_id=asked.id)
    store.create_conversation("ann", "sys", title="Invoice for order NH-104857")

    latest = store.create_conversation("ann", "sys")
    record = ReplyRecord(
        content="",
        model="assistant-demo",
        adapter=None,
        params={"temperature": 0.3},
        ttft_ms=41.0,
        token_count=64,
        tokens_per_s=212.5,
        finish_reason="stop",
    )
    question = store.add_message(latest.id, "user", "What's your return policy? How many days do I have?")
    first = store.add_message(
        latest.id, "assistant", "You have 30 days.", parent_id=question.id, reply=record
    )
    store.rate(first.id, "ann", -1, reasons=["incomplete"], correction="30 days from delivery, free returns.")
    answer = (
        "You have **30 days from the day your order is delivered** to return a device, for any reason.\n\n"
        "1. Go to Account > Orders.\n2. Choose **Return items**.\n3. Print the prepaid label."
    )
    second = store.add_message(latest.id, "assistant", answer, parent_id=question.id, reply=record)
    store.rate(second.id, "ann", 1)
    follow = store.add_message(latest.id, "user", "And when do I get my money back?", parent_id=second.id)
    store.add_message(
        latest.id,
        "assistant",
        "Refunds are checked within 3 business days of arrival; banks take 5-10 more days.",
        parent_id=follow.id,
        reply=record,
    )


@pytest.fixture
def seeded(settings, store, tiny_backend):  # noqa: ANN001, ANN201
    seed_history(store)
    return make_app(settings, store, tiny_backend)


def test_main_screen(snap_compare, seeded) -> None:  # noqa: ANN001
    async def ready(pilot) -> None:  # noqa: ANN001
        await wait_loaded(pilot)
        await pilot.press("escape", "up", "up")  # highlight the rated, regenerated answer

    assert snap_compare(seeded, terminal_size=SIZE, run_before=ready)


def test_feedback_dialog(snap_compare, seeded) -> None:  # noqa: ANN001
    from assistant.tui.screens.feedback import FeedbackScreen

    async def ready(pilot) -> None:  # noqa: ANN001
        await wait_loaded(pilot)
        await pilot.press("escape", "up", "up", "c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, FeedbackScreen))
        await pilot.pause()

    assert snap_compare(seeded, terminal_size=SIZE, run_before=ready)


def test_help_screen(snap_compare, seeded) -> None:  # noqa: ANN001
    from assistant.tui.screens.help import HelpScreen

    async def ready(pilot) -> None:  # noqa: ANN001
        await wait_loaded(pilot)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause()

    assert snap_compare(seeded, terminal_size=SIZE, run_before=ready)


@pytest.mark.parametrize("size", [(60, 15), (40, 10)], ids=["60x15", "40x10"])
def test_main_screen_in_a_small_terminal(snap_compare, seeded, size) -> None:  # noqa: ANN001
    async def ready(pilot) -> None:  # noqa: ANN001
        await wait_loaded(pilot)
        await pilot.pause()

    assert snap_compare(seeded, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", [(110, 34), (60, 34)], ids=["wide", "narrow"])
def test_blind_ab_pair(snap_compare, settings, store, size) -> None:  # noqa: ANN001
    """Both answers written, waiting for the pick: side by side, stacked when narrow."""
    from tests.tui.test_ab import ANSWERS, Scripted, ab_app, fake_version, wait_pick, wait_serving
    from tests.tui.helpers import send

    fake_version(store, settings, "v0001", "active")
    fake_version(store, settings, "v0002", "candidate")
    answers = {**ANSWERS, "v0002": "Unplug it for **ten seconds**, then:\n\n1. plug it back in\n2. hold the dial"}
    app = ab_app(settings, store, Scripted(answers, serving="v0001"), seed=0, ab_share=1.0)

    async def ready(pilot) -> None:  # noqa: ANN001
        await wait_serving(pilot, "v0001")
        await send(pilot, "My thermostat is off")
        await wait_pick(pilot)

    assert snap_compare(app, terminal_size=size, run_before=ready)
