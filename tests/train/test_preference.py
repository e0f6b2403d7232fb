"""The preference stage of `assistant retrain`: thumbs and corrections teach, with real TRL on the tiny model.

- `plan`: which method auto picks, and why none when there is nothing to learn from;
- KTO: thumbs down on one answer, up on another: the rated-down reply becomes less likely than with
  SFT alone on the same data, and is no longer the greedy answer;
- DPO from corrections: held-out pairs' chosen answers become more likely than their rejected ones;
- a run from thumbs alone (no approved answer); kill -9 in the stage, then `--resume` resumes the
  stage, not SFT; a non-finite loss in the stage aborts with nothing published.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from assistant.store import Store
from assistant.train.config import TrainConfig
from assistant.train.preference import epochs, kto_weights, plan, stage_rows
from assistant.train.retrain import Options, retrain
from tests.train.conftest import configure, curate

REPO = Path(__file__).resolve().parents[2]

# -- plan: which stage, from which rows ----------------------------------------------------------


def _snapshot(directory: Path, *, pairs: int = 0, up: int = 0, down: int = 0, approved: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    prompt = [{"role": "user", "content": "q"}]
    answer = [{"role": "assistant", "content": "a"}]
    files = {
        "dpo.jsonl": [{"prompt": prompt, "chosen": answer, "rejected": [{"role": "assistant", "content": "b"}]}] * pairs,
        "kto.jsonl": [{"prompt": prompt, "completion": answer, "label": True}] * up
        + [{"prompt": prompt, "completion": answer, "label": False}] * down,
        "train.jsonl": [{"messages": [*prompt, {**answer[0], "weight": 1}]}] * approved,
    }
    for name, rows in files.items():
        (directory / name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return directory


@pytest.mark.parametrize(
    ("mode", "counts", "kind"),
    [
        ("auto", {"pairs": 8, "up": 3, "down": 3}, "dpo"),
        ("auto", {"pairs": 7, "up": 3, "down": 3}, "kto"),
        ("auto", {"up": 1, "down": 5}, "kto"),
        ("auto", {"down": 5, "approved": 2}, "kto"),  # approved answers stand in for thumbs up
        ("auto", {"down": 5}, None),
        ("auto", {"up": 5}, None),
        ("kto", {"pairs": 20, "up": 1, "down": 1}, "kto"),
        ("dpo", {"pairs": 1}, "dpo"),
        ("dpo", {"up": 3, "down": 3}, None),
        ("off", {"pairs": 20, "up": 3, "down": 3}, None),
    ],
)
def test_auto_picks_dpo_from_enough_pairs_else_kto_from_both_labels_else_nothing(
    tmp_path: Path, mode: str, counts: dict[str, int], kind: str | None
) -> None:
    chosen = plan(mode, _snapshot(tmp_path / "s", **counts), min_pairs=8)
    assert chosen.kind == kind
    assert chosen.why  # always says why, shown by the preflight
    if kind is None and mode != "off":
        assert "no" in chosen.why


def test_stand_ins_are_approved_answers_at_most_as_many_as_the_thumbs_down(tmp_path: Path) -> None:
    directory = _snapshot(tmp_path / "s", down=2, approved=5)
    chosen = plan("auto", directory, min_pairs=8)
    assert (chosen.kind, chosen.desirable, chosen.undesirable, chosen.stand_ins) == ("kto", 2, 2, 2)
    rows = stage_rows(chosen, directory, seed=0)
    assert sorted(row["label"] for row in rows) == [False, False, True, True]
    assert all("weight" not in m for row in rows for m in row["prompt"] + row["completion"])


def test_kto_weights_balance_the_labels_unless_set(settings) -> None:  # noqa: ANN001
    config = TrainConfig.from_settings(settings, is_demo=False)
    unbalanced = plan("kto", _snapshot(settings.data_dir / "s", up=2, down=8), min_pairs=8)
    good, bad = kto_weights(config, unbalanced)
    assert good * unbalanced.desirable == pytest.approx(bad * unbalanced.undesirable)
    from dataclasses import replace

    assert kto_weights(replace(config, kto_desirable_weight=1.0, kto_undesirable_weight=0.5), unbalanced) == (1.0, 0.5)
    good, bad = kto_weights(replace(config, kto_undesirable_weight=2.0), unbalanced)  # the other one balances it
    assert bad == 2.0 and good * unbalanced.desirable == pytest.approx(bad * unbalanced.undesirable)
    assert epochs(config, rows=4) == 16  # one step a pass: 16 passes
    assert epochs(config, rows=10_000) == 1
    assert epochs(replace(config, preference_epochs=2.0), rows=4) == 2


# -- real training on the tiny model -------------------------------------------------------------

GIFT = ["Can I pay with a gift card?", "Do you take gift cards?", "Gift card payment possible?", "Can I use my gift card?"]
GOOD = "Yes, enter the gift card code at checkout."


def _answer_logps(model_dir: Path, adapter: Path | None, prompt: str, answers: list[str], system: str) -> list[float]:
    """Mean per-token log-probability of each answer to `prompt`, as the training template renders it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from assistant.train.loop import load_training_tokenizer

    tokenizer = load_training_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    out = []
    for answer in answers:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids = torch.tensor([encoded["input_ids"]])
        mask = torch.tensor(encoded["assistant_masks"][1:], dtype=torch.bool)
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, :-1]
        picked = torch.log_softmax(logits.float(), -1).gather(1, ids[0, 1:, None])[:, 0]
        out.append(float(picked[mask].mean()))
    return out


