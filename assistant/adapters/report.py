"""What one adapter version is, as text: status, data, gate verdict, eval report (with the preference
scores of a gate that had preference rows), probe answers, its golden-set evals (`assistant eval`), its
blind A/B win rates against other versions, the thumbs its replies got (in all, and their thumbs-up
rate per day as a terminal plot beside the active version's), and its loss curves as terminal plots,
one per training stage (SFT, and the preference stage where it ran).

Shared by `assistant models show` and the chat app's models screen. No torch, no textual; the text
that came from users or models is made terminal-safe here, and the screen shows it without markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from assistant.store.records import AdapterRecord, GoldenEval, MetricPoint, RatingCounts, ThumbsBucket, VersionPair
from assistant.text import integer_ticks, one_line, plural, terminal_safe


def loss_plot(points: Sequence[MetricPoint], *, width: int = 72, height: int = 16) -> str:
    """Train and eval loss against the step, plotted in plain characters ('' without points)."""
    import plotext as plt

    train = [(p.step, p.loss) for p in points if p.split == "train" and p.loss is not None]
    evals = [(p.step, p.loss) for p in points if p.split == "eval" and p.loss is not None]
    if not train and not evals:
        return ""
    plt.clear_figure()
    plt.theme("clear")
    plt.plotsize(width, height)
    if train:
        plt.plot([s for s, _ in train], [v for _, v in train], label="train loss", marker="braille")
    if evals:
        plt.plot([s for s, _ in evals], [v for _, v in evals], label="eval loss", marker="dot")
    steps = [s for s, _ in train + evals]
    plt.xticks(integer_ticks(min(steps), max(steps)))
    plt.xlabel("step")
    return plt.uncolorize(plt.build())


# One marker per line of the thumbs plot, told apart without colour, and how the legend shows it. The legend
# goes under the plot: plotext's own sits in the top left corner, over the 100% a good version reaches.
THUMBS_MARKERS = {"braille": "⢕⢕", "dot": "••", "+": "++"}


def thumbs_plot(
    series: Sequence[tuple[str, Sequence[ThumbsBucket]]], *, width: int = 72, height: int = 14
) -> str:
    """The thumbs-up rate (up / rated, 0-100%) per day of each (label, days) line, on one axis of days,
    plotted in plain characters with a legend line under it; at most three lines. A day without ratings
    is no point, never a zero ('' without any rated day)."""
    import plotext as plt

    lines = [
        (label, [(date.fromisoformat(d.day), 100 * d.up_rate) for d in days if d.up_rate is not None])
        for label, days in series[: len(THUMBS_MARKERS)]
    ]
    lines = [(label, points) for label, points in lines if points]
    if not lines:
        return ""
    first = min(day for _, points in lines for day, _ in points)
    last = max(day for _, points in lines for day, _ in points)
    plt.clear_figure()
    plt.theme("clear")
    plt.plotsize(width, height)
    for (_, points), marker in zip(lines, THUMBS_MARKERS):
        plt.plot([(day - first).days for day, _ in points], [rate for _, rate in points], marker=marker)
    plt.ylim(0, 100)
    plt.yticks(list(range(0, 101, 25)), [f"{share}%" for share in range(0, 101, 25)])
    ticks = integer_ticks(0, (last - first).days)
    end = first + timedelta(days=ticks[-1])
    form = "%m-%d" if end.year == first.year else "%Y-%m-%d"  # the year only where the axis crosses one
    plt.xticks(ticks, [(first + timedelta(days=tick)).strftime(form) for tick in ticks])
    plt.xlabel("day (UTC)")
    legend = "   ".join(f"{glyphs} {label}" for (label, _), glyphs in zip(lines, THUMBS_MARKERS.values()))
    return plt.uncolorize(plt.build()) + "    " + legend + "\n"


def thumbs_line(days: Sequence[ThumbsBucket]) -> str | None:
    """The thumbs-up rate in one line, where there is too little for a plot: one rated day (None: none,
    or enough days for `thumbs_plot`)."""
    rated = [day for day in days if day.rated]
    if len(rated) != 1:
        return None
    day = rated[0]
    return f"thumbs-up rate: {day.up} of {day.rated} up on {day.day} (one day so far)"


def thumbs_lines(
    version: str, thumbs: Mapping[str, Sequence[ThumbsBucket]], *, active: str | None = None, width: int = 72
) -> list[str]:
    """`version`'s thumbs-up rate per day as a plot under a title, with the active version's line to compare
    where that is another version, and the first and last day in numbers; nothing under two rated days."""
    mine = [day for day in thumbs.get(version, ()) if day.rated]
    if len(mine) < 2:
        return []
    series: list[tuple[str, Sequence[ThumbsBucket]]] = [(one_line(version, 16), mine)]
    if active is not None and active != version and thumbs.get(active):
        series.append((f"{one_line(active, 16)} (active)", thumbs[active]))
    first, last = mine[0], mine[-1]
    return [
        f"Thumbs-up rate per day (UTC), {len(mine)} days rated",
        thumbs_plot(series, width=width).rstrip("\n"),
        f"{one_line(version, 16)}: {first.up_rate:.0%} up on {first.day} ({first.up} of {first.rated}),"
        f" {last.up_rate:.0%} on {last.day} ({last.up} of {last.rated})",
    ]


def preference_title(metrics: dict[str, Any]) -> str:
    """The preference stage's plot title: its kind (KTO, DPO) from the version's metrics, where known."""
    stage = metrics.get("preference")
    kind = stage.get("kind") if isinstance(stage, dict) else None
    return f"Preference loss ({one_line(str(kind), 12).upper()})" if kind else "Preference loss"


def preference_stage_line(metrics: dict[str, Any]) -> str | None:
    """What the run's preference stage trained (None: it had none, or the version predates them)."""
    stage = metrics.get("preference")
    if not isinstance(stage, dict):
        return None
    kind = one_line(str(stage.get("kind") or "?"), 12).upper()
    steps, total = stage.get("steps", "-"), stage.get("total_steps")
    of = f" of {total}" if isinstance(total, int) and total != steps else ""
    rows = _trained_on(str(stage.get("kind")), stage.get("rows") if isinstance(stage.get("rows"), dict) else {})
    return (f"preference stage {kind}: {steps}{of} steps, train loss {number(stage.get('train_loss'))}"
            + (f" ({rows})" if rows else ""))


