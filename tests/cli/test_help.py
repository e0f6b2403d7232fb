"""`--help` everywhere: descriptions whole, and `--user` said for what it does in each command."""

from __future__ import annotations

import click

from assistant.cli import cli as root


def every_command(group: click.Group = root, path: tuple[str, ...] = ()):  # noqa: ANN201
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from every_command(command, (*path, name))


def test_command_lists_show_whole_descriptions(cli) -> None:
    groups = [()] + [path for path, command in every_command() if isinstance(command, click.Group)]
    for path in groups:
        result = cli(*path, "--help")
        assert result.code == 0, result.err
        listed = result.out.split("Commands:\n", 1)[1]
        assert "..." not in listed, (path, listed)
    backup = cli("--help").out
    assert "backup    Copy the database to FILE while chats go on (a directory: a dated\n            file in it)." in backup


def test_user_option_says_what_the_user_is_for_in_each_command() -> None:
    helps = {}
    for path, command in every_command():
        option = next((p for p in command.params if "--user" in getattr(p, "opts", ())), None)
        if option is not None:
            helps[" ".join(path)] = option.help
    assert helps["chat"].startswith("Who is chatting")
    assert helps["ask"].startswith("Who is asking")
    assert helps["review"].startswith("The curator reviewing")
    assert helps["feedback approve"].startswith("The curator acting")
    assert helps["retrain"].startswith("Who starts the retrain")
    assert helps["models promote"].startswith("Who acts")
    assert helps["models list"].startswith("Who is looking")
    assert helps["forget"].startswith("Erase every conversation of this user")  # its own --user: whose
    assert all("Who is chatting" not in text for name, text in helps.items() if name != "chat")
