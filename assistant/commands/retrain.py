"""`assistant retrain`: turn the curated feedback into a new adapter, gated, and make it active.

    assistant retrain                    # snapshot, preflight, train, gate, publish, promote
    assistant retrain --min-new 50       # only when 50 approvals arrived since the last adapter (cron)
    assistant retrain --min-new 50 --min-new-ratings 200   # or 200 thumbs (the preference stage learns them)
    assistant retrain --dry-run          # stop after the preflight
    assistant retrain --resume           # continue an interrupted run from its last checkpoint
    assistant retrain --force --reason "hotfix for the refund answer"

Exit codes: 0 promoted (or nothing to train, or a dry run), 10 training failed, 11 another retrain
runs, 12 the gate did not promote the new adapter; the rest as for every command.
"""

from __future__ import annotations

import signal

import click

from assistant.commands.common import TEXT, Context, settings_options
from assistant.errors import GateRejected, InputError
from assistant.formats import json_text
from assistant.text import one_line


@click.command()
@click.option("--min-new", type=click.IntRange(min=0), default=0, help="Do nothing unless this many approvals are new.")
@click.option(
    "--min-new-ratings", type=click.IntRange(min=0), default=0,
    help="Do nothing unless this many thumbs are new (with --min-new: either is enough).",
)
@click.option("--dry-run", is_flag=True, help="Stop after the preflight.")
@click.option("--resume", is_flag=True, help="Continue the newest interrupted run from its last checkpoint.")
@click.option("--warm-start", is_flag=True, help="Continue training the active adapter instead of a fresh one.")
@click.option("--force", is_flag=True, help="Promote the new adapter whatever the gate says.")
@click.option("--reason", default="", type=TEXT, help="Why --force (recorded with the version).")
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop after this many optimiser steps.")
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), help="Passes over the training set.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of text.")
@settings_options
def retrain(
    state: Context,
    min_new: int,
    min_new_ratings: int,
    dry_run: bool,
    resume: bool,
    warm_start: bool,
    force: bool,
    reason: str,
    max_steps: int | None,
    epochs: float | None,
    as_json: bool,
) -> None:
    """Fine-tune a LoRA adapter on the curated feedback; promote it if it beats the active one."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from assistant.train.retrain import Events, Options
    from assistant.train.retrain import retrain as run_retrain

    if resume and (dry_run or warm_start or min_new or min_new_ratings or max_steps is not None or epochs is not None):
        raise InputError(
            "--resume continues a run as it was configured; it takes no --dry-run, --warm-start, --min-new,"
            " --min-new-ratings, --max-steps or --epochs"
        )
    state.overrides.update({k: v for k, v in {"max_steps": max_steps, "epochs": epochs}.items() if v is not None})
    settings = state.settings
    console = Console(stderr=True, quiet=as_json, highlight=False)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}"),
        TextColumn("{task.fields[losses]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = None

    def on_status(text: str) -> None:
        if task is None:
            console.print(one_line(text), style="dim", markup=False)

    def on_preflight(preflight) -> None:  # noqa: ANN001
        for line in preflight.lines():
            console.print(f"  {line}", markup=False)

    stage = None

    def on_progress(progress) -> None:  # noqa: ANN001
        nonlocal task, stage
        losses = f"loss {progress.loss:.4f}" if progress.loss is not None else ""
        if progress.eval_loss is not None:
            losses += f"  eval loss {progress.eval_loss:.4f}"
        if task is None:
            bar.start()
        if task is None or progress.stage != stage:  # a bar per stage: SFT, then the preference stage
            stage = progress.stage
            task = bar.add_task("training" if stage == "sft" else "preference", total=progress.total, losses=losses)
        bar.update(task, completed=progress.step, total=progress.total, losses=losses)

    options = Options(
        min_new=min_new,
        min_new_ratings=min_new_ratings,
        dry_run=dry_run,
        resume=resume,
        warm_start=warm_start,
        force_reason=(reason or f"forced by {settings.user}") if force else None,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `systemctl stop`: the run is marked interrupted
    try:
        result = run_retrain(settings, state.store(), options, Events(on_status, on_preflight, on_progress))
    finally:
        signal.signal(signal.SIGTERM, previous)
        if task is not None:
            bar.stop()
    if as_json:
        click.echo(json_text(result.as_dict()))
    else:
        click.echo(one_line(result.message, 400))
        for line in _gate_lines(result.report):
            click.echo(line)
    if result.status in {"kept", "rejected"}:
        if as_json:
            raise SystemExit(GateRejected.exit_code)
        raise GateRejected(f"{result.version} was not promoted (see `assistant models show {result.version}`)")


def _interrupt(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt


def _gate_lines(report: dict) -> list[str]:
    from assistant.adapters.report import gate_lines

    return gate_lines(report)[1:] if report else []
