"""What every full screen of the app shares: the app's store and settings, and failures as notifications."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from textual.screen import Screen

from assistant.errors import AssistantError
from assistant.text import one_line


class AppScreen(Screen):
    """A screen of an app that carries `settings` and `store` (the chat app, or a standalone one)."""

    @property
    def store(self):  # noqa: ANN201
        return self.app.store

    @property
    def settings(self):  # noqa: ANN201
        return self.app.settings

    @contextmanager
    def reported(self, doing: str) -> Iterator[None]:
        """An expected failure (database busy or unwritable, a conflicting change, ...) becomes a
        notification, not a crash."""
        try:
            yield
        except AssistantError as exc:
            self.notify(f"{doing}: {one_line(str(exc), 200)}", severity="error", markup=False)
