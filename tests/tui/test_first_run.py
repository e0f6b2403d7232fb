"""The first run: `assistant chat` with no model builds the demo model. Quitting meanwhile (ctrl+q,
SIGTERM, the terminal closing) ends the app and its model process within 2 s, with no traceback and
no leaked semaphore, and the next start builds the model from the beginning.

The SIGTERM and hang-up cases drive the real command in a pseudo-terminal; ctrl+q is pressed
through Pilot."""

from __future__ import annotations

import multiprocessing
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.tui.loader import backend_loader
from assistant.tui.widgets.status import StatusBar
from tests.tui.helpers import make_app, wait_for

REPO = Path(__file__).resolve().parents[2]
QUIT_WITHIN_S = 2.0


class Terminal:
    """`assistant chat` in a pseudo-terminal, in its own process group, with a fresh data dir."""

    def __init__(self, data_dir: Path) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
        environ.update(
            HF_HUB_OFFLINE="1",
            PYTHONPATH=str(REPO),
            TERM="xterm-256color",
            XDG_CONFIG_HOME=str(data_dir.parent / "xdg-config"),
            ASSISTANT_DATA_DIR=str(data_dir),
            ASSISTANT_HUB_MODEL="",  # no hub model: the demo model is built
            ASSISTANT_FALLBACK_MODEL="demo",  # nor SmolLM2 from the package index
            ASSISTANT_DEMO_RECIPE="tiny",
            ASSISTANT_USER="ann",
        )
        self.fd, tty = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assistant", "chat"],
            cwd=data_dir.parent,
            env=environ,
            stdin=tty,
            stdout=tty,
            stderr=tty,
            start_new_session=True,
        )
        os.close(tty)
        self.output = bytearray()

    def read(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return  # every writer is gone
            if not chunk:
                return
            self.output += chunk

    def wait_until(self, condition, timeout: float, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            self.read(0.05)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        # Zombies of the group (reaped by init, or by us below) count as gone.
        return any(_state(pid) not in {None, "Z"} for pid in _group_members(self.process.pid))

    def close(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        os.close(self.fd)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def _state(pid: int) -> str | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def building(models: Path) -> bool:
    """A build is under way: its staging directory exists."""
    return models.is_dir() and any(p.is_dir() and "." in p.name for p in models.glob("demo-*"))


def built(models: Path) -> list[Path]:
    return [p for p in models.glob("demo-*") if (p / "build.json").is_file()]


def quit_while_building(data_dir: Path, how: str) -> None:
    """Start `assistant chat` with no model, and once the demo model builds, quit it `how`: it and its
    model process are gone within 2 s, cleanly, and no partial model is left."""
    models = data_dir / "models"
    terminal = Terminal(data_dir)
    try:
        terminal.wait_until(lambda: building(models), 120, "the demo model build to start")
        terminal.read(1.0)  # well into the build
        assert not built(models)
        sent = time.monotonic()
        if how == "sigterm":
            terminal.process.send_signal(signal.SIGTERM)
        else:  # the terminal closes: the shell passes SIGHUP to the job's process group
            os.killpg(terminal.process.pid, signal.SIGHUP)
        while terminal.group_alive() and time.monotonic() - sent < QUIT_WITHIN_S:
            terminal.read(0.05)
        took = time.monotonic() - sent
        assert not terminal.group_alive(), f"the app or its model process still runs {took:.1f} s after {how}"
        assert terminal.process.wait(1) == 0
        terminal.read(0.5)
        said = terminal.output.decode("utf-8", "replace")
        assert "Traceback" not in said and "leaked semaphore" not in said, said[-2000:]
        assert not built(models) and not building(models), "a stopped build leaves no partial model behind"
    finally:
        terminal.close()


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups and /proc")


def test_sigterm_while_the_demo_model_builds_exits_at_once_and_the_next_start_builds_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    models = data_dir / "models"
    quit_while_building(data_dir, "sigterm")

    again = Terminal(data_dir)
    try:
        again.wait_until(lambda: bool(built(models)), 600, "the demo model to be built on the next start")
        again.wait_until(lambda: b"last reply" in again.output, 120, "the model to load")
        os.write(again.fd, b"\x11")  # ctrl+q
        again.wait_until(lambda: again.process.poll() is not None, 10, "the app to quit")
        assert again.process.returncode == 0
        assert [p.name for p in models.iterdir() if not p.name.startswith(".")] == [built(models)[0].name]
    finally:
        again.close()


def test_the_terminal_closing_while_the_demo_model_builds_ends_the_app_and_the_build(tmp_path: Path) -> None:
    quit_while_building(tmp_path / "data", "hangup")


async def test_ctrl_q_while_the_demo_model_builds_stops_the_build(settings, store) -> None:  # noqa: ANN001
    app = make_app(settings, store, backend_loader(settings))
    async with app.run_test(size=(120, 40)) as pilot:
        status = app.chat.query_one(StatusBar)
        await wait_for(
            pilot, lambda: "training" in status.loading_text, timeout=120, what="the demo model to train"
        )
        await pilot.press("ctrl+q")
        pressed = time.monotonic()
    while multiprocessing.active_children() and time.monotonic() - pressed < QUIT_WITHIN_S:
        time.sleep(0.05)
    assert not multiprocessing.active_children(), "the model process goes on building after ctrl+q"
    assert not building(settings.models_dir) and not built(settings.models_dir)