def _log(store: Store, down: str, *, approve_up: bool = True) -> None:
    """GIFT asked in eight conversations: four replies `down` rated down (no correction), four GOOD rated up."""
    ups = []
    for i, question in enumerate(GIFT * 2):
        conversation = store.create_conversation("bob", "")
        user = store.add_message(conversation.id, "user", question)
        bad = i < len(GIFT)
        reply = store.add_message(conversation.id, "assistant", down if bad else GOOD, parent_id=user.id)
        store.rate(reply.id, "bob", -1 if bad else 1)
        if not bad:
            ups.append(reply.id)
    if approve_up:
        store.approve(ups, "ann")


def _versions(settings) -> dict[str, Any]:  # noqa: ANN001
    store = Store.open(settings.db_path)
    try:
        return {a.version: a for a in store.adapters(include_deleted=True)}
    finally:
        store.close()


def test_kto_makes_the_rated_down_reply_less_likely_than_sft_alone_on_the_same_data(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    down = "Unfortunately not. Please contact support for help with your order."
    runs = {}
    for mode in ("off", "kto"):
        settings = configure(tmp_path / mode, tiny_model_dir, preference=mode, max_steps=20)
        store = Store.open(settings.db_path)
        _log(store, down)
        result = retrain(settings, store, Options(force_reason="compare the stages"))
        store.close()
        assert result.version == "v0001", result.message
        runs[mode] = (settings, result)
    settings, kto = runs["kto"]
    assert kto.metrics["preference"]["kind"] == "kto"
    assert kto.metrics["preference"]["rows"]["undesirable"] == 4 and kto.metrics["sft"]["steps"] > 0
    assert runs["off"][1].metrics["preference"] is None
    system = settings.system_prompt
    sft_only, = _answer_logps(tiny_model_dir, runs["off"][0].layout.version("v0001"), GIFT[0], [down], system)
    with_kto, = _answer_logps(tiny_model_dir, settings.layout.version("v0001"), GIFT[0], [down], system)
    assert with_kto < sft_only - 0.1
    greedy = _greedy_with(settings, tiny_model_dir)
    assert down not in greedy and not greedy.startswith(down[:20])
    # The stage's steps are recorded as its own, beside SFT's.
    store = Store.open(settings.db_path)
    stages = {p.stage for p in store.run_metrics(kto.run_id)}
    store.close()
    assert stages == {"sft", "preference"}


def _greedy_with(settings, model_dir: Path) -> str:  # noqa: ANN001
    """The version's greedy answer to GIFT[0], decoded by transformers from base + adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                                      settings.layout.version("v0001"))
    messages = ([{"role": "system", "content": settings.system_prompt}] if settings.system_prompt else []) + [
        {"role": "user", "content": GIFT[0]}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_dpo_from_corrections_raises_the_chosen_over_rejected_share_on_held_out_pairs(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    settings = configure(tmp_path / "data", tiny_model_dir, preference="dpo", max_steps=20)
    store = Store.open(settings.db_path)
    curate(store)  # every reply "eeee", rated down with the right answer, approved: a pair each
    result = retrain(settings, store, Options(force_reason="score the pairs"))
    store.close()
    assert result.metrics["preference"]["kind"] == "dpo"
    published = settings.layout.version(result.version)
    assert not [p for p in published.iterdir() if p.is_dir()]  # the adapter alone: not its frozen reference copy
    held = result.report["scores"]
    assert result.report["preference_rows"] == "held out"
    for name in ("candidate", "base"):
        assert held[name]["preference"]["pairs"] > 0
    assert held["candidate"]["preference"]["pair_accuracy"] > held["base"]["preference"]["pair_accuracy"]
    assert held["candidate"]["preference"]["pair_margin"] > held["base"]["preference"]["pair_margin"]


def test_thumbs_alone_train_the_preference_stage_on_the_active_version(
    tmp_path: Path, tiny_model_dir: Path, adapters: dict[str, Path]
) -> None:
    from assistant.adapters.registry import publish, read_meta

    settings = configure(tmp_path / "data", tiny_model_dir, preference="auto", max_steps=20)
    store = Store.open(settings.db_path)
    meta = {k: v for k, v in read_meta(adapters["v0001"]).items() if k not in {"files", "version"}}
    path = publish(adapters["v0001"], settings.data_dir, "v0001", meta)
    store.register_adapter("v0001", path=str(path), actor="ann", base_model=tiny_model_dir.name)
    store.promote("v0001", actor="ann", reason="by hand")
    _log(store, "Unplug it and call us.", approve_up=False)  # thumbs only: nothing approved, no SFT row
    result = retrain(settings, store, Options(force_reason="thumbs only"))
    assert result.metrics["sft"] is None and result.preflight["train_examples"] == 0
    assert result.metrics["preference"]["kind"] == "kto" and result.metrics["preference"]["steps"] > 0
    run = store.training_run(result.run_id)
    store.close()
    assert result.version == "v0002"
    info = json.loads((settings.runs_dir / run.id / "run.json").read_text(encoding="utf-8"))
    assert info["preference_start_version"] == "v0001"  # continued the active version, its reference too


def test_nothing_to_train_says_why_there_is_no_preference_stage(tmp_path: Path, tiny_model_dir: Path) -> None:
    settings = configure(tmp_path / "data", tiny_model_dir, preference="auto")
    store = Store.open(settings.db_path)
    conversation = store.create_conversation("bob", "")
    user = store.add_message(conversation.id, "user", GIFT[0])
    store.rate(store.add_message(conversation.id, "assistant", "eeee", parent_id=user.id).id, "bob", -1)
    result = retrain(settings, store, Options())
    store.close()
    assert result.status == "nothing"
    assert "no thumbs up or approved answers" in result.message


def test_a_non_finite_loss_in_the_stage_aborts_and_publishes_nothing(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.errors import TrainingError

    settings = configure(tmp_path / "data", tiny_model_dir, preference="dpo", preference_learning_rate=1e12,
                         preference_beta=1e6, max_steps=20)
    store = Store.open(settings.db_path)
    curate(store)
    with pytest.raises(TrainingError, match="non-finite .* of the preference stage"):
        retrain(settings, store, Options())
    assert store.adapters(include_deleted=True) == []
    assert store.training_runs(limit=1)[0].status == "failed"
    store.close()


def test_kill_9_during_the_preference_stage_then_resume_continues_it_not_sft(tmp_path: Path, tiny_model_dir: Path) -> None:
    settings = configure(tmp_path / "data", tiny_model_dir, preference="dpo", preference_epochs=20, eval_steps=5,
                         max_steps=60)
    store = Store.open(settings.db_path)
    curate(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    process = subprocess.Popen(
        [sys.executable, "-m", "assistant", "retrain", "--data-dir", str(settings.data_dir)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not list(settings.runs_dir.glob("*/preference/checkpoints/checkpoint-*/COMPLETE")):
            assert process.poll() is None, "retrain ended before the preference stage's first checkpoint"
            assert time.monotonic() < deadline, "no preference checkpoint within 3 minutes"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    run = store.training_runs()[0]
    assert run.status == "running" and run.version is None
    run_dir = settings.runs_dir / run.id
    sft_steps = json.loads((run_dir / "sft.json").read_text(encoding="utf-8"))["steps"]
    sft_logged = store.recent_steps(run.id, limit=1000, stage="sft")  # with when each step was logged

    result = retrain(settings, store, Options(resume=True, force_reason="finish the killed run"))
    assert result.run_id == run.id and result.version == "v0001"
    assert result.metrics["sft"]["steps"] == sft_steps and result.metrics["sft"]["resumed_from_step"] is None
    assert result.metrics["preference"]["resumed_from_step"] is not None
    assert result.metrics["preference"]["steps"] == result.metrics["preference"]["total_steps"]
    assert store.recent_steps(run.id, limit=1000, stage="sft") == sft_logged  # SFT did not train again
    assert {p.stage for p in store.run_metrics(run.id)} == {"sft", "preference"}
    store.close()


def test_min_new_ratings_starts_a_scheduled_run_for_a_team_that_only_rates(tmp_path: Path, tiny_model_dir: Path) -> None:
    settings = configure(tmp_path / "data", tiny_model_dir, preference="auto", max_steps=20)
    store = Store.open(settings.db_path)
    _log(store, "Unplug it and call us.", approve_up=False)  # 8 thumbs, nothing approved
    assert store.ratings_since(None) == 8
    waiting = retrain(settings, store, Options(min_new=1, min_new_ratings=9))
    assert waiting.status == "nothing"
    assert waiting.message == "nothing to train: 0 new approved examples < 1 and 8 new ratings < 9"
    result = retrain(settings, store, Options(min_new=1, min_new_ratings=8, force_reason="scheduled"))
    assert result.version == "v0001" and result.metrics["preference"]["kind"] == "kto"
    # Counted from the data of the newest version: nothing new since.
    assert retrain(settings, store, Options(min_new_ratings=1)).message == "nothing to train: 0 new ratings < 1"
    store.close()
