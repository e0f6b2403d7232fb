"""The `assistant` command: thin dispatch. Heavy imports (torch, textual) happen inside commands.

Errors: an AssistantError becomes `error: <message>` on stderr and its exit code (see
assistant/errors.py and the README); anything unexpected is logged with its traceback to the
data dir's log file and reported in one line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from assistant import __version__
from assistant.commands.common import (
    ID,
    TEXT,
    Context,
    Group,
    follow_active_adapter,
    load_backend,
    settings_options,
    settings_options_without_user,
)
from assistant.commands.dataset import dataset, forget
from assistant.commands.demo import demo
from assistant.commands.doctor import doctor
from assistant.commands.eval import eval_
from assistant.commands.feedback import feedback
from assistant.commands.history import history
from assistant.commands.models import models
from assistant.commands.retrain import retrain
from assistant.commands.serve import serve
from assistant.errors import AssistantError, InputError
from assistant.formats import json_text
from assistant.logs import quiet_libraries
from assistant.text import one_line, terminal_safe

log = logging.getLogger("assistant")


@click.group(cls=Group, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="assistant")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """A local support chatbot that learns from its users' feedback.

    Without a command, opens the chat.
    """
    ctx.ensure_object(Context)
    if ctx.invoked_subcommand is None:
        ctx.invoke(chat)


@cli.command()
@settings_options
def chat(state: Context) -> None:
    """Open the chat app (Textual)."""
    from assistant.demo.teach import FirstVersion
    from assistant.tui.app import AssistantApp
    from assistant.tui.loader import backend_loader

    settings = state.settings
    store = state.store()
    app = AssistantApp(settings, store, backend_loader(settings), FirstVersion(settings, state.config_file))
    app.run()
    if app.return_code:
        sys.exit(app.return_code)


@cli.command()
@settings_options
def review(state: Context) -> None:
    """Review rated replies: approve, correct, reject (curators)."""
    from assistant.tui.review_app import ReviewApp

    ReviewApp(state.settings, state.store()).run()


@cli.command()
@click.argument("question", type=TEXT)
@click.option("--conversation", "conversation_id", type=ID, help="Continue this conversation.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of streaming text.")
@settings_options
def ask(state: Context, question: str, conversation_id: int | None, as_json: bool) -> None:
    """Ask one question without the UI; logged like a chat turn."""
    from assistant.chat import check_fits, check_message, generation_params, run_turn
    from assistant.references import References

    settings = state.settings
    check_message(question, settings)
    store = state.store()
    system_prompt = settings.system_prompt
    if conversation_id is not None:  # fail before loading a model
        conversation = store.conversation(conversation_id)
        check_message(question, settings, len(store.thread(conversation.id)))
        system_prompt = conversation.system_prompt
    backend = load_backend(settings, quiet=as_json)
    follow_active_adapter(backend, store, settings)
    check_fits(backend, system_prompt, question, generation_params(settings))  # before anything is stored
    stream_to = None if as_json else _echo_chunk
    conversation, _question, answer = run_turn(
        store,
        backend,
        settings,
        question,
        conversation_id=conversation_id,
        on_text=stream_to,
        references=References(store, settings.data_dir),
    )
    if as_json:
        click.echo(
            json_text(
                {
                    "conversation_id": conversation.id,
                    "message_id": answer.id,
                    "reply": answer.content,
                    "model": answer.model,
                    "adapter": answer.adapter,
                    "ttft_ms": answer.ttft_ms,
                    "token_count": answer.token_count,
                    "tokens_per_s": answer.tokens_per_s,
                    "finish_reason": answer.finish_reason,
                }
            )
        )
    else:
        click.echo()
        click.echo(
            f"[conversation {conversation.id}, message {answer.id}, {answer.token_count} tokens"
            + (f", {answer.tokens_per_s:.1f} tokens/s" if answer.tokens_per_s else "")
            + "]",
            err=True,
        )


def _echo_chunk(text: str) -> None:
    click.echo(terminal_safe(text), nl=False)


@cli.command(name="import")
@click.argument("file", type=click.Path(path_type=Path))
@settings_options
def import_(state: Context, file: Path) -> None:
    """Import conversations from an OpenAI chat or ShareGPT file, JSONL or JSON array (all or nothing)."""
    from assistant.formats import ImportLimits, parse_import_file

    settings = state.settings
    conversations = parse_import_file(file, ImportLimits.from_settings(settings))
    ids = state.store().import_conversations(
        conversations, user=settings.user, default_system_prompt=settings.system_prompt
    )
    rated = sum(1 for _, messages in conversations for m in messages if m.feedback)
    click.echo(f"imported {len(ids)} conversations ({rated} rated replies) from {file}")


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@settings_options_without_user
def backup(state: Context, file: Path) -> None:
    """Copy the database to FILE while chats go on (a directory: a dated file in it).

    The copy is consistent and replaces FILE only once it is complete and checked. Restore: stop
    every app, move the data dir's assistant.db-wal and -shm aside, copy FILE over assistant.db.
    """
    from datetime import datetime

    settings = state.settings
    if file.is_dir():
        file = file / f"assistant-{datetime.now().strftime('%Y%m%d-%H%M%S')}.db"
    target = file.resolve()
    if target.is_relative_to(settings.data_dir.resolve()):
        raise InputError(f"{file} is inside the data dir, where `forget` would have to erase it too; back up elsewhere")
    if not target.parent.is_dir():
        raise InputError(f"no such directory: {file.parent}")
    size = state.store().backup(target)
    click.echo(f"backed up {settings.db_path} to {file} ({size / 1e6:.1f} MB)")


cli.add_command(history)
cli.add_command(doctor)
cli.add_command(demo)
cli.add_command(feedback)
cli.add_command(dataset)
cli.add_command(forget)
cli.add_command(retrain)
cli.add_command(models)
cli.add_command(eval_)
cli.add_command(serve)


def main(argv: list[str] | None = None) -> None:
    quiet_libraries()
    try:
        cli.main(args=argv, prog_name="assistant", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AssistantError as exc:
        click.echo(f"error: {one_line(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # the one place an unexpected error becomes a line, not a traceback
        log.exception("unexpected error")
        where = _log_hint()
        click.echo(f"error: unexpected {type(exc).__name__}: {one_line(str(exc), 200)}{where}", err=True)
        sys.exit(1)


def _log_hint() -> str:
    for handler in logging.getLogger().handlers:
        filename = getattr(handler, "baseFilename", None)
        if filename:
            return f" (details in {filename})"
    return ""
