"""A version's gate numbers and thumbs-up rate as `models show` and the F2 screen print them."""

from __future__ import annotations

import re

from assistant.adapters.report import describe, gate_lines, thumbs_line, thumbs_lines, thumbs_plot
from assistant.store.records import AdapterRecord, MetricPoint, RatingCounts, ThumbsBucket


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


# -- preference training -------------------------------------------------------------------------

PREFERENCE = {
    "candidate": {"pairs": 4, "pair_accuracy": 0.75, "pair_margin": 0.1234, "desirable": 6, "undesirable": 3,
                  "desirable_logp": -1.25, "undesirable_logp": -2.5},
    "base": {"pairs": 4, "pair_accuracy": 0.5, "pair_margin": -0.0321, "desirable": 6, "undesirable": 3,
             "desirable_logp": -1.5, "undesirable_logp": -2.0},
}


def _report(preference: dict | None, **extra: object) -> dict:
    return {
        "verdict": "promote",
        "reason": "pair accuracy 75.0% (margin +0.1234) against the base model's 50.0%",
        "scores": {
            "candidate": {"version": None, "eval_loss": 1.2, "regression_loss": None, "preference": (preference or {}).get("candidate")},
            "base": {"version": None, "eval_loss": 1.25, "regression_loss": None, "preference": (preference or {}).get("base")},
        },
        **extra,
    }


def _record(metrics: dict, report: dict) -> AdapterRecord:
    return AdapterRecord(
        version="v0002", path="adapters/v0002", status="candidate", reason="", created_at="2026-11-02T09:30:00.000Z",
        run_id="r1", dataset_id="ds1", data_until=None, base_model="tiny", metrics=metrics, report=report,
        activated_at=None, deleted_at=None,
    )


def _points(stage: str, steps: int, start: float) -> list[MetricPoint]:
    return [MetricPoint("train", s, s / steps, start - s / 20, 0.5, 1e-4, stage) for s in range(1, steps + 1)] + [
        MetricPoint("eval", steps, 1.0, start - 0.1, None, None, stage)
    ]


def test_the_gate_shows_each_models_preference_scores_and_which_rows_were_scored() -> None:
    lines = gate_lines(_report(PREFERENCE, preference_rows="held out", preference_examples={"pairs": 4, "kto": 9}))

    assert lines[1].startswith("  candidate") and lines[1].endswith("regression loss -")
    assert lines[2] == "    preference  pair accuracy 75.0% of 4 pairs, margin +0.1234"
    assert lines[3] == "    preference  KTO log-prob desirable -1.2500 (6 rows), undesirable -2.5000 (3 rows), gap +1.2500"
    assert lines[4].startswith("  base")
    assert lines[5] == "    preference  pair accuracy 50.0% of 4 pairs, margin -0.0321"
    assert lines[6] == "    preference  KTO log-prob desirable -1.5000 (6 rows), undesirable -2.0000 (3 rows), gap +0.5000"
    assert lines[7] == "  preference rows scored: held out (4 pairs, 9 KTO rows)"
    assert len(lines) == 8


def test_preference_scores_show_only_what_was_scored() -> None:
    only_pairs = {"candidate": {"pairs": 2, "pair_accuracy": 1.0, "pair_margin": 0.5, "desirable": 0, "undesirable": 0,
                                "desirable_logp": None, "undesirable_logp": None}}
    lines = gate_lines(_report(only_pairs, preference_rows="training", preference_examples={"pairs": 2, "kto": 0}))
    assert lines[2] == "    preference  pair accuracy 100.0% of 2 pairs, margin +0.5000"
    assert lines[3].startswith("  base") and lines[4] == "  preference rows scored: training (2 pairs)"

    only_bad = {"candidate": {"pairs": 0, "pair_accuracy": None, "pair_margin": None, "desirable": 0, "undesirable": 3,
                              "desirable_logp": None, "undesirable_logp": -2.25}}
    lines = gate_lines(_report(only_bad, preference_rows="held out", preference_examples={"pairs": 0, "kto": 3}))
    assert lines[2] == "    preference  KTO log-prob undesirable -2.2500 (3 rows)"
    assert lines[-1] == "  preference rows scored: held out (3 KTO rows)"

    # No preference rows to score (None), and a report from before preference scores: nothing new.
    none = gate_lines(_report(None, preference_rows=None, preference_examples={"pairs": 0, "kto": 0}))
    older = gate_lines({k: v for k, v in _report(None).items()} | {"scores": {"candidate": {"eval_loss": 1.2, "regression_loss": None}}})
    assert [line for line in none + older if "preference" in line] == []
    assert len(none) == 3 and len(older) == 2


