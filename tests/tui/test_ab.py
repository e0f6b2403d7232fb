"""Blind A/B in the chat, driven with Pilot on a real store: one question answered by the version
answering and by the newest candidate, side by side under neutral labels, picked with one key.

The main flow runs the real tiny model with the two real trained adapters (each taught a different
answer, so the screen can be checked against who wrote what). The UI's edge cases (hostile text,
a side stopped, a candidate that cannot load, promotion by picks) use a small scripted backend: they
test the screen's side; the engine's two versions on one base are tested in tests/engine/test_ab_engine.py.
"""

from __future__ import annotations

import html
import random
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from textual.widgets import TextArea

from assistant.engine.base import ChatMessage, GenerationParams, ModelIdentity, Reply
from assistant.errors import ModelError
from assistant.store import Store
from assistant.tui.screens.feedback import FeedbackScreen
from assistant.tui.widgets.ab import ABPair
from tests.conftest import HOSTILE_REPLY, THERMOSTAT, load_backend
from tests.tui.helpers import make_app, notifications, send, wait_for, wait_loaded, wait_reply_done

SIZE = (120, 40)


def install(store: Store, settings, source: Path, version: str, status: str) -> None:  # noqa: ANN001
    """A published version copied into the chat's data dir and registered: active or candidate."""
    shutil.copytree(source, settings.layout.version(version))
    store.register_adapter(version, path=f"adapters/{version}", actor="ann", base_model="tiny")
    if status == "active":
        store.promote(version, actor="ann", reason="test")


class Scripted:
    """A backend that answers with a fixed text per version ("" answers: the version serving).

    `alternate` works as the engines do: `load_alternate` loads a second version (or refuses it when
    `refuse` names it), and a reply asked with `alternate=True` is that version's. `slow`: versions
    whose replies come a piece every 50 ms until cancelled or done (long enough to stop one).
    """

    def __init__(self, answers: dict[str | None, str], serving: str | None = None, refuse: dict[str, str] | None = None,
                 slow: Sequence[str | None] = ()) -> None:  # fmt: skip
        self.answers = answers
        self._identity = ModelIdentity("tiny", serving, "cpu", "fp32")
        self._alternate: str | None = None
        self.refuse = refuse or {}
        self.slow = set(slow)
        self.loads: list[str | None] = []
        self.swaps: list[str | None] = []

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    @property
    def alternate(self) -> ModelIdentity | None:
        return replace(self._identity, adapter=self._alternate) if self._alternate else None

    def load_alternate(self, version: str | None, path: Path | None) -> ModelIdentity | None:
        self.loads.append(version)
        if version in self.refuse:
            refusal = self.refuse[version]
            if isinstance(refusal, Exception):
                del self.refuse[version]  # once: the server is back the next time
                raise refusal
            raise ModelError(refusal)
        self._alternate = version
        return self.alternate

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams, alternate: bool = False) -> Reply:
        version = self._alternate if alternate else self._identity.adapter
        identity = replace(self._identity, adapter=version)
        text = self.answers[version]
        cancel = threading.Event()
        words = text.split(" ")

        def chunks():  # noqa: ANN202
            for i, word in enumerate(words):
                if version in self.slow:
                    time.sleep(0.05)
                    if cancel.is_set():
                        return
                yield (word if i == 0 else " " + word), 1

        return Reply(chunks(), cancel, params.max_new_tokens, identity=identity)

    def swap_adapter(self, version: str | None, path: Path | None) -> ModelIdentity:
        self.swaps.append(version)
        if self._alternate == version:
            self._alternate = None
        self._identity = replace(self._identity, adapter=version)
        return self._identity

    def check_prompt(self, messages: Sequence[ChatMessage], params: GenerationParams) -> None:
        return None

    def health(self) -> str | None:
        return None

    def close(self) -> None:
        return None


