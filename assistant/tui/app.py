"""The chat app. Settings, store and model loader are passed in; nothing is created at import time.

The model loads in a thread worker while the app is already usable: history can be browsed and
questions typed; the status bar shows the loading progress and a banner says when the demo model
is in use.
"""

from __future__ import annotations

import gc
import logging

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.widgets import Static

from assistant.engine.base import Backend
from assistant.engine.resolve import DEMO_NOTICE
from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.store import Store
from assistant.text import one_line
from assistant.tui.loader import BackendLoader
from assistant.tui.messages import LoadProgressed, ModelFailed, ModelLoaded
from assistant.tui.screens.chat import ChatScreen
from assistant.tui.screens.help import HelpScreen
from assistant.tui.screens.review import ReviewScreen
from assistant.tui.widgets.status import StatusBar

log = logging.getLogger(__name__)


class AssistantApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "assistant"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+n", "new_conversation", "New", priority=True),
        Binding("ctrl+r", "review", "Review", show=False),
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(self, settings: Settings, store: Store, loader: BackendLoader) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.loader = loader
        self.backend: Backend | None = None
        self.load_error: str | None = None

    def on_mount(self) -> None:
        self.push_screen(ChatScreen())
        self.call_after_refresh(self._settle)

    def _settle(self) -> None:
        """After the first frame: start loading the model, and keep garbage collection pauses short.

        What exists now lives as long as the app; freezing it keeps the collector from walking it
        again and again, and full collections come rarer (they took ~100 ms on a 2-core machine, and
        key presses waited).
        """
        gc.freeze()
        gc.set_threshold(700, 10, 200)  # full collections rarer than the default 10
        self._load_model()

    async def action_quit(self) -> None:
        self.chat.save_reply_in_progress()  # a reply being written is kept, as far as it got
        self.exit()

    def on_unmount(self) -> None:
        if self.backend is not None:
            self.backend.close()

    @property
    def chat(self) -> ChatScreen:
        return next(s for s in self.screen_stack if isinstance(s, ChatScreen))

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_model(self) -> None:
        def progress(text: str, fraction: float | None) -> None:
            self.post_message(LoadProgressed(text, fraction))

        try:
            backend = self.loader(progress)
        except AssistantError as exc:
            self.post_message(ModelFailed(str(exc)))
            return
        except Exception as exc:  # the app stays usable for browsing; the log has the details
            log.exception("loading the model failed")
            self.post_message(ModelFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(ModelLoaded(backend, DEMO_NOTICE if backend.identity.is_demo else None))

    def on_load_progressed(self, event: LoadProgressed) -> None:
        self.chat.query_one(StatusBar).loading(event.text, event.fraction)

    async def on_model_loaded(self, event: ModelLoaded) -> None:
        self.backend = event.backend
        chat = self.chat
        chat.query_one(StatusBar).loaded(event.backend.identity)
        banner = chat.query_one("#demo-banner", Static)
        banner.update(event.notice or "")
        banner.display = event.notice is not None
        await chat.model_ready()

    def on_model_failed(self, event: ModelFailed) -> None:
        self.load_error = event.error
        self.chat.model_failed()
        self.chat.query_one(StatusBar).failed(event.error)
        self.notify(f"The model could not be loaded: {one_line(event.error, 200)}", severity="error", markup=False)

    async def action_new_conversation(self) -> None:
        if self.screen is self.chat:
            await self.chat.new_conversation()

    def action_review(self) -> None:
        if self.screen is self.chat:
            self.push_screen(ReviewScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
