"""What every command shares: the context (settings, store), the common options, model loading."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import re
from functools import wraps
from pathlib import Path
from typing import Any

import click

from assistant.errors import InputError
from assistant.logs import setup_logging
from assistant.settings import Resolved, Settings, load_settings
from assistant.text import is_utf8, one_line


@dataclass
class Context:
    """What every command gets: the resolved settings and, on first use, the store."""

    data_dir: str | None = None
    config_file: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    verbose: bool = False
    _resolved: Resolved | None = None
    _store: Any = None

    @property
    def resolved(self) -> Resolved:
        if self._resolved is None:
            self._resolved = load_settings(
                data_dir=self.data_dir, config_file=self.config_file, overrides=self.overrides
            )
            setup_logging(self._resolved.settings.log_path, verbose=self.verbose)
        return self._resolved

    @property
    def settings(self) -> Settings:
        return self.resolved.settings

    def store(self):
        if self._store is None:
            from assistant.store import Store

            self._store = Store.open(self.settings.db_path)
        return self._store


class Text(click.ParamType):
    """A text argument: refused (InputError) when it is not valid UTF-8. Python reads such bytes in
    argv as lone surrogates, which no database write or UTF-8 output accepts."""

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not is_utf8(value):
            raise InputError(f"{_param_name(param)} is not valid UTF-8 text")
        return value


class Number(click.ParamType):
    """A whole number in [minimum, 2**63 - 1], what SQLite stores: an id or a count. One out of range
    (2**63, a number of 5,000 digits) is an InputError, not a database error."""

    name = "integer"
    MAX = 2**63 - 1

    def __init__(self, minimum: int = -(2**63)) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            self.fail(f"{value!r} is not a valid integer", param, ctx)
        shown = text if len(text) <= 24 else f"{text[:12]}… ({len(text)} characters)"
        digits = text.lstrip("+-").lstrip("0")
        if len(digits) > 19 or not self.minimum <= int(text) <= self.MAX:
            raise InputError(f"{_param_name(param)}: {shown} is out of range ({self.minimum} to {self.MAX})")
        return int(text)


def _param_name(param: click.Parameter | None) -> str:
    if param is None:
        return "an argument"
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return param.human_readable_name


ID = Number()
COUNT = Number(minimum=1)
TEXT = Text()


def settings_options(command: Callable) -> Callable:
    """Options every command takes; they override config files and ASSISTANT_* variables."""
    return _with_settings_options(command, acting_user=True)


def settings_options_without_user(command: Callable) -> Callable:
    """The same, for a command whose own `--user` names someone else (`forget --user NAME`): who acts
    is then ASSISTANT_USER, the config's `user`, or the OS login name."""
    return _with_settings_options(command, acting_user=False)


_LOGIN = "default: the OS login name"
_USER_HELP = {  # what --user means, by command (module.function), else by module
    "assistant.cli.chat": f"Who is chatting: the conversations and ratings are theirs ({_LOGIN}).",
    "assistant.cli.ask": f"Who is asking: the conversation is theirs ({_LOGIN}).",
    "assistant.cli.review": f"The curator reviewing; one of `curators` when that is set ({_LOGIN}).",
    "assistant.cli.import_": f"Whose conversations the imported ones become ({_LOGIN}).",
    "assistant.commands.feedback": f"The curator acting, named in the audit log; one of `curators` when that is set ({_LOGIN}).",
    "assistant.commands.history": f"Whose conversations ({_LOGIN}).",
    "assistant.commands.dataset": f"Who builds the snapshot, recorded with it ({_LOGIN}).",
    "assistant.commands.retrain": f"Who starts the retrain, recorded with the run and the version ({_LOGIN}).",
    "assistant.commands.models": f"Who acts, recorded in the version's history ({_LOGIN}).",
    "assistant.commands.eval": f"Who runs the evaluation, recorded with its results ({_LOGIN}).",
}
_READ_ONLY = f"Who is looking: nothing is recorded ({_LOGIN})."
_USER_HELP |= {
    f"assistant.commands.{name}": _READ_ONLY
    for name in ("models.list_", "models.show", "models.screen", "dataset.list_", "dataset.stats", "dataset.export", "feedback.list_")
}


def user_help(command: Callable) -> str:
    """The --user option's help for a command: what the user is for there."""
    module = command.__module__
    return _USER_HELP.get(f"{module}.{command.__name__}") or _USER_HELP.get(module) or f"Who runs the command ({_LOGIN})."


def _with_settings_options(command: Callable, *, acting_user: bool) -> Callable:
    @wraps(command)
    def wrapper(ctx: click.Context, data_dir, config_file, model, adapter, verbose, **kwargs):  # noqa: ANN001
        user = kwargs.pop("acting_user", None)
        state = ctx.ensure_object(Context)
        state.data_dir = str(data_dir) if data_dir else state.data_dir
        state.config_file = str(config_file) if config_file else state.config_file
        state.overrides.update({k: v for k, v in {"model": model, "adapter": adapter, "user": user}.items() if v})
        state.verbose = state.verbose or verbose
        return command(state, **kwargs)

    decorated = click.pass_context(wrapper)
    decorated = click.option("-v", "--verbose", is_flag=True, help="Log to stderr too.")(decorated)
    if acting_user:
        decorated = click.option("--user", "acting_user", type=TEXT, help=user_help(command))(decorated)
    decorated = click.option("--adapter", help="LoRA adapter directory to apply.")(decorated)
    decorated = click.option("--model", help="Hugging Face id or local directory of the base model.")(decorated)
    decorated = click.option(
        "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="Config file."
    )(decorated)
    return click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data dir.")(decorated)


def load_backend(settings: Settings, *, quiet: bool = False):  # noqa: ANN201
    """The model for a command, with progress on stderr: the configured model server, else the model
    resolved and loaded in this process."""
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet, highlight=False)
    with console.status("Resolving the model…") as status:

        def progress(message: str, fraction: float | None) -> None:
            suffix = f" {fraction:.0%}" if fraction is not None else ""
            status.update(f"{one_line(message)}{suffix}")

        if settings.server_url:
            from assistant.engine.remote import RemoteBackend

            backend = RemoteBackend.connect(settings, progress)
        else:
            from assistant.engine.local import open_backend

            backend = open_backend(settings, progress)
    if backend.identity.notice:
        console.print(backend.identity.notice, style="dim", markup=False)
    return backend


def follow_active_adapter(backend, store, settings: Settings) -> None:  # noqa: ANN001
    """Serve the registry's active version, as the chat does, unless the `adapter` setting pins one.

    A version that cannot be loaded is reported and the base model answers.
    """
    if settings.adapter:
        return
    active = store.active_adapter()
    if active is None:
        return
    from assistant.errors import ModelError

    try:
        backend.swap_adapter(active.version, settings.layout.version(active.version))
    except ModelError as exc:
        click.echo(f"warning: {one_line(str(exc))}; answering with the base model", err=True)


class Group(click.Group):
    """A command group whose list of commands shows each one's whole first paragraph, wrapped, not cut
    off at about 45 characters with "..." (click's default)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            text = command.short_help or (command.help or "").split("\n\n")[0]
            rows.append((name, " ".join(text.split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
