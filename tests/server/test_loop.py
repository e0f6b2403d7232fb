"""The whole loop with the team's model server: chat, rate down, correct, approve, retrain; the
promotion loads the new adapter into the server, the open chat's next greedy answer is the curated
one, and a rollback brings the old answer back. Retrain itself stays in-process (QLoRA, the gate)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from assistant.engine.remote import ServerAPI, api_key
from assistant.store import Store
from assistant.train.retrain import Options, retrain
from assistant.tui.loader import backend_loader
from tests.server.conftest import ModelServer, served_settings
from tests.train.conftest import ANSWERS, PROBE, TRAIN_CONFIG, curate
from tests.tui.helpers import make_app, send, wait_for, wait_loaded, wait_reply_done


def loaded_on(server: ModelServer, settings) -> set[str]:  # noqa: ANN001
    api = ServerAPI(server.url, key=api_key(settings))
    try:
        return {m.id for m in api.models() if m.parent is not None}
    finally:
        api.close()


async def test_feedback_retrain_promotion_into_the_server_and_rollback_reach_the_open_chat(
    model_server: ModelServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "config.toml").write_text(TRAIN_CONFIG.format(model=model_server.model_dir), encoding="utf-8")
    settings = served_settings(data_dir, model_server, max_new_tokens=32)
    store = Store.open(settings.db_path)
    app = make_app(settings, store, backend_loader(settings))
    app.SWAP_POLL_S = 0.2
    async with app.run_test(size=(110, 40)) as pilot:
        await wait_loaded(pilot)
        await send(pilot, PROBE)
        await wait_reply_done(pilot)
        first = store.thread(app.chat.conversation.id)[-1]
        assert first.content != ANSWERS["reset"] and first.adapter is None and first.finish_reason != "error"
        await pilot.press("escape", "minus")
        assert store.feedback_for(first.id, user="ann")[0].rating == -1
        store.rate(first.id, "ann", -1, correction=ANSWERS["reset"])
        store.approve([first.id], "ann")
        curate(store)

        result = await asyncio.to_thread(lambda: retrain(settings, Store.open(settings.db_path), Options()))
        assert result.status == "promoted" and result.version == "v0001", result.message
        assert "v0001" in loaded_on(model_server, settings)  # loaded and proven before it became active
        await wait_for(pilot, lambda: app.backend.identity.adapter == "v0001", 20, "the swap to v0001")

        await send(pilot, PROBE)
        await wait_reply_done(pilot)
        second = store.thread(app.chat.conversation.id)[-1]
        assert second.content == ANSWERS["reset"] and second.adapter == "v0001"

        store.rollback(actor="ann")
        await wait_for(pilot, lambda: app.backend.identity.adapter is None, 20, "the rollback")
        await send(pilot, PROBE)
        await wait_reply_done(pilot)
        third = store.thread(app.chat.conversation.id)[-1]
        assert third.adapter is None and third.content == first.content
