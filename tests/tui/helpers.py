"""Driving the chat app in tests: a host with injected store and model, and polling helpers."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot

from assistant.engine.base import Backend
from assistant.settings import Settings
from assistant.store import Store
from assistant.tui.app import AssistantApp
from assistant.tui.loader import BackendLoader
from assistant.tui.screens.dialogs import Confirm
from assistant.tui.screens.models import ModelsScreen


def make_app(settings: Settings, store: Store, backend: Backend | BackendLoader) -> AssistantApp:
    """The app with a loaded backend, or with a loader function (to test loading itself)."""
    loader = backend if not isinstance(backend, Backend) else (lambda progress: backend)
    return AssistantApp(settings, store, loader)


async def wait_for(pilot: Pilot, condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)


async def wait_loaded(pilot: Pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.backend is not None, what="the model to load")
    await pilot.pause()


async def send(pilot: Pilot, text: str) -> None:
    app = pilot.app
    app.chat.composer.focus()
    app.chat.composer.insert(text)
    await pilot.press("enter")
    await pilot.pause()


async def wait_reply_done(pilot: Pilot, timeout: float = 30.0) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.chat.active is None and app.chat.waiting is None, timeout, "the reply")
    await pilot.pause()


def notifications(app, severity: str | None = None) -> list[str]:  # noqa: ANN001
    return [n.message for n in app._notifications if severity is None or n.severity == severity]


async def models_screen(pilot) -> ModelsScreen:  # noqa: ANN001
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ModelsScreen), what="the models screen")
    await pilot.pause()
    return pilot.app.screen


async def confirm(pilot, answer: str = "y") -> None:  # noqa: ANN001
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, Confirm), what="the confirmation")
    await pilot.press(answer)
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, Confirm), what="the confirmation to close")
    await pilot.pause()
