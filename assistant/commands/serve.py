"""`assistant serve`: one vLLM server for the whole team's chats (see assistant/server/process.py).

    assistant serve                              # http://127.0.0.1:8000/v1
    assistant serve --host 0.0.0.0 --port 8000   # reachable from other hosts
    assistant serve -- --tensor-parallel-size 2  # anything after -- goes to vLLM
    assistant serve --install-only               # install vLLM's virtualenv and exit
"""

from __future__ import annotations

import signal
import socket

import click

from assistant.commands.common import Context, settings_options
from assistant.errors import ModelError, ServerError
from assistant.text import one_line


class _Stopped(Exception):
    """SIGTERM arrived (systemctl stop): stop the server, exit 0."""


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--install-only", is_flag=True, help="Install vLLM's own virtualenv (cached) and exit.")
@click.argument("vllm_args", nargs=-1, type=click.UNPROCESSED)
@settings_options
def serve(state: Context, host: str, port: int, install_only: bool, vllm_args: tuple[str, ...]) -> None:
    """Serve the base model and the adapters to every chat with vLLM (Ctrl+C or SIGTERM stops it)."""
    from assistant.server import environment

    python = environment.ensure(lambda text: click.echo(text, err=True))
    if install_only:
        click.echo(str(python))
        return
    settings = state.settings
    _check_port(host, port)
    choice = _resolve(settings)
    from assistant.server.process import Server, plan

    gpu = environment.has_nvidia_gpu()
    chosen = plan(settings, python, choice.path, choice.name, host=host, port=port, gpu=gpu, extra=vllm_args)
    if not settings.server_api_key_env and host not in {"127.0.0.1", "localhost", "::1"}:
        click.echo(
            f"warning: listening on {host} without an API key: anyone who reaches port {port} can use the model "
            "and load or unload adapters. Set server_api_key_env (the chats send the same key).",
            err=True,
        )
    click.echo(f"Starting vLLM {environment.VLLM_VERSION} for {choice.name} ({chosen.precision}); its log follows.", err=True)
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    server = Server(chosen)
    try:
        _serve(state, server, host, port)
    except _Stopped:
        click.echo("Stopping the model server…", err=True)
    except KeyboardInterrupt:
        click.echo("Stopping the model server…", err=True)
        raise
    finally:
        # A second Ctrl+C or SIGTERM while it stops must not cut the stop short (and orphan vLLM's processes).
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            server.stop()
        finally:
            signal.signal(signal.SIGINT, interrupt)
            signal.signal(signal.SIGTERM, previous)


def _raise_stopped(signum, frame) -> None:  # noqa: ANN001
    raise _Stopped


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror}", hint="choose another --port") from None


def _resolve(settings):  # noqa: ANN001, ANN202
    from rich.console import Console

    from assistant.engine.resolve import resolve_model

    console = Console(stderr=True, highlight=False)
    with console.status("Resolving the model…") as status:

        def progress(message: str, fraction: float | None) -> None:
            status.update(one_line(message) + (f" {fraction:.0%}" if fraction is not None else ""))

        return resolve_model(settings, progress)


def _serve(state: Context, server, host: str, port: int) -> None:  # noqa: ANN001
    from assistant.adapters import serving as adapters_on_server
    from assistant.engine.remote import ServerAPI, api_key
    from assistant.server.process import serving, url_for

    settings = state.settings
    local = url_for({"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host), port)
    api = ServerAPI(local, key=api_key(settings), timeout=settings.server_timeout)
    try:
        server.wait_ready(lambda: serving(api))
    finally:
        api.close()
    active = state.store().active_adapter()
    if active is not None:  # loaded before the chats are told where to go
        try:
            warning = adapters_on_server.prepare(settings.replace(server_url=local), active.version)
            click.echo(f"warning: {one_line(warning)}" if warning else f"Loaded the active adapter {active.version}.", err=True)
        except ModelError as exc:
            click.echo(f"warning: {one_line(str(exc))}; chats answer with the base model until another version is promoted", err=True)
    url = server.plan.url
    click.echo(f"\nServing {server.plan.served_name} at {url}", err=True)
    click.echo(f"Point chats at it:  ASSISTANT_SERVER_URL={url} assistant chat", err=True)
    click.echo(f'   (or in config.toml:  server_url = "{url}")\n', err=True)
    code = server.process.wait()
    if code != 0:
        raise ServerError(f"the model server stopped with exit code {code} (its log above says why)")
