"""The chat app. Settings, store and model loader are passed in; nothing is created at import time.

The model loads in a thread worker while the app is already usable: history can be browsed and
questions typed; the status bar shows the loading progress and a banner says when the demo model
is in use.

Unless `settings.adapter` pins the chat to one adapter directory, the chat follows the registry's
active version: every `SWAP_POLL_S` seconds (and right after the model loads) it reads
`Store.active_adapter()`, and when that differs from what the backend serves, a thread worker
swaps it in between replies (`Backend.swap_adapter`). Promotions and rollbacks, from this app,
another one or the CLI, reach every running chat this way. A version the backend refuses is not
tried again until the active version changes; the old one keeps answering.

With a model server (`server_url`) the same poll asks whether the server answers: the status bar
says when it is down, questions asked meanwhile are kept (their replies stored as failed, to ask
again), and the app goes on when the server is back.

Quitting (ctrl+q, SIGTERM, SIGHUP when the terminal closes) keeps a reply being written as far as
it got and stops a model load in progress at once (the loader's `stop`), so the app never waits for
a demo model build to finish before it exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import signal

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.widgets import Static

from assistant.demo.teach import FirstVersion, first_version_text, run_progress
from assistant.engine.base import Backend, ModelIdentity
from assistant.errors import AssistantError, ServerError
from assistant.references import References
from assistant.settings import Settings
from assistant.store import AdapterRecord, Store
from assistant.text import one_line
from assistant.tui.loader import BackendLoader, StoppableLoader
from assistant.tui.messages import (
    ActiveAdapterChanged,
    AdapterRefused,
    AdapterSwapped,
    HealthChecked,
    LoadProgressed,
    ModelFailed,
    ModelLoaded,
)
from assistant.tui.screens.chat import ChatScreen
from assistant.tui.screens.help import HelpScreen
from assistant.tui.screens.models import ModelsScreen
from assistant.tui.screens.review import ReviewScreen
from assistant.tui.swap import SwapPolicy, refused_text, swapped_text
from assistant.tui.widgets.status import StatusBar

log = logging.getLogger(__name__)

QUIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # `kill`, systemd; the terminal closing


class AssistantApp(App):
    SWAP_POLL_S = 2.0  # how often the registry's active adapter version is read
    CSS_PATH = "app.tcss"
    # Small terminals (app.tcss): the conversation list narrows, then hides; the banner and the input
    # shrink, so the replies and the input stay visible down to 40x10.
    HORIZONTAL_BREAKPOINTS = [(0, "-tiny"), (50, "-narrow"), (80, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (24, "-tall")]
    TITLE = "assistant"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+n", "new_conversation", "New", priority=True),
        Binding("ctrl+r", "review", "Review", show=False),
        Binding("f1", "help", "Help"),
        Binding("f2", "models", "Models"),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(
        self, settings: Settings, store: Store, loader: BackendLoader, first_version: FirstVersion | None = None
    ) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.loader = loader
        self.first_version = first_version  # starts the first version's retrain when the model needs one
        self.backend: Backend | None = None
        self.load_error: str | None = None
        self.backend_problem: str | None = None  # why the backend cannot answer now, if it cannot
        self.swaps = SwapPolicy()
        self.ab_random = random.Random()  # which questions are answered twice (ab_share), and on which side
        self.references = References(store, settings.data_dir)  # curated answers shown with each question

    def on_mount(self) -> None:
        self.push_screen(ChatScreen())
        self.call_after_refresh(self._settle)
        self._handle_quit_signals(True)

    def _handle_quit_signals(self, handle: bool) -> None:
        """SIGTERM and SIGHUP quit the way ctrl+q does (only where the event loop may own signals:
        the main thread)."""
        loop = asyncio.get_running_loop()
        for signum in QUIT_SIGNALS:
            try:
                if handle:
                    loop.add_signal_handler(signum, self._quit_on_signal, signum)
                else:
                    loop.remove_signal_handler(signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such signal
                return

    def _quit_on_signal(self, signum: int) -> None:
        log.info("quitting on %s", signal.Signals(signum).name)
        self.call_later(self.action_quit)

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
        self._stop_loading()
        self.exit()

    def _stop_loading(self) -> None:
        """A model still loading (building the demo model, say) is abandoned: the exit waits for nothing."""
        if self.backend is None and isinstance(self.loader, StoppableLoader):
            self.loader.stop()

    def on_unmount(self) -> None:
        self._handle_quit_signals(False)
        self._stop_loading()
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
        self.post_message(ModelLoaded(backend, backend.identity.notice))

    def on_load_progressed(self, event: LoadProgressed) -> None:
        self.chat.query_one(StatusBar).loading(event.text, event.fraction)

    async def on_model_loaded(self, event: ModelLoaded) -> None:
        self.backend = event.backend
        chat = self.chat
        chat.query_one(StatusBar).loaded(event.backend.identity)
        banner = chat.query_one("#demo-banner", Static)
        banner.update(event.notice or "")
        banner.display = event.notice is not None
        if not self.settings.adapter:  # else pinned to that adapter: nothing to follow
            self.check_active_adapter()  # before a waiting question is answered: its swap goes first
            self.set_interval(self.SWAP_POLL_S, self.check_active_adapter)
        self.check_backend_health()
        self.set_interval(self.SWAP_POLL_S, self.check_backend_health)
        self._start_first_version(event.backend.identity)
        self.check_retrain()
        self.set_interval(self.SWAP_POLL_S, self.check_retrain)
        await chat.model_ready()

    def on_model_failed(self, event: ModelFailed) -> None:
        self.load_error = event.error
        self.chat.model_failed()
        self.chat.query_one(StatusBar).failed(event.error)
        self.notify(f"The model could not be loaded: {one_line(event.error, 200)}", severity="error", markup=False)

    # -- whether the backend answers (a model server may go down and come back) -----------------

    def check_backend_health(self) -> None:
        if self.backend is not None:
            self._check_health(self.backend)

    @work(thread=True, exclusive=True, group="health", exit_on_error=False)
    def _check_health(self, backend: Backend) -> None:
        try:
            problem = backend.health()
        except Exception as exc:  # a health check must not take the app down; the log has the details
            log.exception("checking the backend failed")
            problem = f"{type(exc).__name__}: {exc}"
        self.post_message(HealthChecked(problem))

    def on_health_checked(self, event: HealthChecked) -> None:
        if event.problem == self.backend_problem:
            return
        was, self.backend_problem = self.backend_problem, event.problem
        status = self.chat.query_one(StatusBar)
        if self.backend is not None:
            status.identity = self.backend.identity  # learnt anew when a server comes back
        status.health(event.problem)
        if event.problem is not None:
            log.warning("the backend cannot answer: %s", event.problem)
            self.notify(
                f"{one_line(event.problem, 200)}. Questions are kept: Esc, then r on a failed reply, asks again.",
                severity="error",
                markup=False,
                timeout=10,
            )
        elif was is not None:
            log.info("the backend answers again")
            self.notify("The model server answers again.", markup=False)
            self.check_active_adapter()

    # -- following the active adapter version ---------------------------------------------------

    def check_active_adapter(self) -> None:
        """Swap to the registry's active version if the backend serves another (a cheap SELECT)."""
        backend = self.backend
        if backend is None or self.settings.adapter:
            return
        chats = [screen for screen in self.screen_stack if isinstance(screen, ChatScreen)]
        if not chats:
            return  # the app is closing: its screens are gone before this timer stops
        pair = chats[0].pair
        if pair is not None and len(pair.ended) < 2:
            return  # a blind pair is being written: both answers come from the versions it started with
        try:
            record = self.store.active_adapter()
        except AssistantError as exc:
            log.warning("could not read the active adapter version: %s", exc)
            return
        version = record.version if record is not None else None
        if self.swaps.wanted(version, backend.identity.adapter):
            self.swaps.started()
            self._swap_adapter(backend, record)

    @work(thread=True, exclusive=True, group="swap", exit_on_error=False)
    def _swap_adapter(self, backend: Backend, record: AdapterRecord | None) -> None:
        version = record.version if record is not None else None
        path = self.settings.layout.version(version) if version is not None else None
        previous = backend.identity.adapter
        try:
            identity = backend.swap_adapter(version, path)
        except ServerError as exc:  # not refused: the server could not be asked; the next poll tries again
            self.post_message(AdapterRefused(version, str(exc), retry=True))
            return
        except AssistantError as exc:
            self.post_message(AdapterRefused(version, str(exc)))
            return
        except Exception as exc:  # the old adapter keeps answering; the log has the details
            log.exception("swapping to adapter %s failed", version)
            self.post_message(AdapterRefused(version, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(AdapterSwapped(record, identity, previous))

    def on_adapter_swapped(self, event: AdapterSwapped) -> None:
        self.swaps.succeeded()
        self.chat.ab_refused.clear()  # a candidate refused beside the old version may load beside this one
        log.info("now serving adapter %s (was %s)", event.identity.adapter, event.previous)
        self.chat.query_one(StatusBar).loaded(event.identity)
        self.notify(swapped_text(event.record, event.previous), markup=False)

    def on_adapter_refused(self, event: AdapterRefused) -> None:
        if event.retry:
            self.swaps.postponed()
            log.warning("adapter %s not swapped in yet: %s", event.version, event.reason)
            self.check_backend_health()
            return
        self.swaps.failed(event.version)
        serving = self.backend.identity.adapter if self.backend is not None else None
        log.warning("adapter %s refused: %s", event.version, event.reason)
        self.notify(
            refused_text(event.version, serving, event.reason),
            severity="error",
            markup=False,
            timeout=10,
        )

    def on_active_adapter_changed(self, event: ActiveAdapterChanged) -> None:
        self.check_active_adapter()

    # -- the first version, and any retrain's progress ------------------------------------------

    def _start_first_version(self, identity: ModelIdentity) -> None:
        first = self.first_version
        try:
            if first is None or not first.wanted(self.store, is_fallback=identity.is_fallback):
                return
            first.start()
        except (AssistantError, OSError) as exc:
            log.warning("could not start the first version's retrain: %s", exc)
            self.notify(f"Could not start learning the sample conversations: {one_line(str(exc), 200)}",
                        severity="error", markup=False)  # fmt: skip
            return
        self.notify(first_version_text(identity.model), markup=False, timeout=15)

    def check_retrain(self) -> None:
        """Show a running retrain's progress (any process's: the store says); say when one this chat
        started fails."""
        first = self.first_version
        said = first.ended() if first is not None else None
        if said is not None:
            self.notify(said, severity="warning", markup=False, timeout=15)
        try:
            progress = run_progress(self.store)
        except AssistantError as exc:
            log.warning("could not read the retrain's progress: %s", exc)
            return
        bars = self.chat.query(StatusBar)
        if not bars:  # the app is closing: the screen's widgets are gone before this timer stops
            return
        status = bars.first()
        if progress is not None and first is not None and progress.pid in first.finished:
            progress = None  # its process is gone (killed): the row says running until the next retrain
        if progress is None:
            status.retraining(None)
            return
        status.retraining(progress.text(), progress.fraction)

    # -- keys --------------------------------------------------------------------------------

    async def action_new_conversation(self) -> None:
        if self.screen is self.chat:
            await self.chat.new_conversation()

    def action_review(self) -> None:
        if self.screen is self.chat:
            self.push_screen(ReviewScreen())

    def action_models(self) -> None:
        if self.screen is self.chat:
            self.push_screen(ModelsScreen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
