"""The eval gate's rule and its inputs, kept pure: `decide`, the regression set, the probe prompts;
and the training configuration resolved from the settings (automatic values, step arithmetic)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from assistant.settings import load_settings
from assistant.train.config import EVALUATIONS_PER_RUN, TrainConfig
from assistant.train.gate import DEFAULT_PROBES, Verdict, decide, new_rows, probe_prompts, regression_rows
from assistant.train.loop import training_rows

MARGIN, TOLERANCE = 0.01, 0.02


def _score(eval_loss: float | None, regression_loss: float | None = None, version: str | None = None) -> dict[str, Any]:
    return {"version": version, "eval_loss": eval_loss, "regression_loss": regression_loss}


def _decide(candidate: dict, *, base: dict | None = None, active: dict | None = None,  # noqa: ANN001
            margin: float = MARGIN, tolerance: float = TOLERANCE) -> Verdict:
    scores = {"candidate": candidate}
    if active is not None:
        scores["active"] = active
    if base is not None:
        scores["base"] = base
    return decide(scores, margin=margin, tolerance=tolerance)


# -- decide ----------------------------------------------------------------------------------


def test_promote_when_the_candidate_beats_the_baseline_by_the_margin() -> None:
    verdict = _decide(_score(1.0, 2.0), base=_score(1.5, 2.0))
    assert verdict == Verdict("promote", "eval loss 1.0000 beats the base model's 1.5000 by 0.5000")


def test_a_gain_of_exactly_the_margin_is_enough() -> None:
    # 1.25 - 1.0 is exactly 0.25 in binary floating point.
    assert _decide(_score(1.0), base=_score(1.25), margin=0.25).verdict == "promote"
    assert _decide(_score(1.0), base=_score(1.0), margin=0.0).verdict == "promote"


def test_keep_when_better_but_under_the_margin() -> None:
    verdict = _decide(_score(1.495), base=_score(1.5))
    assert verdict.verdict == "keep"
    assert verdict.reason == "eval loss 1.4950 beats the base model's 1.5000 by 0.0050, less than the margin 0.01"
    assert _decide(_score(1.5), base=_score(1.5)).verdict == "keep"  # a tie is no gain


def test_reject_when_worse() -> None:
    verdict = _decide(_score(1.6, 1.0), base=_score(1.5, 2.0))
    assert verdict == Verdict("reject", "eval loss 1.6000 is worse than the base model's 1.5000")


def test_keep_when_the_regression_loss_rises_past_the_tolerance() -> None:
    verdict = _decide(_score(1.0, 2.1), base=_score(1.5, 2.0))
    assert verdict.verdict == "keep"
    assert verdict.reason == "regression loss rose 5.0% (2.0000 -> 2.1000), more than the tolerance 2%"


def test_a_regression_rise_within_the_tolerance_still_promotes() -> None:
    assert _decide(_score(1.0, 2.03), base=_score(1.5, 2.0)).verdict == "promote"
    assert _decide(_score(1.0, 1.0), base=_score(1.5, 2.0)).verdict == "promote"  # it got better
    assert _decide(_score(1.0, 3.0), base=_score(1.5, 2.0), tolerance=0.6).verdict == "promote"


@pytest.mark.parametrize(
    ("candidate_reg", "baseline_reg"), [(None, 2.0), (2.0, None), (None, None)], ids=["candidate", "baseline", "both"]
)
def test_no_regression_set_means_no_regression_check(candidate_reg: float | None, baseline_reg: float | None) -> None:
    assert _decide(_score(1.0, candidate_reg), base=_score(1.5, baseline_reg)).verdict == "promote"


def test_the_baseline_is_the_active_adapter_when_there_is_one() -> None:
    base = _score(3.0, 2.0)
    active = _score(1.2, 2.0, version="v0002")

    promoted = _decide(_score(1.1, 2.0), active=active, base=base, margin=0.05)
    assert promoted.verdict == "promote"
    assert promoted.reason == "eval loss 1.1000 beats the active adapter v0002's 1.2000 by 0.1000"

    close = _decide(_score(1.19, 2.0), active=active, base=base, margin=0.05)  # far better than base: not enough
    assert close.verdict == "keep" and "the active adapter v0002's 1.2000" in close.reason

    worse = _decide(_score(1.3, 2.0), active=active, base=base)
    assert worse == Verdict("reject", "eval loss 1.3000 is worse than the active adapter v0002's 1.2000")

    regressed = _decide(_score(1.0, 2.5), active=_score(1.2, 2.0, version="v0002"), base=_score(3.0, 1.0))
    assert regressed.verdict == "keep" and "25.0%" in regressed.reason


def test_the_base_model_is_the_baseline_without_an_active_adapter() -> None:
    verdict = _decide(_score(1.0), base=_score(1.2))
    assert "the base model's 1.2000" in verdict.reason


@pytest.mark.parametrize(
    ("candidate", "baseline"),
    [(None, 1.5), (1.0, None), (None, None), (math.nan, 1.5), (math.inf, 1.5), (-math.inf, 1.5)],
    ids=["candidate-none", "baseline-none", "both-none", "candidate-nan", "candidate-inf", "candidate-neg-inf"],
)
def test_no_eval_loss_to_compare_rejects(candidate: float | None, baseline: float | None) -> None:
    verdict = _decide(_score(candidate, 1.0), base=_score(baseline, 1.0))
    assert verdict == Verdict("reject", "no eval loss to compare (empty eval split or non-finite loss)")


def test_decide_needs_a_baseline() -> None:
    with pytest.raises(KeyError):
        decide({"candidate": _score(1.0)}, margin=MARGIN, tolerance=TOLERANCE)


# -- regression_rows -------------------------------------------------------------------------


def _row(question: str, answer: str = "An answer.", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], **extra}


def _snapshot(root: Path, name: str, *rows: dict[str, Any]) -> Path:
    path = root / name
    path.mkdir()
    (path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_regression_rows_dedup_and_leave_out_current_training_rows(tmp_path: Path) -> None:
    newer = _snapshot(tmp_path, "newer", _row("a"), _row("b"), _row("a"), _row("c"))
    older = _snapshot(tmp_path, "older", _row("b", source="other"), _row("d"), _row("e"))
    no_eval = tmp_path / "no-eval"
    no_eval.mkdir()  # a snapshot without an eval file adds nothing
    current_train = [_row("c"), _row("e", "A different answer.")]

    rows = regression_rows([newer, no_eval, older], current_train, limit=100)

    # "b" of the older snapshot has the same messages (its other fields do not matter); "c" is
    # trained on now; "e" is trained on now only with another answer, so its old row stays.
    assert rows == [_row("a"), _row("b"), _row("d"), _row("e")]


def test_regression_rows_respect_the_limit_newest_first(tmp_path: Path) -> None:
    newer = _snapshot(tmp_path, "newer", _row("a"), _row("b"))
    older = _snapshot(tmp_path, "older", _row("c"), _row("d"))

    assert regression_rows([newer, older], [], limit=3) == [_row("a"), _row("b"), _row("c")]
    assert regression_rows([newer, older], [], limit=1) == [_row("a")]
    assert regression_rows([older, newer], [_row("c")], limit=2) == [_row("d"), _row("a")]
    assert regression_rows([], [], limit=5) == []


def test_regression_rows_compare_messages_whatever_the_key_order(tmp_path: Path) -> None:
    reordered = {"messages": [{"content": "a", "role": "user"}, {"content": "An answer.", "role": "assistant"}]}
    snapshot = _snapshot(tmp_path, "s", reordered)
    assert regression_rows([snapshot], [_row("a")], limit=10) == []


# -- probe_prompts ---------------------------------------------------------------------------


def _chat(*users: str) -> dict[str, Any]:
    messages = [{"role": "system", "content": "sys"}]
    for user in users:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": "ok"}]
    return {"messages": messages}


def test_configured_probe_prompts_win() -> None:
    rows = [_chat("q1"), _chat("q2")]
    assert probe_prompts(("Where is my parcel?", "Hi"), rows) == ["Where is my parcel?", "Hi"]
    assert probe_prompts(["only one"], []) == ["only one"]


def test_probe_prompts_default_to_distinct_last_user_turns_of_eval_rows() -> None:
    rows = [
        _chat("first", "q1"),  # the last user turn counts
        _chat("q1"),  # a repeat
        {"messages": [{"role": "system", "content": "sys"}]},  # no user turn
        _chat("q2"),
        _chat("q3"),
        _chat("q4"),
    ]
    assert DEFAULT_PROBES == 3
    assert probe_prompts((), rows) == ["q1", "q2", "q3"]
    assert probe_prompts((), rows[:2]) == ["q1"]
    assert probe_prompts((), []) == []


# -- TrainConfig -----------------------------------------------------------------------------


def _settings(data_dir: Path, **overrides: Any):  # noqa: ANN202
    return load_settings(data_dir=data_dir, environ={}, overrides={"user": "ann", **overrides}).settings


def test_automatic_values_for_the_demo_and_a_real_model(data_dir: Path) -> None:
    settings = _settings(data_dir)
    real = TrainConfig.from_settings(settings, is_demo=False)
    demo = TrainConfig.from_settings(settings, is_demo=True)

    assert (real.learning_rate, real.epochs, real.early_stopping_patience) == (2e-4, 3.0, settings.early_stopping_patience)
    assert real.early_stopping_patience > 0
    assert (demo.learning_rate, demo.epochs, demo.early_stopping_patience) == (3e-3, 1.0, 0)
    assert (demo.new_passes, real.new_passes) == (30.0, 0.0)
    for config in (real, demo):
        assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (
            settings.lora_r, settings.lora_alpha, settings.lora_dropout
        )
        assert config.target_modules == settings.lora_target_modules
        assert (config.batch_size, config.gradient_accumulation_steps, config.max_steps, config.eval_steps) == (
            settings.batch_size, settings.gradient_accumulation_steps, settings.max_steps, settings.eval_steps
        )
        assert (config.seed, config.max_length, config.warm_start) == (settings.train_seed, settings.max_length, False)
    assert TrainConfig.from_settings(settings, is_demo=False, warm_start=True).warm_start is True


def test_explicit_settings_override_the_automatic_values(data_dir: Path) -> None:
    settings = _settings(
        data_dir, learning_rate=5e-4, epochs=2.5, early_stopping_patience=5, lora_r=4, lora_target_modules=["q_proj"]
    )
    real = TrainConfig.from_settings(settings, is_demo=False)
    demo = TrainConfig.from_settings(settings, is_demo=True)

    assert (real.learning_rate, real.epochs, real.early_stopping_patience) == (5e-4, 2.5, 5)
    assert (demo.learning_rate, demo.epochs, demo.early_stopping_patience) == (5e-4, 2.5, 0)  # the demo never stops early
    assert real.lora_r == 4 and real.target_modules == ("q_proj",)


@pytest.mark.parametrize("name", ["SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2_135m"])
def test_smollm2_135m_gets_the_training_defaults_measured_for_it(data_dir: Path, name: str) -> None:
    settings = _settings(data_dir)
    smol = TrainConfig.from_settings(settings, is_demo=False, model_name=name)
    other = TrainConfig.from_settings(settings, is_demo=False, model_name="Qwen/Qwen2.5-0.5B-Instruct")

    # docs/BENCHMARKS.md, "SmolLM2: rephrasings and training defaults (issue 12)"
    assert (smol.learning_rate, smol.epochs, smol.load_in_4bit, smol.evaluations) == (2e-3, 1.0, False, 2)
    # A few corrections are seen about 16 times, 30 of them 4 times (within 120 rows: "Corrections without
    # forgetting"); a large dataset once (each step costs seconds on a CPU).
    assert [smol.sized(n).repeat_new for n in (3, 10, 30, 70, 270)] == [16, 12, 4, 1, 1]
    assert (other.learning_rate, other.epochs, other.load_in_4bit, other.evaluations) == (2e-4, 3.0, True, 10)
    assert smol.interval(60) == 30  # two evaluations in a run of 60 steps (an epoch of the samples), one at the end
    assert smol.early_stopping_patience == settings.early_stopping_patience
    assert TrainConfig.from_settings(settings, is_demo=True, model_name=name).learning_rate == 3e-3
    explicit = TrainConfig.from_settings(_settings(data_dir, learning_rate=5e-4, epochs=4), is_demo=False, model_name=name)
    assert (explicit.learning_rate, explicit.epochs) == (5e-4, 4.0)


def test_a_run_recorded_before_the_precision_was_a_setting_resumes_in_4bit(data_dir: Path) -> None:
    recorded = TrainConfig.from_settings(_settings(data_dir), is_demo=False).as_dict()
    del recorded["load_in_4bit"], recorded["evaluations"]
    assert TrainConfig.from_dict(recorded).load_in_4bit is True
    assert TrainConfig.from_dict(recorded).evaluations == 10


@pytest.fixture
def config(data_dir: Path) -> TrainConfig:
    return replace(
        TrainConfig.from_settings(_settings(data_dir), is_demo=False),
        batch_size=4, gradient_accumulation_steps=1, epochs=3.0, max_steps=0, eval_steps=0,
    )


@pytest.mark.parametrize(
    ("examples", "changes", "steps"),
    [
        (10, {}, 9),  # ceil(10 / 4) = 3 steps per epoch, 3 epochs
        (8, {}, 6),
        (10, {"gradient_accumulation_steps": 2}, 6),  # ceil(10 / 8) = 2 per epoch
        (10, {"epochs": 1.5}, 5),  # ceil(3 * 1.5)
        (10, {"epochs": 0.1}, 1),  # at least one step
        (0, {}, 1),
        (10, {"max_steps": 5}, 5),  # max_steps caps
        (10, {"max_steps": 50}, 9),  # and does not stretch
        (1000, {"batch_size": 1}, 3000),
    ],
)
def test_total_steps(config: TrainConfig, examples: int, changes: dict[str, Any], steps: int) -> None:
    assert replace(config, **changes).total_steps(examples) == steps


@pytest.mark.parametrize(("total", "interval"), [(100, 10), (95, 10), (101, 11), (10, 1), (5, 1), (1, 1)])
def test_interval_gives_about_ten_evaluations_per_run(config: TrainConfig, total: int, interval: int) -> None:
    assert EVALUATIONS_PER_RUN == 10
    assert config.interval(total) == interval


def test_interval_of_explicit_eval_steps(config: TrainConfig) -> None:
    assert replace(config, eval_steps=7).interval(1000) == 7
    assert replace(config, eval_steps=7).interval(3) == 7


def test_as_dict_and_from_dict_round_trip_through_json(config: TrainConfig) -> None:
    config = replace(config, target_modules=("q_proj", "v_proj"), warm_start=True)
    values = config.as_dict()

    assert values["target_modules"] == ["q_proj", "v_proj"]
    assert values["learning_rate"] == config.learning_rate and values["warm_start"] is True
    assert TrainConfig.from_dict(json.loads(json.dumps(values))) == config
    assert TrainConfig.from_dict(values) == config
    assert config.as_dict() == values  # from_dict did not change what it was given


# -- small retrains: replay, repeats, and the gate's "learned" path --------------------------------


@pytest.mark.parametrize(("new_rows_count", "repeat"), [(3, 30), (10, 30), (30, 30), (270, 4), (2000, 1), (0, 1)])
def test_the_demo_sees_each_of_the_teams_rows_about_thirty_times_within_its_budget(data_dir: Path, new_rows_count: int, repeat: int) -> None:
    demo = TrainConfig.from_settings(_settings(data_dir), is_demo=True)
    assert demo.sized(new_rows_count).repeat_new == repeat


def test_a_real_model_or_epochs_set_by_hand_repeat_nothing(data_dir: Path) -> None:
    real = TrainConfig.from_settings(_settings(data_dir), is_demo=False)
    by_hand = TrainConfig.from_settings(_settings(data_dir, epochs=5), is_demo=True)
    assert real.sized(3).repeat_new == 1 and by_hand.sized(3).repeat_new == 1
    # nor do they get the gate's learned path (retrain passes max_rise 0 to `decide`)
    assert not real.small_data_schedule and not by_hand.small_data_schedule
    assert TrainConfig.from_settings(_settings(data_dir), is_demo=True).small_data_schedule


def _dataset(root: Path, conversation_ids: list[int]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = [_row(f"question {cid}", f"answer {cid}") for cid in conversation_ids]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    index = [{"conversation_id": cid, "message_ids": [1, 2], "target_id": 2} for cid in conversation_ids]
    (root / "manifest.json").write_text(json.dumps({"rows": {"train": index, "eval": []}}), encoding="utf-8")
    return root


def test_training_rows_repeat_the_teams_rows_and_keep_replay_at_about_half(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "d", [-3, -2, -1, 1, 2])  # three replayed samples, two of the team's rows

    def count(rows: list[dict], cid: int) -> int:
        return sum(r["messages"][0]["content"] == f"question {cid}" for r in rows)

    assert len(training_rows(dataset, 1)) == 5
    rows = training_rows(dataset, 3)  # 6 team copies: each sample twice
    assert [count(rows, cid) for cid in (-3, -2, -1, 1, 2)] == [2, 2, 2, 3, 3]
    rows = training_rows(dataset, 30)  # 60 team copies: each sample 20 times
    assert [count(rows, cid) for cid in (-3, 1)] == [20, 30]
    many = _dataset(tmp_path / "many", [-2, -1, *range(1, 8)])  # too many team rows to repeat: replay still half
    assert len(training_rows(many, 1)) == 9
    assert [count(training_rows(many, 1, balance=True), cid) for cid in (-2, 1)] == [4, 1]


def test_a_base_built_from_the_samples_replays_the_held_out_samples_too(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "d", [-3, -2, 1])
    held_out = [_row("question -1", "answer -1"), _row("question 9", "answer 9")]  # a sample and a team row
    (dataset / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in held_out), encoding="utf-8")
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["rows"]["eval"] = [{"conversation_id": cid, "message_ids": [1, 2], "target_id": 2} for cid in (-1, 9)]
    (dataset / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    questions = [r["messages"][0]["content"] for r in training_rows(dataset, 1, replay_held_out=True)]
    assert questions == ["question -3", "question -2", "question 1", "question -1"]  # never the team's held-out row
    assert len(training_rows(dataset, 1)) == 3


def test_new_rows_are_the_teams_rows_the_active_version_did_not_train_on(tmp_path: Path) -> None:
    current = _dataset(tmp_path / "now", [-2, -1, 1, 2, 3])
    active = _dataset(tmp_path / "before", [-2, -1, 1])
    assert [r["messages"][0]["content"] for r in new_rows(current, None, 10)] == ["question 1", "question 2", "question 3"]
    assert [r["messages"][0]["content"] for r in new_rows(current, active, 10)] == ["question 2", "question 3"]
    assert [r["messages"][0]["content"] for r in new_rows(current, None, 2)] == ["question 1", "question 2"]
    many = _dataset(tmp_path / "many", list(range(1, 101)))
    assert [r["messages"][0]["content"] for r in new_rows(many, None, 4)] == [f"question {n}" for n in (1, 26, 51, 76)]


def _learned(eval_loss: float, new_loss: float | None) -> dict[str, Any]:
    return {**_score(eval_loss), "new_loss": new_loss}


def test_a_candidate_that_learned_its_new_rows_is_promoted_while_its_eval_loss_rises_a_little() -> None:
    scores = {"candidate": _learned(0.16, 0.04), "base": _learned(0.11, 0.85)}
    verdict = decide(scores, margin=MARGIN, tolerance=TOLERANCE, max_rise=0.05)
    assert verdict.verdict == "promote"
    assert "learned its new rows (loss 0.8500 -> 0.0400)" in verdict.reason


@pytest.mark.parametrize(
    ("candidate", "max_rise", "verdict"),
    [
        (_learned(0.17, 0.04), 0.05, "reject"),  # its eval loss rose by more than max_rise: it broke what was right
        (_learned(0.16, 0.845), 0.05, "reject"),  # its new rows' loss fell by less than the margin: it learned nothing
        (_learned(0.16, None), 0.05, "reject"),  # no new rows to score
        (_learned(0.16, 0.04), 0.0, "reject"),  # the path is off
        (_learned(0.105, 0.04), 0.05, "promote"),  # a small eval gain under the margin is enough with the new rows learned
        (_learned(0.105, 0.85), 0.05, "keep"),  # and without them, stays a candidate as before
    ],
)
def test_the_learned_path_needs_both_the_new_rows_learned_and_the_eval_loss_held(candidate: dict, max_rise: float, verdict: str) -> None:
    scores = {"candidate": candidate, "base": _learned(0.11, 0.85)}
    assert decide(scores, margin=MARGIN, tolerance=TOLERANCE, max_rise=max_rise).verdict == verdict


def test_the_learned_path_still_checks_the_regression_set() -> None:
    scores = {"candidate": {**_learned(0.15, 0.04), "regression_loss": 2.5}, "base": {**_learned(0.11, 0.85), "regression_loss": 2.0}}
    assert decide(scores, margin=MARGIN, tolerance=TOLERANCE, max_rise=0.05).verdict == "keep"


# -- known gaps ------------------------------------------------------------------------------


def test_a_non_finite_regression_loss_is_not_promoted() -> None:
    assert _decide(_score(1.0, math.nan), base=_score(1.5, 2.0)).verdict != "promote"