def _trained_on(kind: str, rows: dict[str, Any]) -> str:
    """The rows a preference stage trained on: DPO pairs, or KTO rows of each label."""
    def count(key: str) -> int:
        return _count(rows.get(key))

    parts = []
    if kind != "kto" and count("pairs"):
        parts.append(plural(count("pairs"), "pair", "pairs"))
    if kind != "dpo":
        labelled = [f"{count(key)} {key}" for key in ("desirable", "undesirable") if count(key)]
        if labelled:
            parts.append(", ".join(labelled) + (" row" if count("desirable") + count("undesirable") == 1 else " rows"))
        if count("stand_ins"):
            parts.append(f"{count('stand_ins')} approved answers standing in as desirable")
    return "; ".join(parts)


def _lowest(metrics: dict[str, Any]) -> str:
    """The lowest eval loss of the run when the published adapter's is not it (a run that kept its last
    checkpoint after a better one)."""
    lowest, final = metrics.get("lowest_eval_loss"), metrics.get("eval_loss")
    if not isinstance(lowest, (int, float)) or not isinstance(final, (int, float)) or lowest >= final:
        return ""
    return f" (lowest during the run {number(lowest)})"


def number(value: Any, digits: int = 4) -> str:
    """A score as text with `digits` decimals; `-` for none."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def rating_line(ratings: RatingCounts | None) -> str:
    if ratings is None or not ratings.replies:
        return "no replies yet"
    rate = ratings.up_rate
    share = f", {rate:.0%} up" if rate is not None else ""
    return f"{plural(ratings.replies, 'reply', 'replies')}, {ratings.up} 👍 {ratings.down} 👎{share}"


def gate_lines(report: dict[str, Any]) -> list[str]:
    """The eval gate's verdict and its numbers for each model scored."""
    if not report:
        return ["not evaluated"]
    lines = [f"verdict: {report.get('verdict', '?')} - {one_line(str(report.get('reason', '')), 200)}"]
    scores = report.get("scores", {})
    for name in ("candidate", "active", "base"):
        score = scores.get(name)
        if score:
            label = f"{name} ({score.get('version')})" if score.get("version") else name
            lines.append(
                f"  {label:<22} eval loss {number(score.get('eval_loss'))}"
                f"  regression loss {number(score.get('regression_loss'))}"
                + (f"  new rows loss {number(score['new_loss'])}" if score.get("new_loss") is not None else "")
            )
            lines += preference_lines(score.get("preference"))
            golden = score.get("golden")
            if isinstance(golden, dict):
                parts = [f"ROUGE-L {number(golden.get('rouge_l'))}" if golden.get("rouge_l") is not None else "",
                         f"pass rate {golden['pass_rate']:.0%}" if isinstance(golden.get("pass_rate"), (int, float)) else ""]
                lines.append("    golden set  " + ("  ".join(p for p in parts if p) or "nothing scored"))
    golden_set = report.get("golden_set")
    if isinstance(golden_set, dict):
        lines.append(f"  golden set: {one_line(str(golden_set.get('file', '?')), 80)} ({golden_set.get('questions', '?')} questions)")
    rows = report.get("preference_rows")
    if rows:
        examples = report.get("preference_examples") or {}
        counts = [f"{examples[key]} {name}" for key, name in (("pairs", "pairs"), ("kto", "KTO rows"))
                  if isinstance(examples.get(key), int) and examples[key]]
        lines.append(f"  preference rows scored: {one_line(str(rows), 20)}"
                     + (f" ({', '.join(counts)})" if counts else ""))
    if report.get("forced"):
        lines.append(f"  promoted with --force: {one_line(str(report['forced']), 200)}")
    return lines


