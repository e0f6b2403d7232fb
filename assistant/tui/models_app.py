"""The adapter versions screen as an app of its own (for a command such as `assistant models`).
No model is loaded; settings and store are passed in, as for the chat app.
"""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from assistant.settings import Settings
from assistant.store import Store
from assistant.tui.screens.models import ModelsScreen


class ModelsApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "assistant models"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, settings: Settings, store: Store) -> None:
        super().__init__()
        self.settings = settings
        self.store = store

    def on_mount(self) -> None:
        self.push_screen(ModelsScreen(standalone=True))
