"""The curator's review screen driven with Pilot, on a real store seeded with rated replies."""

from __future__ import annotations

from dataclasses import dataclass

from textual.widgets import Input, Markdown, Static

from assistant.store import Message, Store
from assistant.tui.review_app import ReviewApp
from assistant.tui.screens import review
from assistant.tui.screens.dialogs import Confirm, TextPrompt
from assistant.tui.screens.review import ReviewScreen
from tests.conftest import HOSTILE_REPLY
from tests.tui.helpers import make_app, wait_for, wait_loaded

SIZE = (120, 40)
CORRECTION = "Returns are accepted within 30 days of delivery."


@dataclass(frozen=True)
class Seeded:
    up: Message  # thumbs up from bob only
    down: Message  # thumbs down from bob, with a correction
    split: Message  # thumbs up from bob, thumbs down from cat: disagreement


def rated_reply(store: Store, question: str, answer: str, *ratings: tuple[str, int, dict]) -> Message:
    conversation = store.create_conversation("cus", "You are a support assistant.")
    asked = store.add_message(conversation.id, "user", question)
    reply = store.add_message(conversation.id, "assistant", answer, parent_id=asked.id)
    for user, rating, extra in ratings:
        store.rate(reply.id, user, rating, **extra)
    return reply


def seed(store: Store) -> Seeded:
    """Rated in this order (the store's clock ticks once a call): up, down, split."""
    up = rated_reply(store, "How do I reset my password?", "Use **Forgot password** on the sign-in page.",
                     ("bob", 1, {}))
    down = rated_reply(
        store,
        "What is the return policy?",
        "You can return items within 14 days.",
        ("bob", -1, {"reasons": ("wrong facts",), "comment": "The window is 30 days.", "correction": CORRECTION}),
    )
    split = rated_reply(store, "How long does shipping take?", "Two to five working days.",
                        ("bob", 1, {}), ("cat", -1, {"reasons": ("incomplete",)}))
    return Seeded(up=up, down=down, split=split)


def screen_of(app) -> ReviewScreen:  # noqa: ANN001
    screen = app.screen
    assert isinstance(screen, ReviewScreen), screen
    return screen


