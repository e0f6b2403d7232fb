"""`assistant dataset` (build, list, stats, export) and `assistant forget` (erasure).

    assistant dataset build            # conversations/datasets/<snapshot-id>/
    assistant dataset stats            # counts and a length histogram of the newest snapshot
    assistant dataset export --format openai|sharegpt|alpaca|hf DIR
    assistant forget --conversation 12 | --user bob
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from assistant.commands.common import ID, TEXT, Context, Group, settings_options, settings_options_without_user
from assistant.curation import require_curator
from assistant.formats import json_text
from assistant.text import one_line, plural


@click.group(cls=Group)
def dataset() -> None:
    """Turn the curated log into training files, and look at them."""


def load_tokenizer(settings, status) -> Any:  # noqa: ANN001
    """The tokenizer of the model retrain will train (resolved as the chat resolves its model), and its choice."""
    from assistant.data.tokens import ChatTokenizer
    from assistant.engine.resolve import resolve_model

    def progress(message: str, fraction: float | None) -> None:
        status.update(one_line(message) + (f" {fraction:.0%}" if fraction is not None else ""))

    choice = resolve_model(settings, progress)
    status.update(f"Loading the tokenizer of {choice.name}…")
    return ChatTokenizer.load(choice.path, choice.name), choice


@dataset.command()
@click.option("--json", "as_json", is_flag=True, help="Print the manifest's counts as JSON.")
@settings_options
def build(state: Context, as_json: bool) -> None:
    """Build a dataset snapshot from the approved feedback (the same state gives the same files)."""
    from rich.console import Console

    from assistant.data.builder import BuildPolicy
    from assistant.data.snapshot import build_snapshot
    from assistant.demo.teach import samples_for

    settings = state.settings
    store = state.store()
    console = Console(stderr=True, quiet=as_json, highlight=False)
    with console.status("Resolving the model's tokenizer…") as status:
        tokenizer, choice = load_tokenizer(settings, status)
        status.update("Building the dataset…")
        snapshot = build_snapshot(
            store, settings.data_dir, BuildPolicy.from_settings(settings), tokenizer, user=settings.user,
            extra=samples_for(settings, choice),
        )  # fmt: skip
    counts = snapshot.manifest["counts"]
    if as_json:
        dropped = {"dropped_too_long": snapshot.manifest.get("dropped_too_long", [])}
        click.echo(json_text({"snapshot_id": snapshot.id, "path": str(snapshot.path), "reused": snapshot.reused, **counts, **dropped}))
        return
    rows = counts["rows"]
    click.echo(
        f"{'unchanged' if snapshot.reused else 'built'} dataset {snapshot.id}: {rows['train']} train, {rows['eval']} eval, "
        f"{rows['dpo']} DPO, {rows['kto']} KTO rows{_held_out_preference(rows)}"
    )
    click.echo(f"  {snapshot.path}")
    _print_filters(counts)
    _print_too_long(snapshot.manifest)


def _held_out_preference(rows: dict[str, int]) -> str:
    """The held-out conversations' preference rows (dpo_eval, kto_eval), for the rows line; "" for a
    snapshot built before they were kept (it dropped them: its filters count them)."""
    if "dpo_eval" not in rows:
        return ""
    return f"; held out for evaluation: {rows['dpo_eval']} DPO, {rows.get('kto_eval', 0)} KTO"


def _print_filters(counts: dict[str, Any]) -> None:
    sources = ", ".join(f"{k} {v}" for k, v in counts["sources"].items()) or "none"
    click.echo(f"  sources: {sources}")
    # preference_held_out counts the rows in dpo_eval/kto_eval (the rows line shows them); a snapshot built
    # before those files existed dropped those rows, and lists them here as filtered.
    not_filters = {"conversations_read"} | ({"preference_held_out"} if "dpo_eval" in counts["rows"] else set())
    skipped = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts["filters"].items() if v and k not in not_filters)
    click.echo(f"  filtered: {skipped or 'nothing'}")
    from assistant.data.builder import placeholder_advice

    pii = ", ".join(f"{k} {v}" for k, v in counts["pii_replaced"].items()) or "none found"
    click.echo(f"  PII replaced: {pii}")
    if allowed := ", ".join(f"{k} {v}" for k, v in counts.get("pii_allowed", {}).items()):
        click.echo(f"  PII left as written (pii_allow): {allowed}")
    if advice := placeholder_advice(counts):
        click.echo(f"  warning: {advice}")


def _print_too_long(manifest: dict[str, Any], most: int = 10) -> None:
    """The examples dropped for length, by conversation (id and title) and message: a curator may
    reject or edit them."""
    from assistant.data.builder import describe_too_long

    dropped = manifest.get("dropped_too_long", [])
    for n, entry in enumerate(dropped[:most]):
        lead = f"  dropped as longer than max_length {manifest['policy']['max_length']}: " if not n else "    "
        click.echo(lead + describe_too_long(entry))
    if len(dropped) > most:
        click.echo(f"    and {len(dropped) - most} more (manifest.json lists them all)")


@dataset.command(name="list")
@settings_options
def list_(state: Context) -> None:
    """Dataset snapshots, newest first (ERASED: held data erased since; only the record is left)."""
    records = state.store().datasets()
    for record in records:
        rows = record.counts
        mark = f"  ERASED {record.erased_at[:10]}: {one_line(record.erased_reason or 'held erased data')}; files deleted" \
            if record.erased_at else ""
        click.echo(
            f"{record.id}  {record.created_at[:16].replace('T', ' ')}  {rows.get('train', 0):>6} train "
            f"{rows.get('eval', 0):>5} eval{mark}"
        )
    if not records:
        click.echo("no dataset snapshots yet (assistant dataset build)", err=True)


@dataset.command()
@click.argument("snapshot_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest's counts and token statistics.")
@settings_options
def stats(state: Context, snapshot_id: str | None, as_json: bool) -> None:
    """Counts and the length histogram of a snapshot (default: the newest)."""
    from assistant.data.snapshot import find_snapshot, read_manifest

    record, path = find_snapshot(state.store(), state.settings.data_dir, snapshot_id)
    manifest = read_manifest(path)
    if as_json:
        click.echo(json_text({"snapshot_id": record.id, "counts": manifest["counts"], "tokens": manifest["tokens"]}))
        return
    counts = manifest["counts"]
    rows, conversations = counts["rows"], counts["conversations"]
    click.echo(f"dataset {record.id}  ({path})" + ("  ERASED: includes data erased since" if record.erased_at else ""))
    click.echo(
        f"  rows: {rows['train']} train ({plural(conversations['train'], 'conversation')}), "
        f"{rows['eval']} eval ({plural(conversations['eval'], 'conversation')}), {rows['dpo']} DPO, {rows['kto']} KTO"
        + _held_out_preference(rows)
    )
    _print_filters(counts)
    _print_too_long(manifest)
    for split in ("train", "eval"):
        tokens = manifest["tokens"][split]
        if tokens.get("count"):
            click.echo(
                f"  {split} tokens: min {tokens['min']}, median {tokens['p50']}, p90 {tokens['p90']}, "
                f"p99 {tokens['p99']}, max {tokens['max']} (max_length {manifest['policy']['max_length']})"
            )
    histogram = manifest["tokens"]["train"].get("histogram") or []
    if histogram:
        click.echo(length_plot(histogram, "tokens per training example"))


def length_plot(histogram: list[list[int]], title: str, width: int = 72) -> str:
    import plotext as plt

    from assistant.text import integer_ticks

    labels = [f"{lo}-{hi - 1}" for lo, hi, _ in histogram]
    values = [count for _, _, count in histogram]
    plt.clear_figure()
    plt.theme("clear")
    plt.plotsize(width, max(8, 2 * len(labels) + 4))
    plt.bar(labels, values, orientation="h", width=0.4)
    plt.xticks(integer_ticks(0, max(values, default=1)))
    plt.title(title)
    plt.xlabel("examples")
    return plt.uncolorize(plt.build())


@dataset.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["openai", "sharegpt", "alpaca", "hf"]), required=True)
@click.option("--snapshot", "snapshot_id", help="Snapshot id or prefix (default: the newest).")
@settings_options
def export(state: Context, out_dir: Path, fmt: str, snapshot_id: str | None) -> None:
    """Write a snapshot in a format other tools read: OpenAI, ShareGPT, Alpaca, Hugging Face datasets."""
    from assistant.data.export import export_snapshot
    from assistant.data.snapshot import find_snapshot

    record, path = find_snapshot(state.store(), state.settings.data_dir, snapshot_id)
    written = export_snapshot(path, fmt, out_dir)
    summary = ", ".join(f"{name} {count}" for name, count in written.items())
    click.echo(f"exported dataset {record.id} as {fmt} to {out_dir}: {summary}")


@click.command()
@click.option("--conversation", "conversation_id", type=ID, help="Erase this conversation.")
@click.option("--user", "user", type=TEXT, help="Erase every conversation of this user, and their ratings.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@settings_options_without_user
def forget(state: Context, conversation_id: int | None, user: str | None, yes: bool) -> None:
    """Erase conversations for good; dataset snapshots that included them are marked."""
    from assistant.errors import InputError

    if (conversation_id is None) == (user is None):
        raise click.UsageError("give --conversation ID or --user NAME (one of them)")
    actor = require_curator(state.settings)
    store = state.store()
    if conversation_id is not None:
        what = f"conversation {conversation_id} ({one_line(store.conversation(conversation_id).title, 40)})"
    else:
        n = len(store.conversations(user=user, include_archived=True))
        what = f"{n} conversations of {one_line(user)} and their ratings"
    if not yes:
        if not click.get_text_stream("stdin").isatty():
            raise InputError("forget asks for confirmation; pass --yes to run it without a terminal")
        click.confirm(f"Erase {what}? This cannot be undone", abort=True)
    from assistant.erasure import forget as erase

    outcome = erase(state.settings, store, actor, conversation_id=conversation_id, user=user)
    erasure = outcome.erasure
    click.echo(f"erased {plural(erasure.conversations, 'conversation')} ({plural(erasure.messages, 'message')})")
    if erasure.datasets_marked:
        click.echo(
            f"{plural(len(erasure.datasets_marked), 'dataset snapshot')} included erased data: "
            + ", ".join(erasure.datasets_marked)
            + ". Marked ERASED, files deleted; the next build leaves the data out."
        )
    if outcome.adapters_redacted:
        click.echo(f"probe prompts redacted in adapter {', '.join(outcome.adapters_redacted)}")
    if outcome.leftovers_removed:
        click.echo(f"removed what killed builds left: {', '.join(outcome.leftovers_removed)}")
    if outcome.log_lines_removed:
        click.echo(f"removed {plural(outcome.log_lines_removed, 'log line')} that held erased data")
    for warning in outcome.warnings:
        click.echo(f"warning: {warning}", err=True)
