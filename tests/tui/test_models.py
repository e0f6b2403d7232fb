"""The adapter versions screen and the chat's hot-swap watcher, driven with Pilot on a real store.

The model is a small fake backend that records the swaps asked of it: this tests the UI's side
(when to swap, what is shown and stored); the engine's swap is tested with real models elsewhere.
"""

from __future__ import annotations

from assistant.adapters.registry import publish

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
from textual.widgets import DataTable, Label, Static

from assistant.engine.base import ChatMessage, GenerationParams, ModelIdentity, Reply
from assistant.errors import ModelError
from assistant.store import AdapterRecord, MetricPoint, ReplyRecord, Store
from assistant.tui.models_app import ModelsApp
from assistant.tui.screens.dialogs import Confirm
from assistant.tui.screens.models import ModelsScreen
from assistant.tui.swap import SwapPolicy, swapped_text
from assistant.tui.widgets.status import StatusBar
from tests.conftest import HOSTILE_REPLY
from tests.tui.helpers import confirm, make_app, models_screen, notifications, send, wait_for, wait_loaded, wait_reply_done

SIZE = (120, 40)
POLL_S = 0.05


class FakeBackend:
    """identity, stream, health, close and swap_adapter, recording every swap; `refuse` maps a version to
    the reason it is refused with. `reply_adapter`: the adapter its replies say produced them."""

    def __init__(self, adapter: str | None = None, refuse: dict[str | None, str] | None = None) -> None:
        self._identity = ModelIdentity("fake-base", adapter, "cpu", "fp32")
        self.refuse = refuse or {}
        self.swaps: list[tuple[str | None, Path | None]] = []
        self.reply_adapter: str | None = None
        self.closed = False

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    @property
    def alternate(self) -> ModelIdentity | None:
        return None  # no blind A/B here (tests/tui/test_ab.py)

    def load_alternate(self, version: str | None, path: Path | None) -> ModelIdentity | None:
        raise ModelError("this fake backend answers with one version")

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams, alternate: bool = False) -> Reply:
        identity = replace(self._identity, adapter=self.reply_adapter or self._identity.adapter)
        chunks = iter([("Restart ", 1), ("the router.", 1)])
        return Reply(chunks, threading.Event(), params.max_new_tokens, identity=identity)

    def swap_adapter(self, version: str | None, path: Path | None) -> ModelIdentity:
        self.swaps.append((version, path))
        if version in self.refuse:
            raise ModelError(self.refuse[version])
        self._identity = replace(self._identity, adapter=version)
        return self._identity

    def check_prompt(self, messages: Sequence[ChatMessage], params: GenerationParams) -> None:
        return None

    def health(self) -> str | None:
        return None

    def close(self) -> None:
        self.closed = True


def register(
    store: Store, version: str, *, eval_loss: float | None = None, report: dict | None = None, **more: object
) -> AdapterRecord:
    """A version with real (tiny) files published in the store's data dir, so it may be promoted."""
    from safetensors.torch import save_file
    import torch

    source = store.path.parent / "peft-out" / version
    source.mkdir(parents=True)
    save_file({"lora_A.weight": torch.zeros(2, 2)}, source / "adapter_model.safetensors")
    (source / "adapter_config.json").write_text("{}", encoding="utf-8")
    publish(source, store.path.parent, version, {})
    return store.register_adapter(
        version,
        path=f"adapters/{version}",
        actor="ann",
        base_model="fake-base",
        **{"metrics": {"eval_loss": eval_loss} if eval_loss is not None else {}, "report": report or {}, **more},
    )


def gate_report(candidate: float, active: float, active_version: str | None, **extra: object) -> dict:
    return {
        "verdict": "promote",
        "reason": "eval loss improved",
        "scores": {
            "candidate": {"eval_loss": candidate, "regression_loss": 1.0},
            "active": {"eval_loss": active, "regression_loss": 1.0, "version": active_version},
            "base": {"eval_loss": 2.5, "regression_loss": 1.1},
        },
        **extra,
    }


