"""The chat shows a real model the curated answers closest to each question (`references`), and the
demo model none; `assistant ask` does the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from assistant.chat import run_turn
from assistant.data.builder import BuildPolicy
from assistant.data.snapshot import build_snapshot
from assistant.data.tokens import ChatTokenizer
from assistant.engine.base import ChatMessage, GenerationParams, Reply
from assistant.references import HEADER, References
from assistant.settings import Settings
from assistant.store import Store
from tests.conftest import load_backend
from tests.tui.helpers import make_app, send, wait_loaded, wait_reply_done

APPROVED = "Hold the dial for ten seconds until it blinks blue, then pick your Wi-Fi again."


class Seen:
    """The real tiny model, with the messages each reply was asked with kept."""

    def __init__(self, backend) -> None:  # noqa: ANN001
        self.backend = backend
        self.asked: list[list[ChatMessage]] = []

    def __getattr__(self, name: str):  # noqa: ANN204 - everything else is the real backend's
        return getattr(self.backend, name)

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams, alternate: bool = False) -> Reply:
        self.asked.append(list(messages))
        return self.backend.stream(messages, params)


def _curated(store: Store, settings: Settings, model_dir: Path) -> None:
    conversation = store.create_conversation("ann", settings.system_prompt)
    question = store.add_message(conversation.id, "user", "How do I reset my thermostat after a power cut?")
    reply = store.add_message(conversation.id, "assistant", "no idea", parent_id=question.id)
    store.rate(reply.id, "bob", -1, correction=APPROVED)
    store.approve([reply.id], "cora")
    build_snapshot(store, settings.data_dir, BuildPolicy(eval_fraction=0.0), ChatTokenizer.load(model_dir, "tiny"), user="cora")


async def test_a_real_model_sees_the_closest_curated_answer_and_the_demo_model_none(
    settings: Settings, store: Store, tiny_model_dir: Path
) -> None:
    _curated(store, settings, tiny_model_dir)
    settings = replace(settings, temperature=0.0, max_new_tokens=8)
    for is_demo, shown in ((False, True), (True, False)):
        seen = Seen(load_backend(tiny_model_dir, is_demo=is_demo))
        app = make_app(settings, store, lambda progress, seen=seen: seen)  # type: ignore[arg-type, misc]
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_loaded(pilot)
            await send(pilot, "my thermostat needs a reset, how?")
            await wait_reply_done(pilot)
        (asked,) = seen.asked
        system = asked[0].content
        assert (APPROVED in system and HEADER in system) is shown
        assert asked[-1] == ChatMessage("user", "my thermostat needs a reset, how?")  # the question as typed
        seen.backend.close()


def test_ask_shows_them_too_and_forgets_nothing_it_should_not(settings: Settings, store: Store, tiny_model_dir: Path) -> None:
    _curated(store, settings, tiny_model_dir)
    seen = Seen(load_backend(tiny_model_dir))
    settings = replace(settings, temperature=0.0, max_new_tokens=8)

    run_turn(store, seen, settings, "thermostat reset after a power cut?", references=References(store, settings.data_dir))  # type: ignore[arg-type]
    run_turn(store, seen, replace(settings, references="off"), "thermostat reset?", references=References(store, settings.data_dir))  # type: ignore[arg-type]

    assert APPROVED in seen.asked[0][0].content
    assert all(APPROVED not in m.content for m in seen.asked[1])
    stored = [m for c in store.conversations() for m in store.thread(c.id)]
    assert all(HEADER not in m.content for m in stored)  # what is stored is the conversation, not the prompt
    seen.backend.close()
