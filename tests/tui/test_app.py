"""The chat app driven with Textual's Pilot, on real tiny models and a real store."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Input, Static

from assistant.errors import ModelError
from assistant.tui.screens.dialogs import Confirm, TextPrompt
from assistant.tui.screens.feedback import FeedbackScreen
from assistant.tui.screens.help import HelpScreen
from assistant.tui.widgets.chatlog import MessageList, MessageView
from assistant.tui.widgets.status import StatusBar
from tests.conftest import HOSTILE_QUESTION, load_backend
from tests.tui.helpers import make_app, notifications, send, wait_for, wait_loaded, wait_reply_done

SIZE = (120, 40)


def held_loader(release: threading.Event, backend):  # noqa: ANN001, ANN201
    """A loader that hands over `backend` once `release` is set: the model is loading until then."""

    def load(progress):  # noqa: ANN001, ANN202
        release.wait(30)
        return backend

    return load


def three_conversations(store) -> None:  # noqa: ANN001
    """Three answered questions in three conversations; the doorbell one is the latest."""
    for question in ("My thermostat shows error E4", "Refund for order NH-2211", "Doorbell chime is silent"):
        conversation = store.create_conversation("ann", "sys")
        asked = store.add_message(conversation.id, "user", question)
        store.add_message(conversation.id, "assistant", f"Answer about {question}", parent_id=asked.id)


def assistant_views(app) -> list[MessageView]:  # noqa: ANN001
    return [v for v in app.chat.messages.views if v.role == "assistant"]


async def test_a_sent_message_gets_a_streamed_reply_stored_with_identity(settings, store, tiny_backend) -> None:  # noqa: ANN001
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "How do I reset my password?")
        await wait_reply_done(pilot)

        conversation = store.conversations(user="ann")[0]
        thread = store.thread(conversation.id)
        assert [m.role for m in thread] == ["user", "assistant"]
        question, answer = thread
        assert question.content == "How do I reset my password?"
        assert answer.parent_id == question.id
        assert answer.content
        assert answer.model == tiny_backend.identity.model
        assert answer.adapter is None
        assert answer.ttft_ms is not None and answer.token_count > 1 and answer.tokens_per_s > 0
        assert answer.params["temperature"] == 0.0
        # Shown as stored, and the conversation is titled after the question.
        view = assistant_views(app)[-1]
        assert view.message == answer
        assert view.body_text == answer.content
        assert conversation.title == "How do I reset my password?"
        assert app.chat.query_one(StatusBar).tokens_per_s == answer.tokens_per_s
        assert app.chat.composer.text == ""


async def test_replies_stream_and_keys_work_while_streaming(settings, store, chatty_model_dir) -> None:  # noqa: ANN001
    # A stream long enough to outlast the key presses on a slow machine; Esc ends it long before.
    app = make_app(settings.replace(max_new_tokens=20_000), store, load_backend(chatty_model_dir))
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "Tell me everything about shipping.")
        await wait_for(pilot, lambda: app.chat.active is not None and len(app.chat.active.reply.text) > 20)
        first = len(app.chat.active.reply.text)

        # The app answers key presses while the reply streams: help opens and closes.
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        assert app.chat.active is not None, "the reply ended before the keys were tested"
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.chat, what="help to close")
        # The reply kept growing meanwhile, on screen too.
        await wait_for(pilot, lambda: len(app.chat.active.reply.text) > first + 20)
        assert app.chat.active is not None

        # Esc stops the reply; what was written is kept and marked stopped.
        await pilot.press("escape")
        await wait_reply_done(pilot)
        answer = store.thread(store.conversations()[0].id)[-1]
        assert answer.role == "assistant"
        assert answer.finish_reason == "cancelled"
        assert 0 < answer.token_count < 20_000
        assert "stopped" in str(assistant_views(app)[-1]._header_text())


async def test_escape_focuses_the_latest_reply_and_rating_keys_store_feedback(settings, store, tiny_backend) -> None:  # noqa: ANN001
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "Where is my parcel?")
        await wait_reply_done(pilot)
        await send(pilot, "It was order NH-104857.")
        await wait_reply_done(pilot)

        await pilot.press("escape")
        messages = app.chat.query_one(MessageList)
        assert app.focused is messages
        latest = assistant_views(app)[-1]
        assert messages.highlighted_view is latest

        await pilot.press("plus")
        assert store.feedback_for(latest.message.id, user="ann")[0].rating == 1
        assert "helpful" in str(latest._header_text())
        await pilot.press("minus")
        history = store.feedback_history(latest.message.id)
        assert [(f.rating, f.current) for f in history] == [(1, False), (-1, True)]

        # Up moves to the earlier reply; rating it leaves the latest alone.
        await pilot.press("up", "up")
        earlier = assistant_views(app)[0]
        assert messages.highlighted_view is earlier
        await pilot.press("plus")
        assert store.feedback_for(earlier.message.id)[0].rating == 1
        assert store.feedback_for(latest.message.id)[0].rating == -1

        await pilot.press("i")
        assert app.focused is app.chat.composer


async def test_feedback_dialog_saves_tags_comment_and_correction(settings, store, tiny_backend) -> None:  # noqa: ANN001
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "Can I return a camera after 40 days?")
        await wait_reply_done(pilot)
        await pilot.press("escape", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, FeedbackScreen), what="the feedback dialog")
        dialog = app.screen

        await pilot.click("#rating-down")
        await pilot.click("#reason-wrong-facts")
        await pilot.click("#reason-incomplete")
        dialog.query_one("#feedback-comment").value = "The window is 30 days."
        dialog.query_one("#feedback-correction").text = "Returns are accepted within 30 days of delivery."
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is app.chat, what="the dialog to close")

        reply = assistant_views(app)[-1].message
        (feedback,) = store.feedback_for(reply.id)
        assert feedback.rating == -1
        assert feedback.reasons == ("wrong facts", "incomplete")
        assert feedback.comment == "The window is 30 days."
        assert feedback.correction == "Returns are accepted within 30 days of delivery."
        header = str(assistant_views(app)[-1]._header_text())
        assert "not helpful" in header and "corrected" in header

        # Opening it again shows what was saved; rating again changes the rating.
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, FeedbackScreen))
        assert app.screen.query_one("#feedback-correction").text == feedback.correction
        await pilot.click("#rating-up")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is app.chat)
        assert store.feedback_for(reply.id)[0].rating == 1
        assert len(store.feedback_history(reply.id)) == 2


async def test_feedback_dialog_cancel_saves_nothing(settings, store, tiny_backend) -> None:  # noqa: ANN001
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "Hello")
        await wait_reply_done(pilot)
        await pilot.press("escape", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, FeedbackScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.chat)
        assert store.feedback_for(assistant_views(app)[-1].message.id) == []


async def test_regenerate_keeps_both_answers_reachable(settings, store, tiny_backend) -> None:  # noqa: ANN001
    app = make_app(settings.replace(temperature=1.0), store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "How long does shipping take?")
        await wait_reply_done(pilot)
        first = assistant_views(app)[-1].message
        await pilot.press("escape", "r")
        await wait_reply_done(pilot)

        second = assistant_views(app)[-1].message
        assert second.id != first.id
        assert second.parent_id == first.parent_id
        assert [m.id for m in store.siblings(second.id)] == [first.id, second.id]
        assert len(assistant_views(app)) == 1
        assert "‹ 2/2 ›" in str(assistant_views(app)[-1]._header_text())

        await pilot.press("escape")  # to the list, latest highlighted
        await pilot.press("left")
        await wait_for(pilot, lambda: assistant_views(app)[-1].message.id == first.id, what="the earlier answer")
        assert "‹ 1/2 ›" in str(assistant_views(app)[-1]._header_text())
        await pilot.press("right")
        await wait_for(pilot, lambda: assistant_views(app)[-1].message.id == second.id, what="the later answer")


async def test_copy_puts_the_reply_on_the_clipboard(settings, store, tiny_backend) -> None:  # noqa: ANN001
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "Hi")
        await wait_reply_done(pilot)
        await pilot.press("escape", "y")
        assert app.clipboard == assistant_views(app)[-1].message.content


async def test_search_finds_an_old_conversation_and_opens_it(settings, store, tiny_backend) -> None:  # noqa: ANN001
    three_conversations(store)
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        assert app.chat.conversation.title == "Doorbell chime is silent"  # the latest opens first
        await pilot.press("ctrl+f")
        await pilot.press(*"thermo")
        options = app.chat.sidebar.options
        await wait_for(pilot, lambda: app.chat.sidebar.searching and options.option_count == 1, what="the search")
        await pilot.press("enter")  # from the search box to the results
        await pilot.press("enter")  # open the highlighted result
        await wait_for(pilot, lambda: app.chat.conversation.title == "My thermostat shows error E4")
        assert app.chat.messages.views[0].body_text == "My thermostat shows error E4"


async def test_conversation_list_renames_archives_and_deletes(settings, store, tiny_backend) -> None:  # noqa: ANN001
    conversation = store.create_conversation("ann", "sys")
    store.add_message(conversation.id, "user", "Old question")
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.chat.sidebar.options.focus()
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, TextPrompt))
        app.screen.query_one("Input").value = "Renamed"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.chat)
        assert store.conversation(conversation.id).title == "Renamed"

        await pilot.press("a")
        assert store.conversation(conversation.id).archived
        assert app.chat.sidebar.options.option_count == 0
        await pilot.press("A")  # show archived
        assert app.chat.sidebar.options.option_count == 1
        await pilot.press("a")
        assert not store.conversation(conversation.id).archived

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is app.chat)
        await wait_for(pilot, lambda: "Deleted “Renamed”" in notifications(app), what="the erasure")
        assert store.conversations(include_archived=True) == []
        assert app.chat.conversation is None


async def test_the_app_keeps_handling_keys_while_a_large_conversation_is_erased(settings, store, tiny_backend) -> None:  # noqa: ANN001
    """Erasure (rows, search index, write-ahead log, snapshots, logs) runs in a worker: seconds for a long
    conversation, and as long as another chat keeps reading the database (here one holds a read open)."""
    from assistant.store import ImportedMessage, Store

    messages = [ImportedMessage("user" if i % 2 == 0 else "assistant", f"message {i} about Xylophonist7731")
                for i in range(20_000)]
    [long_id] = store.import_conversations([("Long one", messages)], user="ann", default_system_prompt="sys")
    kept = store.create_conversation("ann", "sys", title="Kept")
    store.add_message(kept.id, "user", "keep me")
    other_chat = Store.open(settings.db_path)
    app = make_app(settings, store, tiny_backend)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_loaded(pilot)
            other_chat.db.conn.execute("BEGIN")
            other_chat.db.execute("SELECT count(*) FROM messages").fetchone()  # reading: the WAL cannot be emptied
            app.chat.sidebar.options.focus()
            app.chat.sidebar.options.highlighted = next(
                i for i in range(app.chat.sidebar.options.option_count)
                if app.chat.sidebar.options.get_option_at_index(i).id == str(long_id)
            )
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
            await pilot.press("y")
            await wait_for(pilot, lambda: any("Deleting" in n for n in notifications(app)), 5, "the progress")
            app.chat.composer.focus()
            await pilot.press(*"still typing")
            assert app.chat.composer.text == "still typing"  # handled while the erasure waits for the reader
            assert not any(n.startswith("Deleted") for n in notifications(app))
            listed = [app.chat.sidebar.options.get_option_at_index(i).id
                      for i in range(app.chat.sidebar.options.option_count)]
            assert listed == [str(kept.id)]  # no longer offered while it goes

            other_chat.db.conn.execute("COMMIT")
            await wait_for(pilot, lambda: any(n.startswith("Deleted") for n in notifications(app)), 30, "the erasure")
            assert [c.id for c in store.conversations(include_archived=True)] == [kept.id]
            assert store.search("Xylophonist7731") == []
            assert notifications(app, "warning") == [] and notifications(app, "error") == []
            await pilot.press(*" on")
            assert app.chat.composer.text == "still typing on"
    finally:
        other_chat.close()


async def test_ctrl_n_starts_a_new_conversation(settings, store, tiny_backend) -> None:  # noqa: ANN001
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "First question")
        await wait_reply_done(pilot)
        await pilot.press("ctrl+n")
        assert app.chat.conversation is None and app.chat.messages.views == []
        await send(pilot, "Second question")
        await wait_reply_done(pilot)
        assert [c.title for c in store.conversations()] == ["Second question", "First question"]


async def test_history_is_usable_while_the_model_loads(settings, store, tiny_backend) -> None:  # noqa: ANN001
    old = store.create_conversation("ann", "sys")
    store.add_message(old.id, "user", "An earlier question")
    release = threading.Event()

    def slow_loader(progress):  # noqa: ANN001, ANN202
        progress("Building the demo model: training", 0.25)
        release.wait(30)
        return tiny_backend

    app = make_app(settings, store, slow_loader)
    async with app.run_test(size=SIZE) as pilot:
        status = app.chat.query_one(StatusBar)
        await wait_for(pilot, lambda: status.loading_text.startswith("Building"), what="the loading state")
        assert app.chat.query_one("#load-progress").display
        assert app.chat.messages.views[0].body_text == "An earlier question"
        await send(pilot, "Is the model ready?")
        assert store.thread(old.id)[-1].content == "Is the model ready?"
        assert app.chat.waiting is not None

        release.set()
        await wait_loaded(pilot)
        await wait_reply_done(pilot)
        assert store.thread(old.id)[-1].role == "assistant"
        assert not app.chat.query_one("#load-progress").display


async def test_a_model_that_fails_to_load_is_reported_and_history_stays(settings, store) -> None:  # noqa: ANN001
    def broken(progress):  # noqa: ANN001, ANN202
        raise ModelError("model path not found: /nowhere")

    app = make_app(settings, store, broken)
    async with app.run_test(size=SIZE) as pilot:
        status = app.chat.query_one(StatusBar)
        await wait_for(pilot, lambda: status.error is not None, what="the failure")
        assert "model path not found" in str(status._text())
        await send(pilot, "Anyone there?")
        assert app.is_running
        assert store.thread(store.conversations()[0].id)[-1].content == "Anyone there?"


async def test_empty_message_is_refused_and_nothing_is_stored(settings, store, tiny_backend) -> None:  # noqa: ANN001
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "   \n  ")
        assert store.conversations() == []


LONG_MESSAGE = "Here is my whole router log, please read it: " + "zebra quartz 1234 " * 1500


async def test_a_message_too_long_for_the_model_is_refused_before_it_is_sent(settings, store, tiny_backend) -> None:  # noqa: ANN001
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, LONG_MESSAGE)
        notice = app.chat.query_one("#composer-notice", Static)
        await wait_for(pilot, lambda: notice.display, what="the refusal")
        assert store.conversations() == []  # nothing was stored, nothing was asked
        assert app.chat.composer.text == LONG_MESSAGE  # the text stays in the input
        said = str(notice.render())
        assert "Not sent" in said and "too long for the model" in said and "at most 4048 fit" in said
        assert not any("too long" in n for n in notifications(app))  # a lasting line, not a toast
        await pilot.press("end", *" more")  # the user edits: the reason stays until the next send
        assert notice.display

        app.chat.composer.text = "Is my router log fine?"
        await pilot.press("enter")
        await wait_reply_done(pilot)
        assert not notice.display
        assert [m.role for m in store.thread(store.conversations()[0].id)] == ["user", "assistant"]


async def test_a_too_long_message_that_fails_later_carries_a_lasting_error_marker(settings, store, tiny_backend) -> None:  # noqa: ANN001
    release = threading.Event()
    app = make_app(settings, store, held_loader(release, tiny_backend))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, LONG_MESSAGE)  # sent while the model loads: its length cannot be told yet
        release.set()
        await wait_loaded(pilot)
        await wait_reply_done(pilot)
        thread = store.thread(store.conversations()[0].id)
        assert thread[-1].finish_reason == "error" and "too long for the model" in thread[-1].error
        header = str(assistant_views(app)[-1].query_one(".message-header", Static).render())
        assert "failed" in header and "too long for the model" in header
        # Asking again cannot help: the marker says what does, and the question is back in the input to edit.
        assert "r asks again" not in header and "shorten the question and send it again" in header
        assert not any("r, asks again" in n for n in notifications(app))
        assert app.chat.composer.text == LONG_MESSAGE
        notice = app.chat.query_one("#composer-notice", Static)
        assert notice.display and "too long for the model" in str(notice.render())


async def test_a_failed_reply_says_what_helps(settings, store, tiny_backend) -> None:  # noqa: ANN001
    """Asking again helps a reply the server broke off, not one whose question is too long for the model."""
    from assistant.chat import failed_record, generation_params

    failures = {
        "Is the server up?": "cannot reach the model server at 127.0.0.1:9: Connection refused",
        "My router log: ...": "the message is too long for the model on the server (9000 tokens; at most 4048 fit)",
    }
    conversation = store.create_conversation("ann", "sys")
    parent = None
    for question, error in failures.items():
        asked = store.add_message(conversation.id, "user", question, parent_id=parent)
        record = failed_record(tiny_backend.identity, generation_params(settings), error)
        parent = store.add_message(conversation.id, "assistant", "", parent_id=asked.id, reply=record).id
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(assistant_views(app)) == 2, what="the conversation")
        server_down, too_long = (str(v.query_one(".message-header", Static).render()) for v in assistant_views(app))
        assert "cannot reach the model server" in server_down and "(r asks again)" in server_down
        assert "too long for the model" in too_long and "(shorten the question and send it again)" in too_long
        assert "r asks again" not in too_long


async def test_untrusted_model_output_renders_as_inert_text(settings, store, hostile_model_dir) -> None:  # noqa: ANN001
    app = make_app(settings, store, load_backend(hostile_model_dir))
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, HOSTILE_QUESTION)
        await wait_reply_done(pilot)

        stored = store.thread(store.conversations()[0].id)[-1].content
        assert "\x1b[31m" in stored and "[@click=app.quit]x[/]" in stored, "the test model must say it"
        view = assistant_views(app)[-1]
        assert "\x1b" not in view.body_text and "\x07" not in view.body_text
        assert "\x1b" not in (view._streamed or ""), "streamed text reached the screen unclean"
        assert "[@click=app.quit]x[/]" in view.body_text

        screen_text = app.export_screenshot()
        assert "\x1b" not in screen_text
        assert "@click=app.quit" in screen_text  # shown literally, not turned into an action
        await pilot.click(MessageView, offset=(5, 1))
        await pilot.click(MessageView, offset=(20, 1))
        await pilot.pause()
        assert app.is_running and app.screen is app.chat
        assert app.title == "assistant"


@pytest.mark.parametrize("key", ["shift+enter", "ctrl+j"])
async def test_newline_key_inserts_a_line_without_sending(settings, store, tiny_backend, key: str) -> None:  # noqa: ANN001
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.press(*"line one")
        await pilot.press(key)
        await pilot.press(*"line two")
        assert app.chat.composer.text == "line one\nline two"
        assert store.conversations() == []
        await pilot.press("enter")
        await wait_reply_done(pilot)
        assert store.thread(store.conversations()[0].id)[0].content == "line one\nline two"


async def test_a_busy_database_keeps_the_draft_and_the_app(settings, tiny_backend, monkeypatch) -> None:  # noqa: ANN001
    import sqlite3

    import assistant.store.db as db_module
    from assistant.store import Store

    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_S", 0.2)
    store = Store.open(settings.db_path)
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        blocker = sqlite3.connect(settings.db_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another app holds the write lock
        try:
            await send(pilot, "Is my refund on its way?")
            await pilot.pause(0.5)
            assert app.is_running
            assert app.chat.composer.text == "Is my refund on its way?"  # the draft is kept
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        await pilot.press("enter")  # the lock is gone: sending again works
        await wait_reply_done(pilot)
        assert store.thread(store.conversations()[0].id)[0].content == "Is my refund on its way?"
    store.close()


async def test_the_app_serves_its_model_from_a_worker_process(settings, store, tiny_model_dir) -> None:  # noqa: ANN001
    import os

    from assistant.tui.loader import backend_loader

    configured = settings.replace(model=str(tiny_model_dir))
    app = make_app(configured, store, backend_loader(configured))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.backend is not None, timeout=120, what="the worker to load the model")
        process = app.backend._process
        assert process.is_alive() and process.pid != os.getpid()
        await send(pilot, "How long does shipping take?")
        await wait_reply_done(pilot)
        answer = store.thread(store.conversations()[0].id)[-1]
        assert answer.role == "assistant" and answer.content and answer.model == tiny_model_dir.name
    assert not process.is_alive()  # the app stops its worker when it exits


async def test_a_question_sent_while_loading_is_answered_even_after_moving_on(settings, store, tiny_backend) -> None:  # noqa: ANN001
    release = threading.Event()
    app = make_app(settings, store, held_loader(release, tiny_backend))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "First question, sent while loading")
        first = store.conversations()[0]
        await pilot.press("ctrl+n")  # the user moves on before the model is ready
        await send(pilot, "A second question")
        assert app.chat.composer.text == "A second question"  # refused for now, kept
        release.set()
        await wait_loaded(pilot)
        await wait_reply_done(pilot)
        answered = store.thread(first.id)
        assert [m.role for m in answered] == ["user", "assistant"]


async def test_a_failed_load_releases_a_waiting_question(settings, store) -> None:  # noqa: ANN001
    release = threading.Event()

    def failing_loader(progress):  # noqa: ANN001, ANN202
        release.wait(30)
        raise ModelError("model path not found: /nowhere")

    app = make_app(settings, store, failing_loader)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "Sent while loading")
        assert app.chat.waiting is not None
        release.set()
        await wait_for(pilot, lambda: app.load_error is not None, what="the failure")
        await pilot.pause()
        assert app.chat.waiting is None
        await send(pilot, "Sent after the failure")
        assert store.thread(store.conversations()[0].id)[-1].content == "Sent after the failure"


async def test_quitting_while_a_reply_streams_keeps_what_was_written(settings, store, chatty_model_dir) -> None:  # noqa: ANN001
    app = make_app(settings.replace(max_new_tokens=3000), store, load_backend(chatty_model_dir))
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "Tell me everything.")
        await wait_for(pilot, lambda: app.chat.active is not None and len(app.chat.active.reply.text) > 20)
        await pilot.press("ctrl+q")
        await pilot.pause()
    answer = store.thread(store.conversations()[0].id)[-1]
    assert answer.role == "assistant" and answer.finish_reason == "cancelled"
    assert len(answer.content) > 20


async def test_deleting_a_conversation_while_its_reply_streams(settings, store, chatty_model_dir) -> None:  # noqa: ANN001
    app = make_app(settings.replace(max_new_tokens=3000), store, load_backend(chatty_model_dir))
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "Tell me everything.")
        await wait_for(pilot, lambda: app.chat.active is not None and app.chat.active.reply is not None)
        app.chat.sidebar.options.focus()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await wait_reply_done(pilot)
        await wait_for(pilot, lambda: any(n.startswith("Deleted") for n in notifications(app)), what="the erasure")
        await pilot.pause(0.2)
        assert store.counts() == {"conversations": 0, "messages": 0, "feedback": 0}
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors == []
        assert app.is_running


async def test_a_conversation_deleted_elsewhere_is_not_a_crash(settings, store, tiny_backend) -> None:  # noqa: ANN001
    from assistant.store import Store

    for title in ("Kept", "Deleted elsewhere"):
        conversation = store.create_conversation("ann", "sys", title=title)
        store.add_message(conversation.id, "user", title)
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        other_window = Store.open(settings.db_path)
        other_window.delete_conversation(store.conversations()[0].id)
        other_window.close()
        app.chat.sidebar.options.focus()
        app.chat.sidebar.options.highlighted = 0
        await pilot.press("a")
        await pilot.pause()
        assert app.is_running
        assert [c.title for c in store.conversations()] == ["Kept"]
        assert app.chat.sidebar.options.option_count == 1  # the list was refreshed


async def test_stored_text_shown_in_dialogs_is_cleaned(settings, store, tiny_backend) -> None:  # noqa: ANN001
    conversation = store.create_conversation("ann", "sys")
    question = store.add_message(conversation.id, "user", "Question")
    reply = store.add_message(conversation.id, "assistant", "Answer", parent_id=question.id)
    store.db.execute("UPDATE conversations SET title = ? WHERE id = ?", ["T\x1b]0;pwned\x07itle\x1b[31m", conversation.id])
    store.rate(reply.id, "ann", -1, comment="bad \x1b[2J comment", correction="fix \x9b31m this")
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: app.chat.conversation is not None)
        app.chat.sidebar.options.focus()
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, TextPrompt))
        assert app.screen.query_one("Input").value == "Title"
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.chat)
        app.chat.messages.focus()
        app.chat.messages.highlight_latest_reply()
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, FeedbackScreen))
        assert app.screen.query_one("#feedback-comment").value == "bad  comment"
        assert app.screen.query_one("#feedback-correction").text == "fix  this"


async def test_a_placeholder_the_model_learnt_is_shown_as_a_gap_not_as_text(settings, store, tiny_backend) -> None:  # noqa: ANN001
    """A model trained on scrubbed data may write "<EMAIL_1>": staff see a marked gap to fill in, and
    the header warns, so it never reaches a customer as if it were an address."""
    conversation = store.create_conversation("ann", "sys")
    question = store.add_message(conversation.id, "user", "Who sends the reset link? Mine is <EMAIL_1>.")
    store.add_message(conversation.id, "assistant", "It comes from <EMAIL_1>; call <PHONE_2> if not.", parent_id=question.id)
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: len(app.chat.messages.views) == 2)
        asked, reply = app.chat.messages.views
        assert asked.body_text == "Who sends the reset link? Mine is <EMAIL_1>."  # what people typed stays as typed
        assert reply.body_text == "It comes from **[missing: e-mail address]**; call **[missing: phone number]** if not."
        assert "⚠ 2 gaps: placeholders learnt from scrubbed data" in reply._header_text().plain
        assert store.thread(conversation.id)[1].content == "It comes from <EMAIL_1>; call <PHONE_2> if not."  # stored as said


async def test_a_long_confirmation_wraps_inside_its_dialog(settings, store, tiny_backend) -> None:  # noqa: ANN001
    """The F2 promote question names the version, the gate's verdict and what chats will do: it wraps."""
    from textual.widgets import Label

    question = "Promote v0007 (the gate said: keep, eval loss 2.1034 against 2.1101, less than the margin) " * 2 + "END"
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        app.push_screen(Confirm(question))
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.pause()
        label = app.screen.query_one(".dialog-title", Label)
        assert label.size.height >= 3  # wrapped onto several lines
        assert label.size.width <= app.screen.query_one("#confirm").size.width
        assert "END" in "".join(str(line.text) for line in label.render_lines(label.region.reset_offset))