def rows(screen: ModelsScreen) -> list[list[str]]:
    table = screen.query_one(DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def detail(screen: ModelsScreen) -> str:
    return str(screen.query_one("#models-detail", Static).render())


def status_adapter(app) -> str | None:  # noqa: ANN001
    identity = app.chat.query_one(StatusBar).identity
    return identity.adapter if identity else None


def chat_app(settings, store, backend: FakeBackend):  # noqa: ANN001, ANN201
    app = make_app(settings, store, backend)
    app.SWAP_POLL_S = POLL_S
    return app


# -- the models screen ---------------------------------------------------------------------------


async def test_the_screen_lists_versions_with_status_loss_verdict_and_ratings(settings, store) -> None:  # noqa: ANN001
    register(store, "v0001", eval_loss=1.456, report={"verdict": "promote", "reason": "first"})
    register(store, "v0002", eval_loss=1.234, report=gate_report(1.234, 1.456, "v0001"))
    store.promote("v0001", actor="ann")
    # Two replies by v0001, one thumbs up, one thumbs down.
    conversation = store.create_conversation("ann", "sys")
    question = store.add_message(conversation.id, "user", "Hi")
    record = ReplyRecord("Hello", "fake-base", "v0001", {}, 10.0, 2, 20.0, "stop")
    for rating in (1, -1):
        answer = store.add_message(conversation.id, "assistant", "Hello", parent_id=question.id, reply=record)
        store.rate(answer.id, "ann", rating)

    app = ModelsApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await models_screen(pilot)
        listed = rows(screen)
        assert [r[:2] for r in listed] == [["v0002", "candidate"], ["v0001", "active"]]
        assert listed[0][3] == "1.2340" and listed[0][4] == "promote" and listed[0][5] == "0" and listed[0][6] == "-"
        assert listed[1][3] == "1.4560" and listed[1][5] == "2" and listed[1][6] == "50%"
        assert "active: v0001" in str(screen.query_one("#models-header", Static).render())

        # The detail pane tells the highlighted version's story; moving the highlight follows.
        text = detail(screen)
        assert text.startswith("v0002  candidate") and "verdict: promote - eval loss improved" in text
        assert "no replies yet" in text
        await pilot.press("down")
        await pilot.pause()
        assert screen.shown == "v0001"
        assert detail(screen).startswith("v0001  active") and "2 replies, 1 👍 1 👎, 50% up" in detail(screen)

        await pilot.press("escape")  # standalone: closing quits
        await pilot.pause()
    assert app.return_code == 0


async def test_an_empty_registry_says_how_versions_come(settings, store) -> None:  # noqa: ANN001
    app = ModelsApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await models_screen(pilot)
        assert rows(screen) == []
        assert "No adapter versions yet" in detail(screen)
        await pilot.press("p", "b")
        await pilot.pause()
        assert "No version to promote." in notifications(app)
        assert "No version is active: nothing to roll back." in notifications(app)
        assert not isinstance(app.screen, Confirm)


async def test_promote_and_rollback_with_keys_after_confirmation(settings, store) -> None:  # noqa: ANN001
    register(store, "v0001", eval_loss=1.5)
    register(store, "v0002", eval_loss=1.2, report=gate_report(1.2, 1.5, "v0001"))
    app = ModelsApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await models_screen(pilot)
        assert screen.current.version == "v0002"

        # "No" changes nothing.
        await pilot.press("p")
        await confirm(pilot, "n")
        assert store.active_adapter() is None

        await pilot.press("down", "p")  # v0001
        await confirm(pilot)
        assert store.active_adapter().version == "v0001"
        await pilot.press("up", "p")  # v0002 replaces it
        await confirm(pilot)
        active = store.active_adapter()
        assert (active.version, active.reason) == ("v0002", "promoted in the chat app")
        assert [r[:2] for r in rows(screen)] == [["v0002", "active"], ["v0001", "retired"]]
        assert screen.current.version == "v0002"  # the highlight stays on the promoted version
        assert "v0002 is active" in notifications(app)
        event = store.adapter_events("v0002")[-1]
        assert (event.actor, event.action, event.previous) == ("ann", "promote", "v0001")

        await pilot.press("p")  # already active: nothing to ask
        await pilot.pause()
        assert "v0002 is already active." in notifications(app)
        assert not isinstance(app.screen, Confirm)

        # Roll back: v0002 rejected, v0001 active again; then to the base model; then nothing to do.
        await pilot.press("b")
        await confirm(pilot)
        assert store.active_adapter().version == "v0001"
        assert [r[:2] for r in rows(screen)] == [["v0002", "rejected"], ["v0001", "active"]]
        assert "Rolled back v0002: v0001 is active" in notifications(app)
        await pilot.press("b")
        await confirm(pilot)
        assert store.active_adapter() is None
        assert "Rolled back v0001: the base model is active" in notifications(app)
        await pilot.press("b")
        await pilot.pause()
        assert "No version is active: nothing to roll back." in notifications(app)

        # A store error (the version was deleted meanwhile in another window) is a notification,
        # before any question.
        store.delete_adapter("v0002", actor="bob")
        await pilot.press("p")
        await pilot.pause()
        assert not isinstance(app.screen, Confirm)
        assert any("v0002 was not promoted" in m and "deleted" in m for m in notifications(app, "error"))
        assert store.active_adapter() is None

        await pilot.press("r")
        await pilot.pause()
        assert [r[0] for r in rows(screen)] == ["v0001"]


async def test_f2_promotes_with_the_checks_of_the_command(settings, store) -> None:  # noqa: ANN001
    """A version the gate rejected is promoted only after a loud warning; weights a chat would refuse
    (NaN) are refused here too, in the worker, and nothing changes."""
    import json

    from safetensors.numpy import save_file

    from assistant.adapters import registry

    register(store, "v0001", report={"verdict": "reject", "reason": "eval loss rose"})
    broken = register(store, "v0002")
    path = store.path.parent / broken.path
    for file in path.iterdir():
        file.chmod(0o600)
    save_file({"lora_A.weight": np.full((2, 2), np.nan, dtype=np.float32)}, str(path / registry.WEIGHTS))
    meta = json.loads((path / registry.META).read_text(encoding="utf-8"))
    (path / registry.META).write_text(json.dumps({**meta, "files": registry.checksums(path)}), encoding="utf-8")
    app = ModelsApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await models_screen(pilot)
        assert screen.current.version == "v0002"

        await pilot.press("p")
        await confirm(pilot)
        await wait_for(pilot, lambda: any("v0002 was not promoted" in m for m in notifications(app, "error")),
                       what="the refusal")
        assert any("NaN" in m for m in notifications(app, "error"))
        assert store.active_adapter() is None

        await pilot.press("down", "p")  # v0001, rejected by the gate
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the confirmation")
        assert "WARNING: the eval gate REJECTED v0001 (eval loss rose)" in app.screen.question
        await confirm(pilot)
        await wait_for(pilot, lambda: store.active_adapter() is not None, what="the promotion")
        assert store.active_adapter().version == "v0001"


async def test_hostile_report_text_is_shown_literally(settings, store) -> None:  # noqa: ANN001
    report = gate_report(
        1.2, 1.5, "v0001",
        reason="[bold]gate[/bold] said so",
        probes=[{"prompt": "show me [red]something[/red]", "answers": {"candidate": HOSTILE_REPLY, "base": "ok"}}],
    )
    report["verdict"] = "[blink]promote[/blink]"
    register(store, "v0001", report=report)
    app = ModelsApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await models_screen(pilot)
        text = detail(screen)
        assert "[@click=app.quit]x[/] [bold]boom[/bold]" in text
        assert "show me [red]something[/red]" in text and "[bold]gate[/bold] said so" in text
        assert "\x1b" not in text and "\x07" not in text
        assert rows(screen)[0][4].startswith("[blink]promote[")
        # The confirmation quotes the gate literally too, and the app is still running.
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm))
        shown = str(app.screen.query_one(".dialog-title", Label).render())
        assert "Eval gate: [blink]promote" in shown and "[bold]gate[/bold] said so" in shown
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and app.return_code is None


