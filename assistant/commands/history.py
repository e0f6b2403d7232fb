"""`assistant history`: list, show, search and export the conversation log."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from assistant.commands.common import COUNT, ID, TEXT, Context, Group, settings_options
from assistant.formats import export_records, json_text, to_jsonl, to_markdown
from assistant.text import one_line, plural, terminal_safe


@click.group(cls=Group)
def history() -> None:
    """Browse and export the conversation log."""


def _user_filter(state: Context, all_users: bool) -> str | None:
    return None if all_users else state.settings.user


@history.command(name="list")
@click.option("--all-users", is_flag=True, help="Everyone's conversations, not only yours.")
@click.option("--archived", is_flag=True, help="Include archived conversations.")
@click.option("--limit", type=COUNT, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@settings_options
def list_(state: Context, all_users: bool, archived: bool, limit: int, as_json: bool) -> None:
    """Recent conversations, newest first."""
    conversations = state.store().conversations(
        user=_user_filter(state, all_users), include_archived=archived, limit=limit
    )
    for c in conversations:
        if as_json:
            click.echo(json_text({"id": c.id, "title": c.title, "user": c.user, "created_at": c.created_at,
                                  "updated_at": c.updated_at, "archived": c.archived}))
        else:
            flag = " [archived]" if c.archived else ""
            click.echo(f"{c.id:>6}  {c.updated_at[:16].replace('T', ' ')}  {one_line(c.user, 12):<12} {one_line(c.title, 60)}{flag}")
    if not conversations and not as_json:
        click.echo("no conversations yet", err=True)


@history.command()
@click.argument("conversation_id", type=ID)
@click.option("--json", "as_json", is_flag=True, help="The conversation as one JSON object.")
@settings_options
def show(state: Context, conversation_id: int, as_json: bool) -> None:
    """One conversation with every rating and correction, and every answer of a regenerated turn."""
    store = state.store()
    record = next(export_records(store, [store.conversation(conversation_id)], alternatives=True))
    if as_json:
        click.echo(json_text(record, indent=2))
    else:
        click.echo(terminal_safe(to_markdown(record)), nl=False)


@history.command()
@click.argument("text", type=TEXT)
@click.option("--all-users", is_flag=True, help="Search everyone's conversations.")
@click.option("--limit", type=COUNT, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@settings_options
def search(state: Context, text: str, all_users: bool, limit: int, as_json: bool) -> None:
    """Full-text search over message contents."""
    hits = state.store().search(text, user=_user_filter(state, all_users), limit=limit)
    for hit in hits:
        c = hit.conversation
        if as_json:
            click.echo(json_text({"conversation_id": c.id, "title": c.title, "message_id": hit.message_id,
                                  "snippet": hit.snippet}))
        else:
            click.echo(f"{c.id:>6}  {one_line(c.title, 40):<40}  {one_line(hit.snippet, 80)}")
    if not hits and not as_json:
        click.echo(f"nothing found for {one_line(text)!r}", err=True)


@history.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl", "markdown"]), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout).")
@click.option("--all-users", is_flag=True, help="Export everyone's conversations.")
@click.option("--archived", is_flag=True, help="Include archived conversations.")
@settings_options
def export(state: Context, fmt: str, output: Path | None, all_users: bool, archived: bool) -> None:
    """Export conversations as JSONL (readable by `assistant import`) or Markdown."""
    from assistant.files import write_atomic

    store = state.store()
    conversations = list(reversed(store.conversations(user=_user_filter(state, all_users), include_archived=archived)))
    render = to_jsonl if fmt == "jsonl" else to_markdown
    separator = "\n" if fmt == "jsonl" else "\n---\n\n"
    # A conversation with no question (left by an older failed `ask`) holds nothing to import back.
    records = [r for r in export_records(store, conversations) if any(m["role"] == "user" for m in r["messages"])]
    chunks = [render(record) for record in records]
    text = separator.join(chunks) + ("\n" if chunks and fmt == "jsonl" else "")
    if fmt == "markdown":
        text = terminal_safe(text)  # JSONL escapes control characters itself, and reads back the same
    empty = len(conversations) - len(records)
    if empty:
        click.echo(f"left out {plural(empty, 'conversation')} with no messages", err=True)
    if output is None:
        sys.stdout.write(text)
        return
    write_atomic(output, text)
    click.echo(f"exported {len(chunks)} conversations to {output}", err=True)
