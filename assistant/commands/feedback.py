"""`assistant feedback`: scripted curation, the same rules as the review screen.

    assistant feedback list --rating down --status pending
    assistant feedback approve 12 15 | --all-up --since 2026-11-01
    assistant feedback reject 13
    assistant feedback correct 14 --text "The better answer" | --file answer.md
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from assistant.commands.common import COUNT, ID, TEXT, Context, Group, settings_options
from assistant.chat import check_length
from assistant.curation import require_curator
from assistant.errors import InputError
from assistant.formats import json_text
from assistant.store import REVIEW_STATUSES, ReviewFilter, ReviewItem
from assistant.text import one_line, plural


@click.group(cls=Group)
def feedback() -> None:
    """List rated replies and approve, reject or correct them (curators)."""


def parse_since(value: str | None) -> str | None:
    """An ISO date or time (local time unless it says otherwise), as the store writes times."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--since: {value!r} is not a date such as 2026-11-01 or 2026-11-01T09:30") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    from assistant.store.db import format_time

    return format_time(moment.astimezone(timezone.utc))


def item_json(item: ReviewItem) -> dict:
    return {
        "id": item.message.id,
        "conversation_id": item.message.conversation_id,
        "conversation_title": item.conversation_title,
        "ups": item.ups,
        "downs": item.downs,
        "disagreement": item.disagreement,
        "raters": list(item.raters),
        "rated_at": item.rated_at,
        "status": item.status,
        "reply": item.message.content,
        "proposed_correction": item.proposed_correction,
        "answer": item.answer,
        "source": item.source,
        "tags": list(item.tags),
        "reasons": list(item.reasons),
        "curator": item.curator,
        "model": item.message.model,
        "adapter": item.message.adapter,
    }


def item_line(item: ReviewItem) -> str:
    votes = f"▲{item.ups} ▼{item.downs}" + (" ⚠" if item.disagreement else "  ")
    fix = " ✎" if item.proposed_correction or item.source == "edit" else "  "
    return (
        f"{item.message.id:>7}  {votes}{fix} {item.status:<8}  {one_line(item.conversation_title, 30):<30}  "
        f"{one_line(item.message.content, 60)}"
    )


@feedback.command(name="list")
@click.option("--rating", type=click.Choice(["up", "down"]), help="Replies with a thumbs-up, or with a thumbs-down.")
@click.option("--status", type=click.Choice([*REVIEW_STATUSES, "all"]), default="pending", show_default=True)
@click.option("--tag", type=TEXT, help="A rater's reason tag or a curator's tag.")
@click.option("--rater", type=TEXT, help="Rated by this user.")
@click.option("--model-version", type=TEXT, help="Written by this adapter (or model).")
@click.option("--since", help="Rated on or after this date/time (ISO).")
@click.option("--search", type=TEXT, help="Words in the conversation.")
@click.option("--limit", type=COUNT, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@settings_options
def list_(state: Context, rating, status, tag, rater, model_version, since, search, limit, as_json) -> None:  # noqa: ANN001
    """Rated replies: thumbs-down first, then thumbs-up (⚠: raters disagree, ✎: a correction)."""
    store = state.store()
    filters = ReviewFilter(
        status=None if status == "all" else status,
        rating=rating,
        tag=tag,
        rater=rater,
        model_version=model_version,
        since=parse_since(since),
        search=search,
    )
    items = store.review_queue(filters, limit=limit)
    for item in items:
        click.echo(json_text(item_json(item)) if as_json else item_line(item))
    if not as_json:
        counts = store.curation_counts()
        click.echo(
            f"{len(items)} shown; {counts.pending} pending, {counts.approved} approved, {counts.rejected} rejected",
            err=True,
        )


@feedback.command()
@click.argument("ids", nargs=-1, type=ID)
@click.option("--all-up", is_flag=True, help="Every pending reply with a thumbs-up and no thumbs-down.")
@click.option("--since", help="With --all-up: rated on or after this date/time (ISO).")
@click.option("--yes", is_flag=True, help="Approve thumbs-down replies without a correction too (they train as written).")
@settings_options
def approve(state: Context, ids: tuple[int, ...], all_up: bool, since: str | None, yes: bool) -> None:
    """Approve replies for training (a proposed correction if there is one, else the reply as it is).

    A reply rated not helpful with no correction would teach the model that very reply: it is
    approved only with --yes (or a yes at the prompt).
    """
    curator = require_curator(state.settings)
    if bool(ids) == all_up:
        raise click.UsageError("give reply ids or --all-up (not both)")
    if since and not all_up:
        raise click.UsageError("--since goes with --all-up")
    store = state.store()
    unhelpful = [] if all_up else [
        i for i in map(store.review_item, ids) if i.downs and not i.proposed_correction and i.source != "edit"
    ]
    if unhelpful and not yes:
        named = ", ".join(str(i.message.id) for i in unhelpful)
        what = f"{plural(len(unhelpful), 'reply', 'replies')} {named} rated not helpful, with no correction"
        if not click.get_text_stream("stdin").isatty():
            raise InputError(
                f"{what}: approving trains the model on {'it' if len(unhelpful) == 1 else 'them'} as written",
                hint="add a correction (`assistant feedback correct ID --text ...`) or pass --yes",
            )
        click.confirm(f"{what.capitalize()}: train on {'it' if len(unhelpful) == 1 else 'them'} as written?", abort=True)
    items = store.approve_all_up(curator, since=parse_since(since)) if all_up else store.approve(ids, curator)
    corrected = sum(item.source == "correction" for item in items)
    if not items:
        click.echo("nothing to approve")
        return
    click.echo(f"approved {plural(len(items), 'reply', 'replies')} ({corrected} with the rater's correction)")


@feedback.command()
@click.argument("ids", nargs=-1, type=ID, required=True)
@settings_options
def reject(state: Context, ids: tuple[int, ...]) -> None:
    """Never train on these replies."""
    curator = require_curator(state.settings)
    items = state.store().reject(ids, curator)
    click.echo(f"rejected {plural(len(items), 'reply', 'replies')}")


@feedback.command()
@click.argument("message_id", type=ID)
@click.option("--text", type=TEXT, help="The ideal answer.")
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path), help="Read the ideal answer from a file.")
@settings_options
def correct(state: Context, message_id: int, text: str | None, file: Path | None) -> None:
    """Save the ideal answer to a reply (approved; the reply itself is kept)."""
    curator = require_curator(state.settings)
    if (text is None) == (file is None):
        raise click.UsageError("give --text or --file (one of them)")
    if file is not None:
        from assistant.jsonl import read_text

        # At most 4 bytes a character: a longer file cannot be an answer the chat would accept.
        text = read_text(file, 4 * state.settings.max_message_chars, what="max_message_chars")
    check_length(text or "", state.settings)
    item = state.store().edit(message_id, curator, text or "")
    click.echo(f"saved the corrected answer of reply {item.message.id} ({len(item.answer or '')} characters)")


@feedback.command()
@settings_options
def undo(state: Context) -> None:
    """Undo your last curation action (a bulk approval as a whole)."""
    curator = require_curator(state.settings)
    ids = state.store().undo(curator)
    click.echo(f"undid the last action on {plural(len(ids), 'reply', 'replies')}" if ids else "nothing to undo")
