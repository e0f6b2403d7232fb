"""`assistant review`: the curator's review screen as an app of its own. No model is loaded.

Settings and store are passed in, as for the chat app; the screen reads them from the app.
"""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from assistant.settings import Settings
from assistant.store import Store
from assistant.tui.screens.review import ReviewScreen


class ReviewApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "assistant review"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, settings: Settings, store: Store) -> None:
        super().__init__()
        self.settings = settings
        self.store = store

    def on_mount(self) -> None:
        self.push_screen(ReviewScreen(standalone=True))