async def test_enter_in_search_opens_the_first_match_esc_clears_it_and_esc_in_the_list_goes_to_the_replies(settings, store, tiny_backend) -> None:  # noqa: ANN001
    three_conversations(store)
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        sidebar = app.chat.sidebar
        await pilot.press("ctrl+f")
        await pilot.press(*"refund")
        await wait_for(pilot, lambda: sidebar.searching and sidebar.options.option_count == 1, what="the search")
        await pilot.press("enter")  # opens the first match at once
        await wait_for(pilot, lambda: app.chat.conversation.title == "Refund for order NH-2211", what="the match opened")

        await pilot.press("ctrl+f")
        await pilot.press("escape")  # clears the search: every conversation again
        await wait_for(pilot, lambda: not sidebar.searching and sidebar.options.option_count == 3, what="the search cleared")
        assert sidebar.query_one("#search", Input).value == ""

        await pilot.press("ctrl+f", *"thermo", "enter")  # before the typing pause ends: searched at once
        await wait_for(pilot, lambda: app.chat.conversation.title == "My thermostat shows error E4", what="the fresh match")
        await pilot.press("ctrl+f", "escape")

        sidebar.options.focus()
        await pilot.press("escape")  # the footer's "Stop/replies": to the replies, the latest highlighted
        await wait_for(pilot, lambda: app.focused is app.chat.messages, what="the replies focused")