def preference_lines(preference: Any) -> list[str]:
    """One model's preference scores under its gate line: the DPO pairs' accuracy and margin, the KTO rows'
    mean log-probabilities (nothing for a report without them)."""
    if not isinstance(preference, dict):
        return []
    lines = []
    pairs = preference.get("pairs")
    if isinstance(pairs, int) and pairs > 0:
        accuracy = preference.get("pair_accuracy")
        shown = f"{accuracy:.1%}" if isinstance(accuracy, (int, float)) else "-"
        lines.append(f"    preference  pair accuracy {shown} of {pairs} pairs, margin {_signed(preference.get('pair_margin'))}")
    good, bad = preference.get("desirable"), preference.get("undesirable")
    good_logp, bad_logp = preference.get("desirable_logp"), preference.get("undesirable_logp")
    sides = [
        f"{name} {number(logp)} ({plural(count, 'row', 'rows')})"
        for name, count, logp in (("desirable", good, good_logp), ("undesirable", bad, bad_logp))
        if isinstance(count, int) and count > 0
    ]
    if sides:
        both = isinstance(good_logp, (int, float)) and isinstance(bad_logp, (int, float))
        gap = f", gap {_signed(good_logp - bad_logp)}" if both else ""
        lines.append(f"    preference  KTO log-prob {', '.join(sides)}{gap}")
    return lines


def _signed(value: Any) -> str:
    return f"{value:+.4f}" if isinstance(value, (int, float)) else "-"


def probe_lines(report: dict[str, Any], *, width: int = 100) -> list[str]:
    lines: list[str] = []
    for probe in report.get("probes", []):
        lines.append(f"  Q: {one_line(terminal_safe(str(probe.get('prompt', ''))), width)}")
        for name in ("candidate", "active", "base"):
            if name in probe.get("answers", {}):
                lines.append(f"    {name:>9}: {one_line(terminal_safe(str(probe['answers'][name])), width)}")
    return lines


GOLDEN_SHOWN = 5  # the newest golden-set evals `describe` lists


