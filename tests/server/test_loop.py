"""The whole loop for a team on one model server: two chat apps answer from it; an agent rates a reply
down and corrects it, a curator approves, the owner retrains; the promotion loads the new adapter into
the server and both open chats answer with it without a restart; `assistant models rollback` brings
the old answer back to both. Retrain itself stays in-process (QLoRA, the gate)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from assistant.cli import main
from assistant.engine.remote import ServerAPI, api_key
from assistant.store import Store
from assistant.train.retrain import Options, retrain
from assistant.tui.loader import backend_loader
from tests.server.conftest import KEY_ENV, ModelServer, served_settings
from tests.train.conftest import ANSWERS, PROBE, TRAIN_CONFIG, curate
from tests.tui.helpers import make_app, send, wait_for, wait_loaded, wait_reply_done


def loaded_on(server: ModelServer, settings) -> set[str]:  # noqa: ANN001
    api = ServerAPI(server.url, key=api_key(settings))
    try:
        return {m.id for m in api.models() if m.parent is not None}
    finally:
        api.close()


async def ask(pilot, store: Store, question: str):  # noqa: ANN001, ANN201
    await send(pilot, question)
    await wait_reply_done(pilot)
    return store.thread(pilot.app.chat.conversation.id)[-1]


async def test_two_chats_on_one_server_rate_retrain_swap_and_roll_back_together(
    model_server: ModelServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    config = TRAIN_CONFIG.format(model=model_server.model_dir)
    config += f'server_url = "{model_server.url}"\nserver_api_key_env = "{KEY_ENV}"\n'
    (data_dir / "config.toml").write_text(config, encoding="utf-8")
    ann = served_settings(data_dir, model_server, max_new_tokens=32)
    bob = ann.replace(user="bob")
    ann_store, bob_store = Store.open(ann.db_path), Store.open(bob.db_path)
    first_app = make_app(ann, ann_store, backend_loader(ann))
    second_app = make_app(bob, bob_store, backend_loader(bob))
    for app in (first_app, second_app):
        app.SWAP_POLL_S = 0.2
    async with first_app.run_test(size=(110, 40)) as first, second_app.run_test(size=(110, 40)) as second:
        await wait_loaded(first)
        await wait_loaded(second)
        before = await ask(first, ann_store, PROBE)
        assert before.content != ANSWERS["reset"] and before.adapter is None and before.finish_reason != "error"
        other = await ask(second, bob_store, "Where is my parcel?")
        assert other.content and other.finish_reason != "error"

        # Ann rates her reply down and corrects it; a curator approves; the owner retrains.
        await first.press("escape", "minus")
        assert ann_store.feedback_for(before.id, user="ann")[0].rating == -1
        ann_store.rate(before.id, "ann", -1, correction=ANSWERS["reset"])
        ann_store.approve([before.id], "ann")
        curate(ann_store)
        result = await asyncio.to_thread(lambda: retrain(ann, Store.open(ann.db_path), Options()))
        assert result.status == "promoted" and result.version == "v0001", result.message
        assert "v0001" in loaded_on(model_server, ann)  # loaded and proven before it became active

        # Both open chats follow within their poll, and answer with it.
        await wait_for(first, lambda: first_app.backend.identity.adapter == "v0001", 20, "the first chat's swap")
        await wait_for(second, lambda: second_app.backend.identity.adapter == "v0001", 20, "the second chat's swap")
        for pilot, store in ((first, ann_store), (second, bob_store)):
            await pilot.press("ctrl+n")  # the curated question alone, as it was trained
            after = await ask(pilot, store, PROBE)
            assert after.content == ANSWERS["reset"] and after.adapter == "v0001"

        # The owner rolls back from the command line: both chats return to the base model's answer.
        await asyncio.to_thread(main, ["models", "rollback", "--data-dir", str(data_dir)])
        for pilot, app, store in ((first, first_app, ann_store), (second, second_app, bob_store)):
            await wait_for(pilot, lambda: app.backend.identity.adapter is None, 20, "the rollback")
            await pilot.press("ctrl+n")  # the same context as the first question had
            again = await ask(pilot, store, PROBE)
            assert again.adapter is None and again.content == before.content