async def ready(pilot) -> ReviewScreen:  # noqa: ANN001
    """The review screen with its detail pane showing the highlighted reply."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ReviewScreen), what="the review screen")
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.idle, what="the detail pane")
    await pilot.pause()
    return screen


async def settle(pilot) -> ReviewScreen:  # noqa: ANN001
    await pilot.pause()
    return await ready(pilot)


def listed(screen: ReviewScreen) -> list[int]:
    queue = screen.queue
    return [int(queue.get_option_at_index(i).id) for i in range(queue.option_count)]


def notifications(app, severity: str | None = None) -> list[str]:  # noqa: ANN001
    return [n.message for n in app._notifications if severity is None or n.severity == severity]


def header(screen: ReviewScreen) -> str:
    return str(screen.query_one("#review-header", Static).render())


def detail_text(screen: ReviewScreen) -> str:
    parts = []
    for widget in screen.detail.children:
        parts.append(widget.source if isinstance(widget, Markdown) else str(widget.render()))
    return "\n".join(parts)


async def test_default_order_is_thumbs_down_first_with_disagreement_flagged(settings, store) -> None:  # noqa: ANN001
    seeded = seed(store)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        # Thumbs-down first (oldest rating first), then the rest, although the thumbs-up came first.
        assert listed(screen) == [seeded.down.id, seeded.split.id, seeded.up.id]
        lines = [str(screen.queue.get_option_at_index(i).prompt) for i in range(3)]
        assert "⚠" in lines[1] and "⚠" not in lines[0] and "⚠" not in lines[2]
        assert lines[0].startswith("▼1") and "pending" in lines[0] and "What is the return policy?" in lines[0]
        assert "3 pending" in header(screen) and "0 approved" in header(screen)
        assert "3 replies" in str(screen.query_one("#review-caption", Static).render())

        # The first reply in detail: conversation, reply, rating with reasons and comment, correction.
        assert screen.shown.message.id == seeded.down.id
        text = detail_text(screen)
        for expected in ("What is the return policy?", "You can return items within 14 days.", "bob",
                         "wrong facts", "The window is 30 days.", CORRECTION):
            assert expected in text
        assert not screen.query(".review-flag")

        await pilot.press("n")
        screen = await settle(pilot)
        assert screen.shown.message.id == seeded.split.id
        (flag,) = screen.query(".review-flag")
        assert "disagreement" in str(flag.render()) and "bob" in str(flag.render()) and "cat" in str(flag.render())


async def test_approve_takes_the_correction_and_moves_to_the_next_pending(settings, store) -> None:  # noqa: ANN001
    seeded = seed(store)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("a")
        screen = await settle(pilot)

        item = store.review_item(seeded.down.id)
        assert (item.status, item.source, item.answer, item.curator) == ("approved", "correction", CORRECTION, "ann")
        assert store.message(seeded.down.id).content == "You can return items within 14 days."
        # It left the pending list; the next pending reply is highlighted and shown.
        assert listed(screen) == [seeded.split.id, seeded.up.id]
        assert screen.current.message.id == seeded.split.id == screen.shown.message.id
        assert "2 pending" in header(screen) and "1 approved" in header(screen)
        assert "1 approved since the last adapter" in header(screen)
        (entry,) = store.audit_log()
        assert (entry.actor, entry.action, entry.message_id) == ("ann", "approve", seeded.down.id)

        # A reply without a correction trains on the reply as written.
        await pilot.press("a")
        await settle(pilot)
        assert store.review_item(seeded.split.id).source == "reply"


async def test_edit_saves_the_curated_answer_and_keeps_the_reply(settings, store) -> None:  # noqa: ANN001
    seeded = seed(store)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("e")
        editor = screen.editor
        assert screen.query_one("#review-editor").display and app.focused is editor
        assert editor.text == CORRECTION  # the curated answer so far: the proposed correction
        title = str(screen.query_one("#review-editor-title", Static).render())
        assert f"reply {seeded.down.id}" in title and "starting from the rater's correction" in title
        await pilot.press("ctrl+a")  # select all, as in other editors
        assert editor.selected_text == CORRECTION
        await pilot.press("end")
        # Keys are text while editing: "a" is typed, not an approval.
        await pilot.press("end", "space", "a")
        assert editor.text == CORRECTION + " a"
        assert store.review_item(seeded.down.id).status == "pending"

        # An empty answer is refused with a notification; the editor stays open.
        editor.load_text("   ")
        await pilot.press("ctrl+s")
        assert any("empty" in m for m in notifications(app, "error"))
        assert screen.editing is not None and store.audit_log() == []

        editor.load_text("Returns: 30 days from delivery, with the receipt.")
        await pilot.press("ctrl+s")
        screen = await settle(pilot)
        item = store.review_item(seeded.down.id)
        assert (item.status, item.source) == ("approved", "edit")
        assert item.answer == "Returns: 30 days from delivery, with the receipt."
        assert store.message(seeded.down.id).content == "You can return items within 14 days."
        assert screen.editing is None and not screen.query_one("#review-editor").display
        assert screen.current.message.id == seeded.split.id
        assert [(e.actor, e.action) for e in store.audit_log()] == [("ann", "edit")]

        # Esc cancels an edit: nothing saved.
        await pilot.press("e")
        editor.load_text("something else")
        await pilot.press("escape")
        await settle(pilot)
        assert screen.editing is None and app.screen is screen
        assert store.review_item(seeded.split.id).status == "pending"

        # Approved with the curated answer shown, and the original reply beside it.
        await pilot.press("f")  # status: approved
        screen = await settle(pilot)
        assert listed(screen) == [seeded.down.id]
        text = detail_text(screen)
        assert "Returns: 30 days from delivery" in text and "You can return items within 14 days." in text


async def test_reject_then_undo_restores_pending_and_audits_both(settings, store) -> None:  # noqa: ANN001
    seeded = seed(store)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("x")
        screen = await settle(pilot)
        assert store.review_item(seeded.down.id).status == "rejected"
        assert "1 rejected" in header(screen)

        await pilot.press("u")
        screen = await settle(pilot)
        assert store.review_item(seeded.down.id).status == "pending"
        assert "Undid the rejection of 1 reply" in notifications(app)
        assert listed(screen) == [seeded.down.id, seeded.split.id, seeded.up.id]
        assert screen.current.message.id == seeded.down.id
        assert [(e.actor, e.action) for e in store.audit_log()] == [("ann", "undo"), ("ann", "reject")]

        await pilot.press("u")
        await settle(pilot)
        assert "Nothing to undo" in notifications(app)

        # An undo that would overwrite another curator's later decision is refused, not a crash.
        await pilot.press("a")
        await settle(pilot)
        store.reject([seeded.down.id], "bob")
        await pilot.press("u")
        await settle(pilot)
        assert any("cannot undo" in m and "bob" in m for m in notifications(app, "error"))
        assert store.review_item(seeded.down.id).status == "rejected"
        assert app.is_running


async def test_bulk_approve_asks_first_and_one_undo_reverts_the_batch(settings, store) -> None:  # noqa: ANN001
    seeded = seed(store)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the confirmation")
        assert app.screen.question == "Approve 3 replies?"
        await pilot.press("n")
        screen = await settle(pilot)
        assert store.audit_log() == []

        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        screen = await settle(pilot)
        ids = (seeded.down.id, seeded.split.id, seeded.up.id)
        assert [store.review_item(i).status for i in ids] == ["approved"] * 3
        entries = store.audit_log()
        assert len(entries) == 3 and {e.action for e in entries} == {"approve"}
        assert len({e.batch for e in entries}) == 1 and entries[0].batch is not None
        assert listed(screen) == [] and screen.shown is None
        assert "Nothing to review" in detail_text(screen)
        assert "0 pending" in header(screen) and "3 approved" in header(screen)

        await pilot.press("u")
        screen = await settle(pilot)
        assert [store.review_item(i).status for i in ids] == ["pending"] * 3
        assert "Undid the approval of 3 replies" in notifications(app)
        assert listed(screen) == [seeded.down.id, seeded.split.id, seeded.up.id]


async def test_bulk_approve_covers_the_filtered_set_beyond_the_list(settings, store, monkeypatch) -> None:  # noqa: ANN001
    seeded = seed(store)
    monkeypatch.setattr(review, "LIST_LIMIT", 2)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        assert len(listed(screen)) == 2
        assert "showing 2 of 3" in str(screen.query_one("#review-caption", Static).render())

        await pilot.press("g")  # rating: thumbs down only
        screen = await settle(pilot)
        assert listed(screen) == [seeded.down.id, seeded.split.id]
        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        assert app.screen.question == "Approve 2 replies?"
        await pilot.press("y")
        await settle(pilot)
        assert store.review_item(seeded.up.id).status == "pending"
        assert store.review_item(seeded.split.id).status == "approved"


async def test_next_and_previous_move_through_the_queue(settings, store) -> None:  # noqa: ANN001
    seeded = seed(store)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        order = [seeded.down.id, seeded.split.id, seeded.up.id]
        for key, expected in [("n", 1), ("n", 2), ("n", 2), ("p", 1), ("p", 0), ("p", 0)]:
            await pilot.press(key)
            screen = await settle(pilot)
            assert screen.queue.highlighted == expected
            assert screen.shown.message.id == order[expected]


async def test_filters_status_rating_and_search(settings, store) -> None:  # noqa: ANN001
    seeded = seed(store)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        await pilot.press("g")  # rating: down
        screen = await settle(pilot)
        assert listed(screen) == [seeded.down.id, seeded.split.id]
        await pilot.press("g")  # rating: up
        screen = await settle(pilot)
        assert listed(screen) == [seeded.split.id, seeded.up.id]
        await pilot.press("g")  # any again
        await pilot.press("f", "f", "f")  # approved, rejected, all
        screen = await settle(pilot)
        assert screen.status_filter is None and len(listed(screen)) == 3

        # "/" goes to the search; letters typed there are text, not actions.
        await pilot.press("slash")
        assert app.focused is screen.query_one("#review-search", Input)
        await pilot.press(*"shipping")
        await wait_for(pilot, lambda: listed(screen) == [seeded.split.id], what="the search to apply")
        assert store.audit_log() == [] and app.screen is screen  # the "p" typed was text
        await pilot.press("escape")  # back to the list, still filtered
        assert app.focused is screen.queue and app.screen is screen
        await pilot.press("slash", "ctrl+u", "enter")
        await wait_for(pilot, lambda: len(listed(screen)) == 3)

        screen.query_one("#review-rater", Input).value = "cat"
        await wait_for(pilot, lambda: listed(screen) == [seeded.split.id], what="the rater filter")
        screen.query_one("#review-rater", Input).value = ""
        screen.query_one("#review-since", Input).value = "2999-01-01"
        await wait_for(pilot, lambda: listed(screen) == [], what="the date filter")


async def test_tags_are_saved_from_the_dialog(settings, store) -> None:  # noqa: ANN001
    seeded = seed(store)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TextPrompt), what="the tags dialog")
        app.screen.query_one(Input).value = "billing, returns ,, billing"
        await pilot.press("enter")
        screen = await settle(pilot)
        item = store.review_item(seeded.down.id)
        assert item.tags == ("billing", "returns") and item.status == "pending"
        assert "billing, returns" in detail_text(screen)
        assert [(e.actor, e.action) for e in store.audit_log()] == [("ann", "tag")]


async def test_a_non_curator_sees_the_queue_but_every_action_is_refused(settings, store) -> None:  # noqa: ANN001
    seeded = seed(store)
    app = ReviewApp(settings.replace(curators=("zoe",)), store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        assert "read-only" in header(screen)
        assert len(listed(screen)) == 3
        for key in ("a", "e", "x", "t", "u", "A"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is screen, f"{key} opened something"
        errors = notifications(app, "error")
        assert len(errors) == 6 and all("ann is not a curator" in m and "zoe" in m for m in errors)
        assert screen.editing is None
        assert store.audit_log() == []
        assert [store.review_item(m.id).status for m in (seeded.up, seeded.down, seeded.split)] == ["pending"] * 3
        # Browsing still works.
        await pilot.press("n")
        screen = await settle(pilot)
        assert screen.shown.message.id == seeded.split.id


async def test_hostile_text_is_shown_inert(settings, store) -> None:  # noqa: ANN001
    reply = rated_reply(
        store,
        "Title \x1b[2J\x1b]0;pwned\x07[bold]question[/bold]",
        HOSTILE_REPLY,
        ("bob", -1, {"comment": "see \x1b[31mred\x1b[0m [bold]markup[/bold] [@click=app.quit]q[/]",
                     "correction": "Better \x1b]8;;http://evil.example\x07[b]answer[/b]"}),
    )
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        assert screen.shown.message.id == reply.id
        text = detail_text(screen)
        assert "\x1b" not in text and "\x07" not in text
        assert "[bold]markup[/bold]" in text and "[@click=app.quit]q[/]" in text
        assert "[bold]boom[/bold]" in text  # the reply, as Markdown source, cleaned
        assert "[b]answer[/b]" in text
        line = str(screen.queue.get_option_at_index(0).prompt)
        assert "\x1b" not in line and "[bold]question[/bold]" in line

        screenshot = app.export_screenshot()
        assert "\x1b" not in screenshot
        assert "@click=app.quit" in screenshot  # shown literally, not turned into an action
        await pilot.click("#review-detail", offset=(10, 12))
        await pilot.click("#review-detail", offset=(30, 14))
        await pilot.pause()
        assert app.is_running and app.screen is screen

        await pilot.press("e")  # the editor gets the cleaned text
        assert "\x1b" not in screen.editor.text and "[b]answer[/b]" in screen.editor.text


async def test_escape_and_q_quit_the_standalone_app(settings, store) -> None:  # noqa: ANN001
    seed(store)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("q")
        await wait_for(pilot, lambda: app._exit, what="the app to quit")


async def test_ctrl_r_opens_review_from_the_chat_and_escape_goes_back(settings, store, tiny_backend) -> None:  # noqa: ANN001
    seeded = seed(store)
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        assert app.focused is app.chat.composer
        await pilot.press("ctrl+r")
        screen = await ready(pilot)
        assert listed(screen) == [seeded.down.id, seeded.split.id, seeded.up.id]
        await pilot.press("ctrl+r")  # already there: nothing more opens
        assert app.screen is screen and len(app.screen_stack) == 3

        await pilot.press("a")
        await settle(pilot)
        assert store.review_item(seeded.down.id).status == "approved"

        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.chat, what="the chat")
        assert app.is_running
        await pilot.press("ctrl+r")
        await ready(pilot)
        await pilot.press("q")
        await wait_for(pilot, lambda: app.screen is app.chat, what="the chat again")


async def test_the_curator_sees_what_training_sees_when_scrubbing_changes_the_answer(settings, store) -> None:  # noqa: ANN001
    """A correction with the company's sender address: the detail pane shows the scrubbed training text
    and its placeholder; with the domain in pii_allow the text trains as written and nothing is flagged."""
    from dataclasses import replace

    correction = "The link comes from no-reply@nimbushome.example and works for 60 minutes."
    rated_reply(store, "Who sends the reset link?", "Nobody.",
                ("bob", -1, {"reasons": ("wrong facts",), "correction": correction}))
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        shown = detail_text(screen)
        assert "What training sees (PII scrubbed)" in shown
        assert "The link comes from <EMAIL_1> and works for 60 minutes." in shown
        assert "⚠ placeholders (EMAIL 1): the model learns to write them" in shown

    app = ReviewApp(replace(settings, pii_allow=("nimbushome.example",)), store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        shown = detail_text(screen)
        assert correction in shown
        assert "What training sees" not in shown and "placeholders" not in shown


async def test_the_queue_tells_two_answers_to_the_same_question_apart(settings, store) -> None:  # noqa: ANN001
    conversation = store.create_conversation("cus", "You are a support assistant.")
    asked = store.add_message(conversation.id, "user", "How long does shipping take?")
    first = store.add_message(conversation.id, "assistant", "Two to five working days.", parent_id=asked.id)
    second = store.add_message(conversation.id, "assistant", "Usually one week.", parent_id=asked.id)  # regenerated
    store.rate(first.id, "bob", -1)
    store.rate(second.id, "bob", 1)
    app = ReviewApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await ready(pilot)
        lines = {int(screen.queue.get_option_at_index(i).id): str(screen.queue.get_option_at_index(i).prompt) for i in range(2)}
        assert "Two to five working days." in lines[first.id] and "Usually one week." in lines[second.id]
