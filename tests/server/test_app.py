"""The chat app against a real model server: replies streamed and stored with the version that wrote
them, Esc stopping the server's generation, and a server that dies mid-reply and comes back."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from assistant.store import Store
from assistant.tui.loader import backend_loader
from tests.conftest import TAUGHT, THERMOSTAT
from tests.server.conftest import ModelServer, add_version, served_settings
from tests.tui.helpers import confirm, make_app, models_screen, notifications, send, wait_for, wait_loaded, wait_reply_done

SIZE = (120, 40)
LONG_QUESTION = "Tell me everything."  # the tiny base model runs on until max_new_tokens


def replying(app) -> bool:  # noqa: ANN001
    """A reply is streaming and some of its text has arrived."""
    active = app.chat.active
    return active is not None and active.reply is not None and bool(active.reply.text)


def ask_now(app, text: str) -> None:  # noqa: ANN001
    """Type and send without waiting for the screen to settle: while a fast stream draws, it does not,
    and the pilot's waits would only return once the reply is over."""
    app.chat.composer.focus()
    app.chat.composer.insert(text)
    app.simulate_key("enter")


async def until(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_replies_stream_from_the_server_stored_with_their_version_and_esc_stops_the_server(
    model_server: ModelServer, tmp_path: Path, adapters: dict[str, Path]
) -> None:
    settings = served_settings(tmp_path / "data", model_server, max_new_tokens=3000)
    store = Store.open(settings.db_path)
    add_version(settings, store, "v0001", adapters["v0001"])
    store.promote("v0001", actor="ann")
    app = make_app(settings, store, backend_loader(settings))
    app.SWAP_POLL_S = 0.2
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: app.backend.identity.adapter == "v0001", 20, "the active version")
        status = app.chat.status
        assert status.identity.model == model_server.served_name
        assert f"server 127.0.0.1:{model_server.port}" in str(status.query_one("#status-text").render())

        await send(pilot, THERMOSTAT)
        await wait_reply_done(pilot)
        reply = store.thread(app.chat.conversation.id)[-1]
        assert reply.content == TAUGHT["v0001"] and reply.adapter == "v0001" and reply.finish_reason == "stop"
        assert reply.model == model_server.served_name and reply.token_count > 0 and reply.ttft_ms is not None
        assert app.chat.messages.views[-1].body_text == TAUGHT["v0001"]

        # Back to the base model, whose answer runs long; Esc stops it, and the server stops too.
        store.rollback(actor="ann")
        await wait_for(pilot, lambda: app.backend.identity.adapter is None, 20, "the rollback")
        await pilot.press("ctrl+n")
        ask_now(app, LONG_QUESTION)
        await until(lambda: replying(app), 20, "the reply to start")
        app.simulate_key("escape")
        await wait_reply_done(pilot)
        stopped = store.thread(app.chat.conversation.id)[-1]
        assert stopped.finish_reason == "cancelled" and stopped.adapter is None
        assert 0 < stopped.token_count < 2000
        deadline = time.monotonic() + 5
        while model_server.metric("vllm:num_requests_running") > 0:
            assert time.monotonic() < deadline, "the server kept generating after Esc"
            await pilot.pause(0.05)