async def test_the_detail_shows_the_preference_stage_its_scores_and_a_plot_per_stage(settings, store) -> None:  # noqa: ANN001
    store.start_run("r1", user="ann", pid=1, base_model="fake-base", config={})
    store.record_metrics(
        "r1",
        [MetricPoint("train", s, s / 8, 2.0 - s / 10, 0.5, 1e-3) for s in range(1, 9)]
        + [MetricPoint("train", s, s / 16, 0.7 - s / 40, 0.5, 1e-5, "preference") for s in range(1, 17)],
    )
    preference = {"pairs": 0, "pair_accuracy": None, "pair_margin": None, "desirable": 5, "undesirable": 2,
                  "desirable_logp": -0.5, "undesirable_logp": -2.75}
    report = gate_report(1.2, 1.5, "v0001", preference_rows="training", preference_examples={"pairs": 0, "kto": 7})
    report["scores"]["candidate"]["preference"] = preference
    report["scores"]["active"]["preference"] = dict(preference, desirable_logp=-0.75, undesirable_logp=-2.0)
    report["scores"]["base"]["preference"] = None  # not scored: nothing shown for it
    metrics = {"eval_loss": 1.2, "steps": 8, "train_loss": 1.3,
               "preference": {"kind": "kto", "steps": 16, "total_steps": 16, "train_loss": 0.2875,
                              "rows": {"pairs": 0, "desirable": 5, "undesirable": 2, "stand_ins": 0}}}
    register(store, "v0002", report=report, run_id="r1", metrics=metrics)
    register(store, "v0001", eval_loss=1.5, report=gate_report(1.5, 2.0, None))

    app = ModelsApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await models_screen(pilot)
        lines = detail(screen).splitlines()
        assert "preference stage KTO: 16 steps, train loss 0.2875 (5 desirable, 2 undesirable rows)" in lines
        candidate = next(i for i, line in enumerate(lines) if line.startswith("  candidate"))
        assert lines[candidate + 1] == (
            "    preference  KTO log-prob desirable -0.5000 (5 rows), undesirable -2.7500 (2 rows), gap +2.2500"
        )
        assert lines[candidate + 2].startswith("  active (v0001)")
        assert lines[candidate + 3] == (
            "    preference  KTO log-prob desirable -0.7500 (5 rows), undesirable -2.0000 (2 rows), gap +1.2500"
        )
        assert lines[candidate + 4].startswith("  base") and lines[candidate + 5] == "  preference rows scored: training (7 KTO rows)"
        assert "pair accuracy" not in detail(screen)  # no pairs scored
        assert lines.index("SFT loss") < lines.index("Preference loss (KTO)") and "Loss" not in lines
        assert "Golden-set evals" not in lines  # none run yet

        await pilot.press("down")  # a version from before preference training reads as it did
        await pilot.pause()
        text = detail(screen)
        assert text.startswith("v0001") and "preference" not in text.lower() and "SFT loss" not in text


