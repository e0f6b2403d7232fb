"""The gate's preference score (issue 14): `decide` with and without a preference stage, kept pure, and
`evaluate` scoring a snapshot's DPO/KTO rows on the tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from assistant.train.gate import Verdict, decide, preference_rows, preference_summary

MARGIN, TOLERANCE, MAX_RISE = 0.01, 0.02, 0.05


def _pref(accuracy: float | None = None, margin: float | None = None, *, pairs: int | None = None,
          good: float | None = None, bad: float | None = None) -> dict[str, Any]:
    pairs = (10 if accuracy is not None else 0) if pairs is None else pairs
    return {"pairs": pairs, "pair_accuracy": accuracy, "pair_margin": margin,
            "desirable": 4 if good is not None else 0, "undesirable": 4 if bad is not None else 0,
            "desirable_logp": good, "undesirable_logp": bad}


def _score(eval_loss: float | None, preference: dict[str, Any] | None = None, *, regression: float | None = None,
           version: str | None = None) -> dict[str, Any]:
    return {"version": version, "eval_loss": eval_loss, "regression_loss": regression, "new_loss": None,
            "preference": preference}


def _decide(candidate: dict, baseline: dict, *, stage: bool = True, active: bool = False,  # noqa: ANN001
            max_rise: float = MAX_RISE) -> Verdict:
    scores = {"candidate": candidate, "base": baseline}
    if active:
        scores = {"candidate": candidate, "active": {**baseline, "version": "v0003"}, "base": _score(9.0, _pref(0.0, -5.0))}
    return decide(scores, margin=MARGIN, tolerance=TOLERANCE, max_rise=max_rise, preference_stage=stage)


# -- a run with a preference stage -----------------------------------------------------------------


def test_a_higher_pair_accuracy_is_promoted() -> None:
    verdict = _decide(_score(1.02, _pref(0.8, 0.3)), _score(1.0, _pref(0.6, 0.1)))
    assert verdict.verdict == "promote"
    assert verdict.reason == (
        "preference score improves: pair accuracy 80.0% (margin +0.3000) against the base model's 60.0%"
        " (margin +0.1000) on 10 pairs; eval loss 1.0200 against the base model's 1.0000"
    )


def test_the_active_adapter_is_the_preference_baseline() -> None:
    verdict = _decide(_score(1.0, _pref(0.7, 0.2)), _score(1.0, _pref(0.6, 0.1)), active=True)
    assert verdict.verdict == "promote" and "the active adapter v0003's 60.0%" in verdict.reason
    worse = _decide(_score(1.0, _pref(0.5, 0.2)), _score(1.0, _pref(0.6, 0.1)), active=True)  # far above the base
    assert worse.verdict == "reject" and "the active adapter v0003's 60.0%" in worse.reason


@pytest.mark.parametrize(("gain", "verdict"), [(0.02, "promote"), (0.005, "keep"), (0.0, "keep"), (-0.005, "reject")])
def test_an_equal_pair_accuracy_is_judged_on_the_pair_margin(gain: float, verdict: str) -> None:
    result = _decide(_score(1.0, _pref(0.5, 0.25 + gain)), _score(1.0, _pref(0.5, 0.25)))
    assert result.verdict == verdict, result
    assert "pair accuracy 50.0%" in result.reason


def test_a_pair_margin_gain_of_exactly_the_margin_is_enough() -> None:
    scores = {"candidate": _score(1.0, _pref(0.5, 0.5 + 2**-7)), "base": _score(1.0, _pref(0.5, 0.5))}  # exact in binary
    assert decide(scores, margin=2**-7, tolerance=TOLERANCE, max_rise=MAX_RISE, preference_stage=True).verdict == "promote"


def test_an_improvement_under_the_margin_names_it() -> None:
    verdict = _decide(_score(1.0, _pref(0.5, 0.255)), _score(1.0, _pref(0.5, 0.25)))
    assert verdict.verdict == "keep"
    assert verdict.reason.startswith("preference score does not improve enough: pair accuracy 50.0%")
    assert "less than the margin 0.01" in verdict.reason


def test_a_preference_score_that_got_worse_is_rejected() -> None:
    verdict = _decide(_score(0.5, _pref(0.4, 0.5)), _score(1.0, _pref(0.6, 0.1)))  # a better eval loss does not help
    assert verdict.verdict == "reject"
    assert verdict.reason.startswith("preference score got worse: pair accuracy 40.0% (margin +0.5000) against the base model's 60.0%")


def test_an_improvement_that_raised_the_eval_loss_beyond_max_rise_stays_a_candidate() -> None:
    verdict = _decide(_score(1.06, _pref(0.8, 0.3)), _score(1.0, _pref(0.6, 0.1)))
    assert verdict.verdict == "keep"
    assert "eval loss rose from the base model's 1.0000 to 1.0600, more than 0.05" in verdict.reason
    assert _decide(_score(1.04, _pref(0.8, 0.3)), _score(1.0, _pref(0.6, 0.1))).verdict == "promote"
    # max_rise 0 (the default): the eval loss may not rise at all
    assert _decide(_score(1.0001, _pref(0.8, 0.3)), _score(1.0, _pref(0.6, 0.1)), max_rise=0.0).verdict == "keep"


def test_an_improvement_that_fails_the_regression_check_stays_a_candidate() -> None:
    verdict = _decide(_score(1.0, _pref(0.8, 0.3), regression=2.1), _score(1.0, _pref(0.6, 0.1), regression=2.0))
    assert verdict.verdict == "keep"
    assert "regression loss rose 5.0% (2.0000 -> 2.1000), more than the tolerance 2%" in verdict.reason
    assert _decide(_score(1.0, _pref(0.8, 0.3), regression=math.nan), _score(1.0, _pref(0.6, 0.1), regression=2.0)).verdict == "keep"


def test_a_preference_only_dataset_is_judged_on_the_preference_score_alone() -> None:
    verdict = _decide(_score(None, _pref(0.8, 0.3)), _score(None, _pref(0.6, 0.1)))
    assert verdict.verdict == "promote"
    assert "eval loss" not in verdict.reason
    assert _decide(_score(None, _pref(0.4, 0.3)), _score(None, _pref(0.6, 0.1))).verdict == "reject"


@pytest.mark.parametrize(("new", "old"), [(None, 1.0), (1.0, None), (math.nan, 1.0), (math.inf, 1.0)])
def test_an_eval_loss_on_one_side_only_or_not_finite_is_rejected(new: float | None, old: float | None) -> None:
    verdict = _decide(_score(new, _pref(0.8, 0.3)), _score(old, _pref(0.6, 0.1)))
    assert verdict == Verdict("reject", "no eval loss to compare (empty eval split on one side or non-finite loss)")


@pytest.mark.parametrize(
    ("candidate", "verdict", "words"),
    [
        (_pref(good=-1.0, bad=-2.5), "promote", "preference gap (desirable - undesirable log-probability) 1.5000 against the base model's 1.0000, better by 0.5000"),
        (_pref(good=-1.0, bad=-2.005), "keep", "better by 0.0050, less than the margin 0.01"),
        (_pref(good=-1.5, bad=-2.0), "reject", "worse by 0.5000"),
    ],
)
def test_without_pairs_the_kto_gap_decides(candidate: dict, verdict: str, words: str) -> None:
    result = _decide(_score(1.0, candidate), _score(1.0, _pref(good=-1.0, bad=-2.0)))
    assert result.verdict == verdict, result
    assert words in result.reason


def test_kto_rows_of_one_label_are_judged_on_that_label() -> None:
    assert _decide(_score(1.0, _pref(good=-0.5)), _score(1.0, _pref(good=-1.0))).verdict == "promote"
    assert _decide(_score(1.0, _pref(good=-1.5)), _score(1.0, _pref(good=-1.0))).verdict == "reject"
    unlikely = _decide(_score(1.0, _pref(bad=-3.0)), _score(1.0, _pref(bad=-2.0)))  # thumbs down made less likely
    assert unlikely.verdict == "promote" and "undesirable answers' log-probability, negated" in unlikely.reason
    assert _decide(_score(1.0, _pref(bad=-1.0)), _score(1.0, _pref(bad=-2.0))).verdict == "reject"


def test_pairs_win_over_the_kto_gap() -> None:
    candidate = {**_pref(0.8, 0.3), **{k: v for k, v in _pref(good=-3.0, bad=-1.0).items() if k != "pairs" and "pair" not in k}}
    baseline = {**_pref(0.6, 0.1), **{k: v for k, v in _pref(good=-1.0, bad=-3.0).items() if k != "pairs" and "pair" not in k}}
    assert _decide(_score(1.0, candidate), _score(1.0, baseline)).verdict == "promote"


def test_a_preference_stage_without_a_preference_score_is_never_promoted() -> None:
    better = _decide(_score(1.0), _score(1.5))  # would be promoted on its eval loss
    assert better.verdict == "keep"
    assert better.reason == (
        "a preference stage ran but there is no preference score to compare (no preference rows scored);"
        " eval loss 1.0000 beats the base model's 1.5000 by 0.5000"
    )
    assert _decide(_score(1.6), _score(1.5)).verdict == "reject"
    assert _decide(_score(1.0, _pref(0.8, 0.3)), _score(1.5, None)).verdict == "keep"  # one side has none
    assert _decide(_score(None), _score(None)).verdict == "reject"


# -- a run without a preference stage --------------------------------------------------------------


def test_without_a_stage_a_pair_accuracy_that_dropped_beyond_the_tolerance_stays_a_candidate() -> None:
    verdict = _decide(_score(1.0, _pref(0.5, 0.1)), _score(1.5, _pref(0.6, 0.1)), stage=False)
    assert verdict == Verdict("keep", "preference pair accuracy fell from the base model's 60.0% to 50.0%, more than the tolerance 2%")
    # a drop of exactly the tolerance, or a gain, holds it
    held = _decide(_score(1.0, _pref(0.48, 0.1, pairs=50)), _score(1.5, _pref(0.5, 0.1, pairs=50)), stage=False)
    assert held == Verdict("promote", "eval loss 1.0000 beats the base model's 1.5000 by 0.5000")
    assert _decide(_score(1.0, _pref(0.9, -1.0)), _score(1.5, _pref(0.6, 0.1)), stage=False).verdict == "promote"


def test_without_a_stage_a_kto_gap_that_dropped_beyond_the_margin_stays_a_candidate() -> None:
    verdict = _decide(_score(1.0, _pref(good=-1.0, bad=-1.5)), _score(1.5, _pref(good=-1.0, bad=-2.0)), stage=False)
    assert verdict.verdict == "keep"
    assert verdict.reason == ("preference gap (desirable - undesirable log-probability) fell from the base model's 1.0000"
                              " to 0.5000, more than the margin 0.01")
    small = _decide(_score(1.0, _pref(good=-1.0, bad=-1.995)), _score(1.5, _pref(good=-1.0, bad=-2.0)), stage=False)
    assert small.verdict == "promote"


def test_without_a_stage_the_eval_loss_rules_come_first() -> None:
    # the preference score only holds a candidate back that the eval loss would promote
    assert _decide(_score(1.6, _pref(0.1, -1.0)), _score(1.5, _pref(0.9, 1.0)), stage=False).verdict == "reject"
    assert _decide(_score(1.495, _pref(0.1, -1.0)), _score(1.5, _pref(0.9, 1.0)), stage=False).reason.startswith("eval loss 1.4950")
    regressed = _decide(_score(1.0, _pref(0.1, -1.0), regression=3.0), _score(1.5, _pref(0.9, 1.0), regression=2.0), stage=False)
    assert regressed.verdict == "keep" and regressed.reason.startswith("regression loss rose")


@pytest.mark.parametrize("sides", ["candidate", "baseline", "both", "neither key"])
def test_without_a_stage_a_missing_preference_score_changes_nothing(sides: str) -> None:
    candidate, baseline = _score(1.0, _pref(0.1, -1.0)), _score(1.5, _pref(0.9, 1.0))
    if sides in ("candidate", "both"):
        candidate["preference"] = None
    if sides in ("baseline", "both"):
        baseline["preference"] = None
    if sides == "neither key":  # a report from before issue 14
        candidate, baseline = {"version": None, "eval_loss": 1.0, "regression_loss": None}, {"version": None, "eval_loss": 1.5, "regression_loss": None}
    assert decide({"candidate": candidate, "base": baseline}, margin=MARGIN, tolerance=TOLERANCE) == Verdict(
        "promote", "eval loss 1.0000 beats the base model's 1.5000 by 0.5000"
    )


# -- the rows and the summary ----------------------------------------------------------------------


def _dpo(question: str, chosen: str, rejected: str) -> dict[str, Any]:
    return {"prompt": [{"role": "user", "content": question}], "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def _kto(question: str, completion: str, label: bool) -> dict[str, Any]:
    return {"prompt": [{"role": "user", "content": question}], "completion": [{"role": "assistant", "content": completion}],
            "label": label}


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_preference_rows_prefer_the_held_out_rows_then_the_training_rows(tmp_path: Path) -> None:
    assert preference_rows(tmp_path, 10) == (None, [], [])  # an old snapshot: no such files
    training = [_dpo("q", "a", "b")] * 3
    _write(tmp_path / "dpo.jsonl", training)
    _write(tmp_path / "dpo_eval.jsonl", [])  # empty held-out files: the training rows
    assert preference_rows(tmp_path, 2) == ("training", training[:2], [])
    held_out = [_kto("q", "a", True)]
    _write(tmp_path / "kto_eval.jsonl", held_out)
    assert preference_rows(tmp_path, 10) == ("held out", [], held_out)


def test_preference_summary_counts_only_strictly_more_likely_chosen_answers() -> None:
    logps = [-1.0, -2.0, -1.5, -0.5]
    summary = preference_summary([(0, 1), (2, 2), (1, 3)], [(0, True), (3, True), (1, False)], logps)
    assert summary == {
        "pairs": 3, "pair_accuracy": 1 / 3, "pair_margin": pytest.approx((1.0 + 0.0 - 1.5) / 3),
        "desirable": 2, "undesirable": 1, "desirable_logp": -0.75, "undesirable_logp": -2.0,
    }
    assert preference_summary([], [], []) == {
        "pairs": 0, "pair_accuracy": None, "pair_margin": None,
        "desirable": 0, "undesirable": 0, "desirable_logp": None, "undesirable_logp": None,
    }


# -- evaluate on the tiny model --------------------------------------------------------------------


def _make_adapter(base_dir: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out


def _evaluate(tiny_model_dir: Path, tmp_path: Path, snapshot: Path, *, active: bool = False) -> dict[str, Any]:
    from assistant.train.gate import evaluate

    candidate = _make_adapter(tiny_model_dir, tmp_path / "candidate", seed=1)
    active_dir = ("v0001", _make_adapter(tiny_model_dir, tmp_path / "active", seed=2)) if active else None
    return evaluate(tiny_model_dir, candidate, active_dir, snapshot, [], on_cuda=False, four_bit=False, max_examples=50,
                    max_length=256, probes=[], system_prompt="")


def _snapshot(tmp_path: Path) -> Path:
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    sft = {"messages": [{"role": "user", "content": "Where is my parcel?"},
                        {"role": "assistant", "content": "Check the tracking link in your order e-mail."}]}
    _write(snapshot / "eval.jsonl", [sft])
    return snapshot


def test_evaluate_scores_the_held_out_preference_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path)
    same = "Hold the dial for ten seconds until it blinks blue."
    multi_turn = {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"},
                             {"role": "user", "content": "Can I return a camera?"}],
                  "chosen": [{"role": "assistant", "content": "Yes, within 30 days, unused, with the receipt."}],
                  "rejected": [{"role": "assistant", "content": "No."}]}
    _write(snapshot / "dpo_eval.jsonl", [_dpo("How do I reset my thermostat?", same, same), multi_turn])
    _write(snapshot / "kto_eval.jsonl", [_kto("Where is my parcel?", "Check the tracking link in your order e-mail.", True),
                                         _kto("Where is my parcel?", "eeee", False),
                                         _kto("How do I reset my thermostat?", same, True)])
    _write(snapshot / "dpo.jsonl", [_dpo("training only", "a", "b")] * 5)  # not scored: held-out rows exist

    report = _evaluate(tiny_model_dir, tmp_path, snapshot, active=True)

    assert report["preference_rows"] == "held out"
    assert report["preference_examples"] == {"pairs": 2, "kto": 3}
    assert set(report["scores"]) == {"candidate", "active", "base"}
    for name, score in report["scores"].items():
        preference = score["preference"]
        assert set(preference) == {"pairs", "pair_accuracy", "pair_margin", "desirable", "undesirable", "desirable_logp",
                                   "undesirable_logp"}, name
        assert (preference["pairs"], preference["desirable"], preference["undesirable"]) == (2, 2, 1)
        # the pair whose answers are the same is never chosen-more-likely: at most the other one is
        assert preference["pair_accuracy"] in (0.0, 0.5), (name, preference)
        assert 0.0 <= preference["pair_accuracy"] <= 1.0
        assert math.isfinite(preference["pair_margin"])
        assert preference["desirable_logp"] <= 0.0 and preference["undesirable_logp"] <= 0.0
        assert math.isfinite(preference["desirable_logp"]) and math.isfinite(preference["undesirable_logp"])
        assert score["eval_loss"] is not None
    # the models differ, and so do their scores
    assert report["scores"]["candidate"]["preference"] != report["scores"]["base"]["preference"]


def test_a_single_answers_log_probability_is_its_eval_loss_negated(tiny_model_dir: Path, tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path)  # its eval row: the parcel question and answer
    _write(snapshot / "kto_eval.jsonl", [_kto("Where is my parcel?", "Check the tracking link in your order e-mail.", True)])

    report = _evaluate(tiny_model_dir, tmp_path, snapshot)
    for score in report["scores"].values():
        assert score["preference"]["desirable_logp"] == pytest.approx(-score["eval_loss"], abs=1e-3)


def test_evaluate_falls_back_to_the_training_rows_and_reports_none_without_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    snapshot = _snapshot(tmp_path)
    _write(snapshot / "dpo_eval.jsonl", [])
    _write(snapshot / "dpo.jsonl", [_dpo("How do I reset my thermostat?", "Hold the dial.", "eeee")])

    report = _evaluate(tiny_model_dir, tmp_path, snapshot)
    assert report["preference_rows"] == "training"
    assert report["preference_examples"] == {"pairs": 1, "kto": 0}
    assert set(report["scores"]) == {"candidate", "base"}
    for score in report["scores"].values():
        assert score["preference"]["pairs"] == 1 and score["preference"]["pair_margin"] is not None
        assert score["preference"]["desirable_logp"] is None

    (snapshot / "dpo.jsonl").unlink()
    bare = _evaluate(tiny_model_dir, tmp_path / "again", snapshot)
    assert bare["preference_rows"] is None and bare["preference_examples"] == {"pairs": 0, "kto": 0}
    assert all(score["preference"] is None for score in bare["scores"].values())
