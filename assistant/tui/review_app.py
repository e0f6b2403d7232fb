"""`assistant review`: the curator's review screen as an app of its own. No model is loaded."""

from __future__ import annotations

from assistant.tui.screens.review import ReviewScreen
from assistant.tui.standalone import StandaloneApp


class ReviewApp(StandaloneApp):
    TITLE = "assistant review"

    def make_screen(self) -> ReviewScreen:
        return ReviewScreen(standalone=True)