# -- the chat follows the active version -----------------------------------------------------------


async def test_f2_opens_the_screen_and_a_promotion_reaches_the_chat(settings, store) -> None:  # noqa: ANN001
    register(store, "v0001", eval_loss=1.456)
    register(store, "v0002", eval_loss=1.234, report=gate_report(1.234, 1.456, "v0001"))
    store.promote("v0001", actor="ann")
    backend = FakeBackend()
    app = chat_app(settings, store, backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        # Right after loading, the chat swaps to the active version.
        await wait_for(pilot, lambda: status_adapter(app) == "v0001", what="the swap to v0001")
        assert backend.swaps == [("v0001", settings.layout.version("v0001"))]
        assert "Now answering with v0001" in notifications(app)

        await pilot.press("f2")
        await models_screen(pilot)
        await pilot.press("p")  # v0002, the newest, is highlighted
        await confirm(pilot)
        await wait_for(pilot, lambda: backend.identity.adapter == "v0002", what="the swap to v0002")
        await wait_for(pilot, lambda: status_adapter(app) == "v0002", what="the status bar")
        assert backend.swaps[-1] == ("v0002", settings.layout.version("v0002"))
        assert "Now answering with v0002 (eval loss 1.234, was 1.456)" in notifications(app)

        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.chat, what="back to the chat")

        # A rollback elsewhere (the CLI, another window) reaches the chat the same way.
        store.rollback(actor="bob")
        await wait_for(pilot, lambda: status_adapter(app) == "v0001", what="the rollback")
        store.rollback(actor="bob")
        await wait_for(pilot, lambda: status_adapter(app) is None, what="the base model")
        assert backend.swaps[-1] == (None, None)
        assert backend.swaps.count(("v0001", settings.layout.version("v0001"))) == 2
        assert any(m.startswith("Now answering with the base model") for m in notifications(app))
        assert notifications(app, "error") == []