def test_a_version_with_a_preference_stage_shows_a_plot_per_stage_and_the_stage() -> None:
    metrics = {"steps": 10, "train_loss": 1.5, "eval_loss": 1.2,
               "preference": {"kind": "kto", "steps": 16, "total_steps": 16, "train_loss": 0.4321,
                              "rows": {"kind": "kto", "pairs": 0, "desirable": 6, "undesirable": 3, "stand_ins": 0}}}
    report = _report(PREFERENCE, preference_rows="held out", preference_examples={"pairs": 4, "kto": 9})
    text = describe(_record(metrics, report), _points("sft", 10, 2.0) + _points("preference", 16, 0.7), None, width=80)
    lines = text.splitlines()

    assert "training run r1: 10 steps, train loss 1.5000, eval loss 1.2000" in lines
    assert "preference stage KTO: 16 steps, train loss 0.4321 (6 desirable, 3 undesirable rows)" in lines
    assert "    preference  pair accuracy 75.0% of 4 pairs, margin +0.1234" in lines
    assert "  preference rows scored: held out (4 pairs, 9 KTO rows)" in lines
    assert "Loss" not in lines
    sft, preference = lines.index("SFT loss"), lines.index("Preference loss (KTO)")
    assert sft < preference
    plots = (lines[sft + 1:preference], lines[preference + 1:])
    for plot in plots:
        assert "train loss" in "\n".join(plot) and "eval loss" in "\n".join(plot) and "step" in "\n".join(plot)
    # Each plot's steps are its own stage's: the SFT one's end at 9 (ticks), the preference one's at 16.
    ticks = [plot[next(i for i, line in enumerate(plot) if "└" in line) + 1].split() for plot in plots]
    assert ticks[0][-1] == "9" and ticks[1][-1] == "16"

    # A stage that stopped short, of unknown kind, without rows: said as far as known.
    unknown = dict(metrics, preference={"steps": 8, "total_steps": 16, "train_loss": None})
    text = describe(_record(unknown, report), _points("sft", 10, 2.0) + _points("preference", 8, 0.7), None)
    assert "preference stage ?: 8 of 16 steps, train loss -" in text.splitlines()
    assert "Preference loss" in text.splitlines()
    # KTO with approved answers standing in for the thumbs up, beside too few pairs for DPO (not trained on).
    stand_ins = dict(metrics, preference={"kind": "kto", "steps": 16, "train_loss": 0.5,
                                          "rows": {"pairs": 3, "desirable": 4, "undesirable": 4, "stand_ins": 4}})
    assert ("preference stage KTO: 16 steps, train loss 0.5000 (4 desirable, 4 undesirable rows; 4 approved answers "
            "standing in as desirable)") in describe(_record(stand_ins, report), [], None).splitlines()


def test_a_version_without_a_preference_stage_reads_as_before() -> None:
    metrics = {"steps": 10, "train_loss": 1.5, "eval_loss": 1.2, "preference": None}
    record = _record(metrics, _report(None, preference_rows=None, preference_examples={"pairs": 0, "kto": 0}))
    text = describe(record, _points("sft", 10, 2.0), None)
    old = describe(_record({"steps": 10, "train_loss": 1.5, "eval_loss": 1.2}, _report(None)), _points("sft", 10, 2.0), None)

    assert text == old
    lines = text.splitlines()
    assert "Loss" in lines and "SFT loss" not in lines and "preference" not in text.lower().replace(
        "pair accuracy 75.0% (margin +0.1234) against the base model's 50.0%", ""
    )
    # A preference stage logged nothing (yet): no empty plot, no title.
    metrics["preference"] = {"kind": "dpo", "steps": 0, "train_loss": None}
    assert "Preference loss" not in describe(_record(metrics, record.report), _points("sft", 10, 2.0), None)


# -- thumbs-up rate per day ------------------------------------------------------------------------

BRAILLE = re.compile("[\u2801-\u28ff]")  # a plotted braille dot (U+2800, the blank, draws nothing)


def _rows(plot: str) -> dict[str, str]:
    """The plot's rows by their y tick (`100%`, `75%`, ...), the canvas only."""
    rows = {}
    for line in plot.splitlines():
        match = re.match(r"\s*(\d+%)┤(.*)│$", line)
        if match:
            rows[match[1]] = match[2]
    return rows


def test_the_thumbs_plot_draws_the_rate_on_rated_days_only() -> None:
    # Everything rated up on the days rated; no rating on 11-03 and 11-04: the line stays at 100%.
    always = thumbs_plot([("v0001", [ThumbsBucket("2026-11-02", 2, 0), ThumbsBucket("2026-11-05", 1, 0)])], width=60)
    rows = _rows(always)
    assert list(rows) == ["100%", "75%", "50%", "25%", "0%"]
    assert BRAILLE.search(rows["100%"]) and not any(BRAILLE.search(rows[tick]) for tick in ("75%", "50%", "25%", "0%"))
    lines = always.splitlines()
    assert lines[-3].split() == ["11-02", "11-03", "11-04", "11-05"] and lines[-2].strip() == "day (UTC)"
    assert lines[-1] == "    ⢕⢕ v0001"  # the legend, under the plot
    assert max(len(line) for line in lines) <= 60

    # A day all thumbs down is a real zero: the line reaches the 0% row.
    falls = _rows(thumbs_plot([("v0001", [ThumbsBucket("2026-11-02", 2, 0), ThumbsBucket("2026-11-05", 0, 3)])]))
    assert BRAILLE.search(falls["0%"]) and BRAILLE.search(falls["100%"])


