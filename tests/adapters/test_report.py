"""A version's gate numbers as `models show` and the F2 screen print them."""

from __future__ import annotations

from assistant.adapters.report import gate_lines


def test_the_new_rows_loss_is_shown_where_the_gate_scored_it() -> None:
    report = {
        "verdict": "promote",
        "reason": "learned its new rows (loss 0.8539 -> 0.0361) while its eval loss 0.1277 stays within 0.05 of the base model's 0.1128",
        "scores": {
            "candidate": {"version": None, "eval_loss": 0.1277, "regression_loss": None, "new_loss": 0.0361},
            "base": {"version": None, "eval_loss": 0.1128, "regression_loss": None, "new_loss": 0.8539},
        },
    }
    lines = gate_lines(report)
    assert lines[0].startswith("verdict: promote - learned its new rows")
    assert lines[1].startswith("  candidate") and lines[1].endswith("new rows loss 0.0361")
    assert lines[2].startswith("  base") and lines[2].endswith("new rows loss 0.8539")
    older = {"verdict": "keep", "reason": "", "scores": {"candidate": {"eval_loss": 1.0, "regression_loss": None}}}
    assert "new rows" not in gate_lines(older)[1]  # a version gated before new rows were scored