async def test_a_refused_version_is_reported_kept_out_and_not_retried(settings, store) -> None:  # noqa: ANN001
    register(store, "v0001")
    register(store, "v0002")
    store.promote("v0001", actor="ann")
    backend = FakeBackend(refuse={"v0002": "adapter v0002: adapter_model.safetensors does not match its checksum"})
    app = chat_app(settings, store, backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await wait_for(pilot, lambda: status_adapter(app) == "v0001", what="the swap to v0001")

        store.promote("v0002", actor="bob")
        await wait_for(pilot, lambda: notifications(app, "error"), what="the refusal")
        assert notifications(app, "error") == [
            "Still answering with v0001: v0002 was refused: "
            "adapter v0002: adapter_model.safetensors does not match its checksum"
        ]
        assert backend.identity.adapter == "v0001" and status_adapter(app) == "v0001"

        # Many polls later it was not tried again, and the chat still answers (with v0001).
        await pilot.pause(POLL_S * 10)
        assert [v for v, _ in backend.swaps] == ["v0001", "v0002"]
        assert len(notifications(app, "error")) == 1
        await send(pilot, "My router is down")
        await wait_reply_done(pilot)
        answer = store.thread(store.conversations()[0].id)[-1]
        assert (answer.content, answer.adapter) == ("Restart the router.", "v0001")

        # Once the active version changes again (rolled back, then promoted anew) it is tried again.
        store.rollback(actor="bob")
        await wait_for(pilot, lambda: app.swaps.refused is None, what="the chat to see the rollback")
        assert [v for v, _ in backend.swaps] == ["v0001", "v0002"]  # v0001 is what it serves already
        store.promote("v0002", actor="bob")
        await wait_for(pilot, lambda: len(notifications(app, "error")) == 2, what="the second refusal")
        assert [v for v, _ in backend.swaps] == ["v0001", "v0002", "v0002"]


async def test_a_pinned_adapter_is_not_swapped(settings, store, tmp_path) -> None:  # noqa: ANN001
    register(store, "v0001")
    store.promote("v0001", actor="ann")
    backend = FakeBackend(adapter="my-adapter")
    app = chat_app(settings.replace(adapter=str(tmp_path / "my-adapter")), store, backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await pilot.pause(POLL_S * 6)
        assert backend.swaps == []
        assert status_adapter(app) == "my-adapter"


async def test_replies_record_the_version_that_wrote_them(settings, store) -> None:  # noqa: ANN001
    backend = FakeBackend(adapter="v0001")
    backend.reply_adapter = "v0002"  # swapped in between asking and the reply's start
    app = chat_app(settings.replace(adapter="pinned"), store, backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_loaded(pilot)
        await send(pilot, "Which version are you?")
        await wait_reply_done(pilot)
        answer = store.thread(store.conversations()[0].id)[-1]
        assert (answer.model, answer.adapter) == ("fake-base", "v0002")


# -- the swap policy and its texts -----------------------------------------------------------------


def test_the_policy_swaps_once_at_a_time_and_retries_only_after_a_change() -> None:
    policy = SwapPolicy()
    assert not policy.wanted(None, None) and not policy.wanted("v1", "v1")
    assert policy.wanted("v2", "v1")
    policy.started()
    assert not policy.wanted("v2", "v1") and not policy.wanted("v3", "v1")  # one swap at a time
    policy.failed("v2")
    assert not policy.wanted("v2", "v1")
    assert not policy.wanted("v1", "v1")  # the active version changed (back to what is served)
    assert policy.wanted("v2", "v1")  # so v2 is tried again
    policy.started()
    policy.succeeded()
    assert policy.wanted(None, "v2")  # back to the base model
    policy.started()
    policy.failed(None)
    assert not policy.wanted(None, "v2")


def test_the_swap_notice_compares_losses_on_the_same_eval_set(store) -> None:  # noqa: ANN001
    record = register(store, "v0002", report=gate_report(1.2344, 1.4561, "v0001"))
    assert swapped_text(record, "v0001") == "Now answering with v0002 (eval loss 1.234, was 1.456)"
    # After a rollback the version served before is not the one the report scored against.
    assert swapped_text(record, "v0003") == "Now answering with v0002 (eval loss 1.234)"
    assert swapped_text(record, None) == "Now answering with v0002 (eval loss 1.234, was 2.500)"
    assert swapped_text(register(store, "v0003"), "v0002") == "Now answering with v0003"
    assert swapped_text(None, "v0002") == "Now answering with the base model (no adapter is active; was v0002)"


async def test_the_detail_shows_the_golden_set_evals_of_the_version(settings, store) -> None:  # noqa: ANN001
    register(store, "v0001", eval_loss=1.5, report=gate_report(1.5, 2.0, None))
    scores = [{"line": 1, "question": "Reset?", "rouge_l": 0.75, "must_share": 1.0, "must_not_share": 1.0, "passed": True}]
    totals = {"questions": 1, "rouge_l": 0.75, "rouge_l_questions": 1, "passed": 1, "phrase_questions": 1, "pass_rate": 1.0}
    store.record_golden_evals(file="golden.jsonl", sha256="ab" * 32, user="ann", model="tiny",
                              results=[("v0001", scores, totals)])
    app = ModelsApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await models_screen(pilot)
        text = detail(screen)
        assert "Golden-set evals" in text and "golden.jsonl" in text and "0.750" in text


async def test_the_detail_shows_the_versions_blind_ab_win_rates(settings, store) -> None:  # noqa: ANN001
    register(store, "v0001", eval_loss=1.4, report={"verdict": "promote", "reason": "first"})
    register(store, "v0002", eval_loss=1.3, report={"verdict": "keep", "reason": "close"})
    conversation = store.create_conversation("ann", "sys")
    question = store.add_message(conversation.id, "user", "Hi")
    left, right = (
        store.add_message(conversation.id, "assistant", "Hello", parent_id=question.id,
                          reply=ReplyRecord("Hello", "fake-base", version, {}, 10.0, 2, 20.0, "stop")).id
        for version in ("v0001", "v0002")
    )
    store.judge(left, right, "right", "ann")

    app = ModelsApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await models_screen(pilot)
        lines = detail(screen).splitlines()
        at = lines.index("Blind A/B (wins, losses, ties of the newer version)")
        assert lines[at + 1].startswith("  v0002 vs v0001: 1 wins, 0 losses, 0 ties: win rate 100%")
        await pilot.press("escape")
        await pilot.pause()


async def test_the_detail_plots_the_thumbs_up_rate_per_day_beside_the_active_version(settings, store, clock) -> None:  # noqa: ANN001
    register(store, "v0001", eval_loss=1.4, report={"verdict": "promote", "reason": "first"})
    register(store, "v0002", eval_loss=1.3, report={"verdict": "promote", "reason": "better"})
    store.promote("v0002", actor="ann")
    conversation = store.create_conversation("ann", "sys")
    question = store.add_message(conversation.id, "user", "Hi")

    def rate(version: str, rating: int) -> None:
        record = ReplyRecord("Hello", "fake-base", version, {}, 10.0, 2, 20.0, "stop")
        store.rate(store.add_message(conversation.id, "assistant", "Hello", parent_id=question.id, reply=record).id,
                   "ann", rating)

    rate("v0001", 1)
    rate("v0002", 1)
    clock.now += timedelta(days=1)
    rate("v0001", -1)

    app = ModelsApp(settings, store)
    async with app.run_test(size=SIZE) as pilot:
        screen = await models_screen(pilot)
        assert screen.shown == "v0002"  # the active one, rated on one day: a line of text
        assert "thumbs-up rate: 1 of 1 up on 2026-11-02 (one day so far)" in detail(screen).splitlines()
        await pilot.press("down")
        await pilot.pause()
        assert screen.shown == "v0001"
        lines = detail(screen).splitlines()
        title = lines.index("Thumbs-up rate per day (UTC), 2 days rated")
        assert "    ⢕⢕ v0001   •• v0002 (active)" in lines[title:]
        assert "v0001: 100% up on 2026-11-02 (1 of 1), 0% on 2026-11-03 (0 of 1)" in lines[title:]
        assert "thumbs-up rate:" not in detail(screen)