async def test_focusing_the_replies_highlights_the_latest_and_up_down_skip_your_own_messages(settings, store, tiny_backend) -> None:  # noqa: ANN001
    conversation = store.create_conversation("ann", "sys")
    first_q = store.add_message(conversation.id, "user", "first question")
    first_a = store.add_message(conversation.id, "assistant", "first answer", parent_id=first_q.id)
    second_q = store.add_message(conversation.id, "user", "second question", parent_id=first_a.id)
    store.add_message(conversation.id, "assistant", "second answer", parent_id=second_q.id)
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        messages = app.chat.messages
        await wait_for(pilot, lambda: len(messages.views) == 4)
        messages.focus()  # as tab from the list does
        await wait_for(pilot, lambda: messages.highlighted == 3, what="the latest reply highlighted")
        await pilot.press("up")
        assert messages.highlighted_view.body_text == "first answer"  # not "second question"
        await pilot.press("up")
        assert messages.highlighted_view.body_text == "first answer"  # nothing above: it stays
        await pilot.press("down")
        assert messages.highlighted_view.body_text == "second answer"


async def test_the_feedback_dialog_starts_on_the_current_rating_and_names_it_in_words(settings, store, tiny_backend) -> None:  # noqa: ANN001
    from textual.widgets import RadioButton, RadioSet

    conversation = store.create_conversation("ann", "sys")
    asked = store.add_message(conversation.id, "user", "Question")
    reply = store.add_message(conversation.id, "assistant", "Answer", parent_id=asked.id)
    store.rate(reply.id, "ann", -1)
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: len(app.chat.messages.views) == 2)
        app.chat.messages.focus()
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, FeedbackScreen))
        await pilot.pause()
        ratings = app.screen.query_one(RadioSet)
        assert ratings.pressed_index == 1
        assert str(app.screen.query_one("#rating-down", RadioButton).label) == "▼ Not helpful  ✓ chosen"
        assert str(app.screen.query_one("#rating-up", RadioButton).label) == "▲ Helpful"
        await pilot.press("enter")  # on the keyboard's place: the current rating, kept
        assert ratings.pressed_index == 1
        await pilot.press("up", "enter")
        await wait_for(pilot, lambda: str(app.screen.query_one("#rating-up", RadioButton).label) == "▲ Helpful  ✓ chosen")


@pytest.mark.parametrize(("size", "reply_lines"), [((60, 15), 5), ((40, 10), 1)])
async def test_a_small_terminal_keeps_the_replies_and_the_input_visible(settings, store, tiny_backend, size, reply_lines) -> None:  # noqa: ANN001
    """At 60x15 the list narrows and the banner, title and input shrink: at least five lines of replies
    and the input; at 40x10 the list hides and the input is still there."""
    conversation = store.create_conversation("ann", "sys")
    asked = store.add_message(conversation.id, "user", "How do I reset my thermostat?")
    store.add_message(conversation.id, "assistant", "\n\n".join(f"Step {n}: do the thing." for n in range(1, 9)), parent_id=asked.id)
    app = make_app(settings, store, tiny_backend)
    async with app.run_test(size=size) as pilot:
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: len(app.chat.messages.views) == 2)
        await pilot.pause()
        screen = app.screen.region
        composer = app.chat.composer.region
        assert composer.height >= 3 and screen.contains_region(composer)  # the input, whole
        assert app.chat.messages.region.height >= reply_lines
        sidebar = app.chat.sidebar
        if size[0] < 50:
            assert not sidebar.display
        else:
            assert sidebar.region.width <= 22
