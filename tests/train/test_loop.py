"""The whole loop, as people live it: chat, rate, approve, retrain; the chat that stayed open answers
with the new adapter without a restart; rollback reaches it the same way.

The app serves its model from the worker process, as `assistant chat` does; the retrain runs beside
it on the same data dir (here in a thread of the test), with the real TRL, peft and bitsandbytes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from assistant.store import Store
from assistant.train.retrain import Options, retrain
from assistant.tui.loader import backend_loader
from tests.train.conftest import ANSWERS, PROBE, QUESTIONS, configure, curate
from tests.tui.helpers import make_app, send, wait_for, wait_loaded, wait_reply_done


async def test_chat_feedback_approval_retrain_and_the_open_chat_swaps_without_a_restart(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    settings = configure(tmp_path / "data", tiny_model_dir)
    store = Store.open(settings.db_path)
    app = make_app(settings, store, backend_loader(settings))
    app.SWAP_POLL_S = 0.2
    async with app.run_test(size=(110, 40)) as pilot:
        await wait_loaded(pilot)
        assert app.backend.identity.adapter is None

        # A support agent asks; the base model's answer is useless; they rate it down.
        await send(pilot, PROBE)
        await wait_reply_done(pilot)
        first = store.thread(app.chat.conversation.id)[-1]
        assert first.role == "assistant" and first.content != ANSWERS["reset"] and first.adapter is None
        await pilot.press("escape", "minus")
        assert store.feedback_for(first.id, user="ann")[0].rating == -1

        # Raters proposed the right answers; a curator approves them all.
        store.rate(first.id, "ann", -1, correction=ANSWERS["reset"])
        pending = [item.message.id for item in store.review_queue()]
        assert pending == [first.id]
        store.approve(pending, "ann")
        curate(store)

        # The owner retrains while the chat stays open.
        result = await asyncio.to_thread(lambda: retrain(settings, Store.open(settings.db_path), Options()))
        assert result.status == "promoted" and result.version == "v0001", result.message
        await wait_for(pilot, lambda: app.backend.identity.adapter == "v0001", 30, "the swap to v0001")
        await wait_for(pilot, lambda: app.chat.status.identity.adapter == "v0001", 5, "the status bar")
        assert any("Now answering with v0001" in n.message for n in app._notifications)

        # The same question now gets the curated answer, and the reply records the version.
        await send(pilot, PROBE)
        await wait_reply_done(pilot)
        second = store.thread(app.chat.conversation.id)[-1]
        assert second.content == ANSWERS["reset"]
        assert second.adapter == "v0001"

        # Rollback reaches the open chat the same way: back to the base model.
        store.rollback(actor="ann")
        await wait_for(pilot, lambda: app.backend.identity.adapter is None, 30, "the rollback")
        await send(pilot, PROBE)
        await wait_reply_done(pilot)
        third = store.thread(app.chat.conversation.id)[-1]
        assert third.adapter is None and third.content == first.content


async def test_thumbs_down_alone_change_the_reply_after_retrain_and_the_open_chat_swaps(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """No correction, only thumbs: the reply rated down is not what the swapped-in version answers."""
    settings = configure(tmp_path / "data", tiny_model_dir, preference="auto", max_steps=30)
    store = Store.open(settings.db_path)
    curate(store, questions={"parcel": QUESTIONS["parcel"]})  # other answers approved earlier: the desirable side
    app = make_app(settings, store, backend_loader(settings))
    app.SWAP_POLL_S = 0.2
    async with app.run_test(size=(110, 40)) as pilot:
        await wait_loaded(pilot)
        rated = []
        for _ in range(4):  # asked again and again; the same useless reply, rated down each time
            await pilot.press("ctrl+n")
            await send(pilot, PROBE)
            await wait_reply_done(pilot)
            reply = store.thread(app.chat.conversation.id)[-1]
            await pilot.press("escape", "minus")
            assert store.feedback_for(reply.id, user="ann")[0].rating == -1
            rated.append(reply.content)
        assert len(set(rated)) == 1
        assert [item.message.id for item in store.review_queue() if item.message.content == rated[0]]  # pending, no correction

        result = await asyncio.to_thread(lambda: retrain(settings, Store.open(settings.db_path), Options()))
        assert result.metrics["preference"]["kind"] == "kto", result.message
        assert result.status == "promoted" and result.version == "v0001", result.message
        await wait_for(pilot, lambda: app.backend.identity.adapter == "v0001", 30, "the swap to v0001")

        await pilot.press("ctrl+n")
        await send(pilot, PROBE)
        await wait_reply_done(pilot)
        after = store.thread(app.chat.conversation.id)[-1]
        assert after.adapter == "v0001" and after.content != rated[0]