def test_the_thumbs_plot_puts_versions_on_one_axis_of_days() -> None:
    plot = thumbs_plot([
        ("v0002", [ThumbsBucket("2026-12-30", 1, 1), ThumbsBucket("2026-12-31", 1, 0)]),
        ("v0003 (active)", [ThumbsBucket("2027-01-02", 0, 1)]),
    ])
    lines = plot.splitlines()
    # The axis runs from the first day of either to the last; across a new year, the ticks say the year.
    assert lines[-3].split() == ["2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02"]
    assert lines[-1] == "    ⢕⢕ v0002   •• v0003 (active)"
    rows = _rows(plot)
    assert "•" in rows["0%"] and "•" not in rows["50%"] + rows["100%"]  # the active version's one day, all down
    assert BRAILLE.search(rows["50%"]) and not BRAILLE.search(rows["0%"])
    assert thumbs_plot([]) == "" and thumbs_plot([("v0002", [ThumbsBucket("2026-11-02", 0, 0)])]) == ""


def test_one_rated_day_is_a_line_of_text_and_two_a_plot() -> None:
    one = [ThumbsBucket("2026-11-02", 3, 1)]
    assert thumbs_line(one) == "thumbs-up rate: 3 of 4 up on 2026-11-02 (one day so far)"
    assert thumbs_line([]) is None and thumbs_line(one + [ThumbsBucket("2026-11-04", 1, 1)]) is None
    assert thumbs_lines("v0002", {"v0002": one}) == []
    assert thumbs_lines("v0002", {}) == []

    two = one + [ThumbsBucket("2026-11-04", 1, 1)]
    lines = thumbs_lines("v0002", {"v0002": two, "v0003": one}, active="v0003")
    assert lines[0] == "Thumbs-up rate per day (UTC), 2 days rated"
    assert lines[1].splitlines()[-1] == "    ⢕⢕ v0002   •• v0003 (active)"
    assert lines[2] == "v0002: 75% up on 2026-11-02 (3 of 4), 50% on 2026-11-04 (1 of 2)"
    # The active version itself, or an active version without ratings: one line.
    assert thumbs_lines("v0002", {"v0002": two}, active="v0002")[1].splitlines()[-1] == "    ⢕⢕ v0002"
    assert thumbs_lines("v0002", {"v0002": two}, active="v0003")[1].splitlines()[-1] == "    ⢕⢕ v0002"


def test_describe_shows_the_thumbs_up_rate_beside_the_rating_line_or_as_a_plot() -> None:
    record = _record({"steps": 10, "train_loss": 1.5, "eval_loss": 1.2}, {})
    ratings = RatingCounts(5, 3, 1)
    one = {"v0002": [ThumbsBucket("2026-11-02", 3, 1)]}
    lines = describe(record, [], ratings, thumbs=one).splitlines()
    at = lines.index("replies: 5 replies, 3 👍 1 👎, 75% up")
    assert lines[at + 1] == "thumbs-up rate: 3 of 4 up on 2026-11-02 (one day so far)"
    assert not any(line.startswith("Thumbs-up rate per day") for line in lines)

    days = {"v0002": [ThumbsBucket("2026-11-02", 3, 1), ThumbsBucket("2026-11-03", 0, 1)],
            "v0001": [ThumbsBucket("2026-11-01", 2, 0), ThumbsBucket("2026-11-02", 1, 1)]}
    text = describe(record, _points("sft", 10, 2.0), RatingCounts(6, 3, 2), thumbs=days, active="v0001", width=72)
    lines = text.splitlines()
    assert not any(line.startswith("thumbs-up rate:") for line in lines)
    rate, loss = lines.index("Thumbs-up rate per day (UTC), 2 days rated"), lines.index("Loss")
    assert rate < loss  # before the loss plot
    plot = lines[rate + 1:loss - 1]
    assert plot[-2] == "    ⢕⢕ v0002   •• v0001 (active)"
    assert plot[-1] == "v0002: 75% up on 2026-11-02 (3 of 4), 0% on 2026-11-03 (0 of 1)"
    assert plot[-4].split() == ["11-01", "11-02", "11-03"]  # the active version's first day starts the axis
    assert max(len(line) for line in plot[:-1]) <= 72

    # No rated reply of this version (only of the active one): neither.
    text = describe(record, [], RatingCounts(2, 0, 0), thumbs={"v0001": days["v0001"]}, active="v0001")
    assert "thumbs-up rate" not in text.lower() and "v0001" not in text