def fake_version(store: Store, settings, version: str, status: str) -> None:  # noqa: ANN001
    """A version with tiny valid files (the scripted backend does not read them)."""
    from safetensors.torch import save_file
    import torch

    from assistant.adapters.registry import publish

    source = settings.data_dir / "peft-out" / version
    source.mkdir(parents=True)
    save_file({"lora_A.weight": torch.zeros(2, 2)}, source / "adapter_model.safetensors")
    (source / "adapter_config.json").write_text("{}", encoding="utf-8")
    publish(source, settings.data_dir, version, {})
    store.register_adapter(version, path=f"adapters/{version}", actor="ann", base_model="tiny")
    if status == "active":
        store.promote(version, actor="ann", reason="test")


ANSWERS = {"v0001": "Hold the dial for ten seconds.", "v0002": "Unplug it and call us."}


@pytest.fixture
def two_versions(settings, store):  # noqa: ANN001, ANN201
    fake_version(store, settings, "v0001", "active")
    fake_version(store, settings, "v0002", "candidate")
    return store


def ab_app(settings, store, backend, seed: int = 0, **changes):  # noqa: ANN001, ANN003, ANN201
    app = make_app(settings.replace(**changes) if changes else settings, store, backend)
    app.ab_random = random.Random(seed)
    app.SWAP_POLL_S = 0.05
    return app


async def wait_serving(pilot, version: str | None) -> None:  # noqa: ANN001
    await wait_loaded(pilot)
    await wait_for(pilot, lambda: pilot.app.backend.identity.adapter == version, what=f"{version} to serve")


async def wait_pick(pilot) -> ABPair:  # noqa: ANN001
    """Until both answers are written and the pair asks for the pick."""
    chat = pilot.app.chat
    await wait_for(pilot, lambda: chat.pair is not None and len(chat.pair.ended) == 2 and chat.pair.widget is not None
                   and chat.pair.widget.has_class("-ready"), what="both answers")  # fmt: skip
    await pilot.pause()
    return chat.pair.widget


def candidate_key(pilot) -> str:  # noqa: ANN001
    return "a" if pilot.app.chat.pair.alternate_side == 0 else "b"


async def pick(pilot, key: str) -> None:  # noqa: ANN001
    await pilot.press(key)
    await wait_for(pilot, lambda: pilot.app.chat.pair is None, what="the pick to be stored")
    await pilot.pause()


def screen_text(app) -> str:  # noqa: ANN001
    """What the screen shows, as text (the screenshot's SVG unescaped, its non-breaking spaces as spaces)."""
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


def pair_text(widget: ABPair) -> tuple[str, str]:
    return widget.sides[0].body_text, widget.sides[1].body_text


# -- the whole flow, on the real tiny model with two real versions ------------------------------------


