"""`assistant models` without a subcommand: the adapter versions screen as an app of its own."""

from __future__ import annotations

from assistant.tui.screens.models import ModelsScreen
from assistant.tui.standalone import StandaloneApp


class ModelsApp(StandaloneApp):
    TITLE = "assistant models"

    def make_screen(self) -> ModelsScreen:
        return ModelsScreen(standalone=True)