def golden_totals(totals: dict[str, Any]) -> str:
    """A golden-set eval's totals in words: `ROUGE-L 0.842 over 3 questions, passed 2/4 (50%)`."""
    parts = []
    if isinstance(totals.get("rouge_l"), (int, float)):
        parts.append(f"ROUGE-L {totals['rouge_l']:.3f} over {plural(_count(totals.get('rouge_l_questions')), 'question')}")
    judged = _count(totals.get("phrase_questions"))
    if judged:
        rate = totals.get("pass_rate")
        share = f" ({rate:.0%})" if isinstance(rate, (int, float)) else ""
        parts.append(f"passed {_count(totals.get('passed'))}/{judged}{share}")
    return ", ".join(parts) or "nothing scored"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def golden_lines(evals: Sequence[GoldenEval], *, width: int = 100) -> list[str]:
    """The newest golden-set evals, one line each: file, when, who, totals (nothing without any)."""
    lines = [
        f"  {one_line(e.file, max(20, width // 3))} (sha256 {e.sha256[:12]}) {e.at[:16].replace('T', ' ')}"
        f" by {one_line(e.user, 20)}: {golden_totals(e.totals)}"
        for e in evals[:GOLDEN_SHOWN]
    ]
    if len(evals) > GOLDEN_SHOWN:
        lines.append(f"  and {len(evals) - GOLDEN_SHOWN} older (models show --json lists them all)")
    return lines


def ab_lines(pairs: Sequence[VersionPair]) -> list[str]:
    """One line per pair of versions judged against each other in blind A/B: the newer one's score."""
    return [
        f"  {pair.candidate or 'base model'} vs {pair.baseline or 'base model'}: {pair.score.text()}" for pair in pairs
    ]


def describe(
    record: AdapterRecord,
    metrics: Sequence[MetricPoint],
    ratings: RatingCounts | None,
    *,
    width: int = 72,
    evals: Sequence[GoldenEval] = (),
    pairs: Sequence[VersionPair] = (),
    thumbs: Mapping[str, Sequence[ThumbsBucket]] | None = None,
    active: str | None = None,
) -> str:
    """The whole story of one version, as plain text. `thumbs`: thumbs per day by version
    (`Store.thumbs_over_time`): this version's, and the `active` version's to compare with."""
    meta_metrics = record.metrics or {}
    stage_line = preference_stage_line(meta_metrics)
    thumbs = thumbs or {}
    one_day = thumbs_line(thumbs.get(record.version, ()))
    lines = [
        f"{record.version}  {record.status}" + (f" - {one_line(record.reason, 160)}" if record.reason else ""),
        f"created {record.created_at}" + (f", active since {record.activated_at}" if record.activated_at else ""),
        f"base model {record.base_model or '-'}",
        f"dataset {record.dataset_id or '-'}" + (" (ERASED data since: retrain to drop it)" if record.dataset_erased_at else ""),
        f"training run {record.run_id or '-'}: {meta_metrics.get('steps', '-')} steps, "
        f"train loss {number(meta_metrics.get('train_loss'))}, eval loss {number(meta_metrics.get('eval_loss'))}"
        + _lowest(meta_metrics),
        *([stage_line] if stage_line else []),
        f"replies: {rating_line(ratings)}",
        *([one_day] if one_day else []),
    ]
    if record.deleted_at:
        lines.append(f"deleted {record.deleted_at}")
    lines += ["", "Eval gate", *gate_lines(record.report)]
    probes = probe_lines(record.report, width=max(20, width - 16))
    if probes:
        lines += ["", "Probe answers (greedy)", *probes]
    if evals:
        lines += ["", "Golden-set evals", *golden_lines(evals, width=width)]
    if pairs:
        lines += ["", "Blind A/B (wins, losses, ties of the newer version)", *ab_lines(pairs)]
    rate = thumbs_lines(record.version, thumbs, active=active, width=width)
    if rate:
        lines += ["", *rate]
    # One plot per stage (their steps each start at 1); a run without a preference stage keeps its one "Loss".
    preference = loss_plot([p for p in metrics if p.stage == "preference"], width=width)
    plot = loss_plot([p for p in metrics if p.stage != "preference"], width=width)
    if plot:
        lines += ["", "SFT loss" if preference else "Loss", plot]
    if preference:
        lines += ["", preference_title(meta_metrics), preference]
    return "\n".join(lines)