async def test_b_answers_a_reply_again_twice_blind_and_the_pick_continues_the_conversation(
    settings, store, tiny_model_dir: Path, adapters: dict[str, Path]  # noqa: ANN001
) -> None:
    install(store, settings, adapters["v0001"], "v0001", "active")
    install(store, settings, adapters["v0002"], "v0002", "candidate")
    expected = {}
    for version in ("v0001", "v0002"):
        alone = load_backend(tiny_model_dir, adapter=str(adapters[version]))
        reply = alone.stream([ChatMessage("system", settings.system_prompt), ChatMessage("user", THERMOSTAT)],
                             GenerationParams(max_new_tokens=48, temperature=0.0))  # fmt: skip
        expected[version] = "".join(reply)
    assert expected["v0001"] != expected["v0002"]

    backend = load_backend(tiny_model_dir)
    app = ab_app(settings, store, backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_serving(pilot, "v0001")
        await send(pilot, THERMOSTAT)
        await wait_reply_done(pilot)
        assert app.chat.pair is None  # ab_share is 0: one answer
        first = store.thread(store.conversations()[0].id)[-1]

        await pilot.press("escape", "b")  # the latest reply, answered again by both
        widget = await wait_pick(pilot)
        pair = app.chat.pair
        candidate_side = pair.alternate_side
        texts = pair_text(widget)
        assert texts[candidate_side] == expected["v0002"]
        assert texts[1 - candidate_side] == expected["v0001"]
        # Blind: the pair shows neutral labels, never the versions.
        shown = screen_text(app)
        assert "Answer A" in shown and "Answer B" in shown and "Which answer is better?" in shown
        assert "v0002" not in shown.split("Answer A", 1)[1].split("Which answer", 1)[0]
        # No second copy of the model: the candidate is an adapter beside the active one on the same base.
        assert sorted(backend.model.peft_config) == ["v0001", "v0002"]

        await pick(pilot, candidate_key(pilot))
        [judgement] = store.judgements()
        # Reopened (another window, a restart), the conversation goes on from the answer picked.
        assert store.thread(store.conversations()[0].id)[-1].id == app.chat.thread[-1].id
        assert judgement.outcome == ("left" if candidate_side == 0 else "right") and judgement.user == "ann"
        versions = (judgement.left_version, judgement.right_version)
        assert versions[candidate_side] == "v0002" and versions[1 - candidate_side] == "v0001"
        # The picked answer continues the conversation; the other two stay its siblings.
        picked = app.chat.thread[-1]
        assert picked.adapter == "v0002" and picked.content == expected["v0002"]
        assert {m.id for m in store.siblings(picked.id)} >= {first.id, judgement.left_id, judgement.right_id}
        assert [v.message.id for v in app.chat.messages.views if v.role == "assistant"] == [picked.id]
        assert any("v0002 (candidate)" in n for n in notifications(app))  # revealed after the pick

        await send(pilot, "Thanks, and the warranty?")
        await wait_reply_done(pilot)
        assert store.thread(store.conversations()[0].id)[-2].parent_id == picked.id


# -- the screen's side, with a scripted backend ------------------------------------------------------


async def test_ab_share_answers_questions_twice_and_a_tie_goes_on_with_the_version_answering(
    settings, two_versions  # noqa: ANN001
) -> None:
    backend = Scripted(ANSWERS)
    app = ab_app(settings, two_versions, backend, ab_share=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_serving(pilot, "v0001")
        await send(pilot, "My thermostat is off")
        widget = await wait_pick(pilot)
        assert sorted(pair_text(widget)) == sorted(ANSWERS.values())
        assert backend.loads == ["v0002"]
        await pick(pilot, "t")
        [judgement] = two_versions.judgements()
        assert judgement.outcome == "tie"
        assert app.chat.thread[-1].adapter == "v0001"

        # Sending while a pick waits is refused, the text kept; Esc skips the pick.
        await send(pilot, "Second question")
        await wait_pick(pilot)
        assert backend.loads == ["v0002"]  # loaded once, kept beside the one serving
        app.chat.composer.focus()
        app.chat.composer.insert("Third question")
        await pilot.press("enter")
        await pilot.pause()
        assert app.chat.composer.text == "Third question"
        assert any("Pick the better answer first" in n for n in notifications(app))
        await pilot.press("escape")  # from the input: to the pair
        assert app.focused is app.chat.pair.widget and app.chat.pair is not None
        await pilot.press("escape")  # on the pair: no pick
        await wait_for(pilot, lambda: app.chat.pair is None, what="the skip")
        assert len(two_versions.judgements()) == 1  # skipped: no judgement
        assert app.chat.thread[-1].adapter == "v0001"


async def test_both_bad_opens_the_feedback_dialog_for_a_correction(settings, two_versions) -> None:  # noqa: ANN001
    app = ab_app(settings, two_versions, Scripted(ANSWERS), ab_share=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_serving(pilot, "v0001")
        await send(pilot, "My thermostat is off")
        await wait_pick(pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, FeedbackScreen), what="the feedback dialog")
        app.screen.query_one("#feedback-correction", TextArea).insert("Press and hold reset for 5 s.")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is app.chat, what="the dialog to close")
        [judgement] = two_versions.judgements()
        assert judgement.outcome == "both_bad"
        continued = app.chat.thread[-1]
        assert continued.adapter == "v0001"
        feedback = two_versions.current_ratings([continued.id], "ann")[continued.id]
        assert feedback.rating == -1 and feedback.correction == "Press and hold reset for 5 s."


@pytest.mark.parametrize("winner", ["candidate", "active"])
async def test_picks_promote_a_candidate_that_wins_and_reject_one_that_loses(
    settings, two_versions, winner: str  # noqa: ANN001
) -> None:
    backend = Scripted(ANSWERS)
    app = ab_app(settings, two_versions, backend, seed=3, ab_share=1.0, promote_on_ab=True, ab_min_judgements=5)
    async with app.run_test(size=SIZE) as pilot:
        await wait_serving(pilot, "v0001")
        for turn in range(5):
            await send(pilot, f"Question {turn}")
            await wait_pick(pilot)
            key = candidate_key(pilot)
            await pick(pilot, key if winner == "candidate" else {"a": "b", "b": "a"}[key])
        status = {r.version: r.status for r in two_versions.adapters()}
        if winner == "candidate":
            assert status == {"v0001": "retired", "v0002": "active"}
            event = two_versions.adapter_events("v0002")[-1]
            assert (event.action, event.actor) == ("promote", "ann") and "won the blind A/B" in event.reason
            await wait_for(pilot, lambda: backend.identity.adapter == "v0002", what="the chat to swap")
            assert any("v0002 promoted" in n for n in notifications(app))
        else:
            assert status == {"v0001": "active", "v0002": "rejected"}
            assert any("v0002 rejected" in n for n in notifications(app))
        # No candidate any more: the next question gets one answer, and `b` says why not.
        await send(pilot, "One more")
        await wait_reply_done(pilot)
        assert app.chat.pair is None
        await pilot.press("escape", "b")
        await pilot.pause()
        assert any("No candidate version" in n for n in notifications(app))


async def test_hostile_text_in_either_answer_stays_text(settings, two_versions) -> None:  # noqa: ANN001
    answers = {"v0001": HOSTILE_REPLY, "v0002": "Plain [red]markup[/red] \x1b[2J and \x07 bells " + HOSTILE_REPLY}
    app = ab_app(settings, two_versions, Scripted(answers), ab_share=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_serving(pilot, "v0001")
        await send(pilot, "show me something")
        widget = await wait_pick(pilot)
        for side in widget.sides:
            assert "\x1b" not in side.body_text and "\x07" not in side.body_text
            assert "[@click=app.quit]x[/]" in side.body_text
        shown = screen_text(app)
        assert "\x1b" not in shown and "\x07" not in shown
        assert "@click=app.quit" in shown and "[red]markup[/red]" in shown  # shown literally
        await pilot.click(ABPair, offset=(10, 2))
        await pick(pilot, "a")
        assert app.is_running and app.title == "assistant"
        stored = two_versions.judgements()[0]
        assert two_versions.message(stored.left_id).content in answers.values()  # stored as written


async def test_a_narrow_terminal_stacks_the_answers(settings, two_versions) -> None:  # noqa: ANN001
    for size, stacked in (((120, 40), False), ((48, 40), True)):
        app = ab_app(settings, two_versions, Scripted(ANSWERS), ab_share=1.0)
        async with app.run_test(size=size) as pilot:
            await wait_serving(pilot, "v0001")
            await send(pilot, "My thermostat is off")
            widget = await wait_pick(pilot)
            a, b = (side.region for side in widget.sides)
            if stacked:
                assert b.y > a.y and b.x == a.x, (a, b)
            else:
                assert b.y == a.y and b.x > a.x + a.width // 2, (a, b)
            await pick(pilot, "b")
            assert two_versions.judgements()[-1].outcome == "right"


async def test_stopping_one_answer_keeps_it_stopped_and_the_other_is_still_written(
    settings, two_versions  # noqa: ANN001
) -> None:
    answers = {"v0001": " ".join(["word"] * 400), "v0002": "Unplug it and call us."}
    app = ab_app(settings, two_versions, Scripted(answers, slow=["v0001"]), seed=1, ab_share=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_serving(pilot, "v0001")
        await send(pilot, "My thermostat is off")
        chat = app.chat
        await wait_for(pilot, lambda: chat.active is not None and chat.active.reply is not None
                       and chat.active.reply.identity.adapter == "v0001" and len(chat.active.reply.text) > 10,
                       what="the active version's answer to stream")  # fmt: skip
        stopped_side = chat.pair.side_of(chat.active)
        await pilot.press("escape")
        widget = await wait_pick(pilot)
        stopped = chat.pair.ended[stopped_side]
        other = chat.pair.ended[1 - stopped_side]
        assert stopped.finish_reason == "cancelled" and 0 < len(stopped.content) < len(answers["v0001"])
        assert other.finish_reason == "stop" and other.content == answers["v0002"]
        assert "stopped" in str(widget.sides[stopped_side]._header.render())
        await pick(pilot, "ab"[1 - stopped_side])
        assert two_versions.judgements()[0].outcome == ("left", "right")[1 - stopped_side]


async def test_a_candidate_that_cannot_be_loaded_gets_one_answer_and_is_not_tried_again(
    settings, two_versions  # noqa: ANN001
) -> None:
    backend = Scripted(ANSWERS, refuse={"v0002": "adapter v0002 does not fit the model"})
    app = ab_app(settings, two_versions, backend, ab_share=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_serving(pilot, "v0001")
        await send(pilot, "My thermostat is off")
        await wait_reply_done(pilot)
        assert app.chat.pair is None and not app.chat.query(ABPair)
        thread = two_versions.thread(two_versions.conversations()[0].id)
        assert [m.role for m in thread] == ["user", "assistant"] and thread[-1].adapter == "v0001"
        assert any("Could not compare with v0002" in n for n in notifications(app, "warning"))
        await send(pilot, "And now?")
        await wait_reply_done(pilot)
        assert backend.loads == ["v0002"]  # not tried again
        await pilot.press("escape", "b")
        await pilot.pause()
        assert any("v0002 could not be loaded" in n for n in notifications(app))


async def test_typing_ahead_never_picks_and_a_promotion_waits_for_the_pair(settings, two_versions) -> None:  # noqa: ANN001
    answers = {"v0001": " ".join(["word"] * 30), "v0002": "Unplug it and call us."}
    backend = Scripted(answers, slow=["v0001", "v0002"])
    app = ab_app(settings, two_versions, backend, ab_share=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_serving(pilot, "v0001")
        await send(pilot, "My thermostat is off")
        await wait_for(pilot, lambda: app.chat.active is not None and app.chat.active.reply is not None, what="writing")
        # Meanwhile the candidate is promoted elsewhere: the chat keeps both versions until both are written.
        two_versions.promote("v0002", actor="bob", reason="by hand")
        await pilot.press(*"thanks")  # typed ahead, into the input
        await pilot.pause(0.3)
        assert backend.swaps == ["v0001"]
        await wait_for(pilot, lambda: app.chat.pair is not None and len(app.chat.pair.ended) == 2, what="both answers")
        await pilot.pause()
        assert app.chat.composer.text == "thanks" and app.focused is app.chat.composer
        assert {m.adapter for m in app.chat.pair.ended.values()} == {"v0001", "v0002"}
        assert two_versions.judgements() == []  # nothing picked by the typing
        await wait_for(pilot, lambda: backend.swaps == ["v0001", "v0002"], what="the promotion to reach the chat")


async def test_an_unreachable_server_is_not_a_refusal_the_next_question_compares(settings, two_versions) -> None:  # noqa: ANN001
    from assistant.errors import ServerError

    backend = Scripted(ANSWERS, refuse={"v0002": ServerError("cannot reach the model server at 127.0.0.1:8000")})
    app = ab_app(settings, two_versions, backend, ab_share=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_serving(pilot, "v0001")
        await send(pilot, "My thermostat is off")
        await wait_reply_done(pilot)
        assert app.chat.pair is None and app.chat.thread[-1].adapter == "v0001"
        await send(pilot, "And now?")
        await wait_pick(pilot)
        assert backend.loads == ["v0002", "v0002"]
