"""What one adapter version is, as text: status, data, gate verdict, eval report, probe answers,
the thumbs its replies got, and its loss curves as a terminal plot.

Shared by `assistant models show` and the chat app's models screen. No torch, no textual; the text
that came from users or models is made terminal-safe here, and the screen shows it without markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistant.store.records import AdapterRecord, MetricPoint, RatingCounts
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


def _lowest(metrics: dict[str, Any]) -> str:
    """The lowest eval loss of the run when the published adapter's is not it (a run that kept its last
    checkpoint after a better one)."""
    lowest, final = metrics.get("lowest_eval_loss"), metrics.get("eval_loss")
    if not isinstance(lowest, (int, float)) or not isinstance(final, (int, float)) or lowest >= final:
        return ""
    return f" (lowest during the run {_number(lowest)})"


def _number(value: Any, digits: int = 4) -> str:
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
                f"  {label:<22} eval loss {_number(score.get('eval_loss'))}"
                f"  regression loss {_number(score.get('regression_loss'))}"
                + (f"  new rows loss {_number(score['new_loss'])}" if score.get("new_loss") is not None else "")
            )
    if report.get("forced"):
        lines.append(f"  promoted with --force: {one_line(str(report['forced']), 200)}")
    return lines


def probe_lines(report: dict[str, Any], *, width: int = 100) -> list[str]:
    lines: list[str] = []
    for probe in report.get("probes", []):
        lines.append(f"  Q: {one_line(terminal_safe(str(probe.get('prompt', ''))), width)}")
        for name in ("candidate", "active", "base"):
            if name in probe.get("answers", {}):
                lines.append(f"    {name:>9}: {one_line(terminal_safe(str(probe['answers'][name])), width)}")
    return lines


def describe(
    record: AdapterRecord,
    metrics: Sequence[MetricPoint],
    ratings: RatingCounts | None,
    *,
    width: int = 72,
) -> str:
    """The whole story of one version, as plain text."""
    meta_metrics = record.metrics or {}
    lines = [
        f"{record.version}  {record.status}" + (f" - {one_line(record.reason, 160)}" if record.reason else ""),
        f"created {record.created_at}" + (f", active since {record.activated_at}" if record.activated_at else ""),
        f"base model {record.base_model or '-'}",
        f"dataset {record.dataset_id or '-'}" + (" (ERASED data since: retrain to drop it)" if record.dataset_erased_at else ""),
        f"training run {record.run_id or '-'}: {meta_metrics.get('steps', '-')} steps, "
        f"train loss {_number(meta_metrics.get('train_loss'))}, eval loss {_number(meta_metrics.get('eval_loss'))}"
        + _lowest(meta_metrics),
        f"replies: {rating_line(ratings)}",
    ]
    if record.deleted_at:
        lines.append(f"deleted {record.deleted_at}")
    lines += ["", "Eval gate", *gate_lines(record.report)]
    probes = probe_lines(record.report, width=max(20, width - 16))
    if probes:
        lines += ["", "Probe answers (greedy)", *probes]
    plot = loss_plot(metrics, width=width)
    if plot:
        lines += ["", "Loss", plot]
    return "\n".join(lines)
