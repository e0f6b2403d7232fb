"""One screen of the chat app as an app of its own (`assistant review`, `assistant models`).

No model is loaded; settings and store are passed in, as for the chat app, and the screen reads them
from the app.
"""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from assistant.settings import Settings
from assistant.store import Store


class StandaloneApp(App):
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, settings: Settings, store: Store) -> None:
        super().__init__()
        self.settings = settings
        self.store = store

    def make_screen(self) -> Screen:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.push_screen(self.make_screen())
