"""The gate's golden set (`gate_golden_set`): a candidate that breaks answers that were right is not promoted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.errors import InputError
from assistant.store import Store
from assistant.train.gate import decide
from assistant.train.retrain import Options, golden_set, retrain
from tests.train.conftest import configure, curate


def _scores(candidate_golden: dict | None, baseline_golden: dict | None) -> dict:
    return {
        "candidate": {"version": None, "eval_loss": 1.0, "regression_loss": None, "golden": candidate_golden},
        "base": {"version": None, "eval_loss": 2.0, "regression_loss": None, "golden": baseline_golden},
    }


def _totals(rouge: float | None, pass_rate: float | None = None) -> dict:
    return {"questions": 10, "rouge_l": rouge, "rouge_l_questions": 10, "passed": 0, "phrase_questions": 0,
            "pass_rate": pass_rate}


def test_a_candidate_whose_golden_set_fell_beyond_the_tolerance_stays_a_candidate() -> None:
    verdict = decide(_scores(_totals(0.60), _totals(0.90)), margin=0.01, tolerance=0.02, golden_tolerance=0.05)
    assert verdict.verdict == "keep"
    assert verdict.reason.startswith("the golden set's mean ROUGE-L fell from the base model's 0.900 to 0.600")
    assert "otherwise: eval loss 1.0000 beats" in verdict.reason
    fell = decide(_scores(_totals(0.9, 0.5), _totals(0.9, 1.0)), margin=0.01, tolerance=0.02, golden_tolerance=0.05)
    assert fell.verdict == "keep" and "pass rate fell" in fell.reason


@pytest.mark.parametrize(
    ("candidate", "baseline"),
    [(_totals(0.86), _totals(0.90)), (_totals(0.95), _totals(0.90)), (None, _totals(0.9)), (_totals(0.1), None)],
)
def test_a_golden_set_held_within_the_tolerance_or_absent_changes_nothing(candidate: dict | None, baseline: dict | None) -> None:
    assert decide(_scores(candidate, baseline), margin=0.01, tolerance=0.02, golden_tolerance=0.05).verdict == "promote"


def test_auto_is_the_sample_questions_for_the_demo_model_only(settings) -> None:  # noqa: ANN001
    sample = golden_set(settings, is_demo=True)
    assert sample is not None and len(sample.questions) == 30
    assert all(q.question and q.expected for q in sample.questions)
    assert golden_set(settings, is_demo=False) is None


def test_a_bad_golden_file_fails_before_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    bad = tmp_path / "golden.jsonl"
    bad.write_text('{"question": "Reset?", "expected": "Hold it."}\nnot json\n', encoding="utf-8")
    settings = configure(tmp_path / "data", tiny_model_dir, gate_golden_set=str(bad))
    store = Store.open(settings.db_path)
    curate(store)
    with pytest.raises(InputError, match="golden.jsonl line 2"):
        retrain(settings, store, Options())
    assert store.training_runs() == []  # nothing started
    store.close()


def test_the_gate_answers_the_golden_set_with_every_model_and_reports_it(
    tmp_path: Path, tiny_model_dir: Path, adapters: dict[str, Path]
) -> None:
    from assistant.adapters.golden import GoldenQuestion, GoldenSet
    from assistant.train.gate import evaluate
    from tests.conftest import SYSTEM, TAUGHT, THERMOSTAT

    dataset = tmp_path / "snapshot"
    dataset.mkdir()
    row = {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": THERMOSTAT},
                        {"role": "assistant", "content": TAUGHT["v0001"], "weight": 1}]}
    (dataset / "eval.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    golden = GoldenSet("golden.jsonl", "ab" * 32, (GoldenQuestion(1, THERMOSTAT, TAUGHT["v0001"], must=("dial",)),))
    report = evaluate(tiny_model_dir, adapters["v0001"], ("v0002", adapters["v0002"]), dataset, [], on_cuda=False,
                      four_bit=False, max_examples=10, max_length=128, probes=[], system_prompt=SYSTEM, golden=golden)
    assert report["golden_set"] == {"file": "golden.jsonl", "sha256": "ab" * 32, "questions": 1}
    scores = report["scores"]
    assert scores["candidate"]["golden"]["rouge_l"] == pytest.approx(1.0)  # v0001 answers what it was taught
    assert scores["candidate"]["golden"]["pass_rate"] == 1.0
    assert scores["active"]["golden"]["rouge_l"] < 0.5 and scores["active"]["golden"]["pass_rate"] == 0.0  # v0002's answer
    # v0002 as the candidate against v0001: the golden set fell, so it is not promoted whatever its losses.
    swapped = {"candidate": {**scores["active"], "eval_loss": 0.1}, "active": {**scores["candidate"], "eval_loss": 1.0}}
    assert decide(swapped, margin=0.01, tolerance=0.02).verdict == "keep"


def test_models_show_prints_the_golden_set_scores_of_each_model() -> None:
    from assistant.adapters.report import gate_lines

    report = {"verdict": "keep", "reason": "the golden set's mean ROUGE-L fell", "golden_set": {"file": "sample conversations", "questions": 30},
              "scores": {"candidate": {"eval_loss": 1.0, "golden": _totals(0.6, 0.5)}, "base": {"eval_loss": 2.0, "golden": _totals(0.9)}}}
    lines = gate_lines(report)
    assert "    golden set  ROUGE-L 0.6000  pass rate 50%" in lines
    assert "    golden set  ROUGE-L 0.9000" in lines
    assert "  golden set: sample conversations (30 questions)" in lines