async def test_a_server_killed_mid_reply_keeps_the_app_and_the_partial_reply_and_it_goes_on_after_a_restart(
    model_server: ModelServer, tmp_path: Path
) -> None:
    settings = served_settings(tmp_path / "data", model_server, max_new_tokens=4000)
    store = Store.open(settings.db_path)
    app = make_app(settings, store, backend_loader(settings))
    app.SWAP_POLL_S = 0.2
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        for _ in range(5):
            await pilot.press("ctrl+n")  # each try in a fresh conversation: the same long answer
            ask_now(app, LONG_QUESTION)
            await until(lambda: replying(app), 20, "the reply to start")
            if model_server.metric("vllm:num_requests_running") > 0:
                model_server.kill()  # while it generates
                break
            await wait_reply_done(pilot)  # on a busy machine vLLM may send a whole reply at its end: again
        else:
            raise AssertionError("every reply was over before the server could be killed")
        await wait_reply_done(pilot)

        # The partial reply is stored as failed, with the text that had arrived and why it stopped.
        broken = store.thread(app.chat.conversation.id)[-1]
        assert broken.role == "assistant" and broken.finish_reason == "error"
        assert broken.content and "broke off the reply" in broken.error
        assert "failed" in str(app.chat.messages.views[-1].query_one(".message-header").render())
        await wait_for(pilot, lambda: app.chat.status.problem is not None, 10, "the status bar to show the server down")
        assert "cannot reach the model server" in app.chat.status.problem
        assert any("Questions are kept" in n.message for n in app._notifications)

        # The app keeps working: a new conversation, and a question asked while the server is down is kept.
        await pilot.press("ctrl+n")
        await send(pilot, "How do I reset my thermostat?")
        await wait_reply_done(pilot)
        question, failed = store.thread(app.chat.conversation.id)
        assert question.content == "How do I reset my thermostat?"
        assert failed.finish_reason == "error" and failed.content == "" and "cannot reach" in failed.error

        # The server comes back: the status bar sees it, and `r` on the failed reply asks again.
        await asyncio.to_thread(model_server.start)
        await wait_for(pilot, lambda: app.chat.status.problem is None, 20, "the server to be seen again")
        assert any("answers again" in n.message for n in app._notifications)
        # The base model may run on to max_new_tokens: a short limit keeps the retry quick on a busy machine.
        app.settings = dataclasses.replace(app.settings, max_new_tokens=32)
        await pilot.press("escape", "r")
        await wait_reply_done(pilot)
        retried = store.thread(app.chat.conversation.id)[-1]
        assert retried.id != failed.id and retried.parent_id == question.id
        assert retried.finish_reason in {"stop", "length"} and retried.content and retried.error is None
        assert retried.token_count <= 32
        assert [s.id for s in store.siblings(retried.id)] == [failed.id, retried.id]


async def test_f2_does_not_promote_a_version_the_server_refuses_and_the_chat_keeps_its_version(
    model_server: ModelServer, tmp_path: Path, adapters: dict[str, Path], wide_adapter: Path
) -> None:
    settings = served_settings(tmp_path / "data", model_server)
    store = Store.open(settings.db_path)
    add_version(settings, store, "v0001", adapters["v0001"])
    store.promote("v0001", actor="ann")
    add_version(settings, store, "v0002", wide_adapter)  # rank 32: over the server's maximum
    app = make_app(settings, store, backend_loader(settings))
    app.SWAP_POLL_S = 0.2
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: app.backend.identity.adapter == "v0001", 20, "the active version")
        await pilot.press("f2")
        await models_screen(pilot)
        await pilot.press("p")  # v0002, the newest, is highlighted
        await confirm(pilot)
        await wait_for(pilot, lambda: any("v0002 was not promoted" in m for m in notifications(app, "error")), 20,
                       "the refusal")
        refusal = next(m for m in notifications(app, "error") if "v0002 was not promoted" in m)
        assert "LoRA rank 32 is greater than max_lora_rank 16" in refusal
        assert store.active_adapter().version == "v0001"
        await pilot.press("escape")
        await send(pilot, THERMOSTAT)
        await wait_reply_done(pilot)
        reply = store.thread(app.chat.conversation.id)[-1]
        assert reply.adapter == "v0001" and reply.content == TAUGHT["v0001"]


async def test_a_question_too_long_for_the_server_is_refused_before_it_is_sent_and_stays_in_the_input(
    model_server: ModelServer, tmp_path: Path
) -> None:
    from textual.widgets import Static

    settings = served_settings(tmp_path / "data", model_server)
    store = Store.open(settings.db_path)
    too_long = "Here is my whole router log, please read it: " + "zebra quartz 1234 " * 1500
    app = make_app(settings, store, backend_loader(settings))
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        requests = model_server.metric("vllm:request_success_total")
        await send(pilot, too_long)
        notice = app.chat.query_one("#composer-notice", Static)
        await wait_for(pilot, lambda: notice.display, 20, "the refusal")
        said = str(notice.render())
        assert "Not sent" in said and "too long for the model on the server" in said and "at most 4048 fit" in said
        assert app.chat.composer.text == too_long
        assert store.conversations() == []
        assert model_server.metric("vllm:request_success_total") == requests
