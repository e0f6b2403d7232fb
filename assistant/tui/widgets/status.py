"""The status bar (model, adapter, device or model server and whether it answers, last reply's speed,
loading progress, a running retrain's progress) and the demo banner."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Horizontal
from textual.widgets import ProgressBar, Static

from assistant.engine.base import ModelIdentity
from assistant.text import one_line


class StatusBar(Horizontal):
    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.identity: ModelIdentity | None = None
        self.loading_text = "Starting…"
        self.error: str | None = None
        self.tokens_per_s: float | None = None
        self.streaming = False
        self.problem: str | None = None  # the backend cannot answer now (the model server is down)
        self.retrain: str | None = None  # a retrain running on this data dir: how far it is

    def compose(self):  # noqa: ANN201
        yield Static(self._text(), id="status-text", markup=False)
        yield ProgressBar(id="load-progress", show_eta=False, show_percentage=True)

    def _text(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.error:
            text.append("Model failed: ", style="bold red")
            text.append(one_line(self.error, 120))
            return text
        if self.identity is None:
            text.append("Loading model: ", style="bold")
            text.append(one_line(self.loading_text, 90))
            return text
        identity = self.identity
        text.append("model ", style="dim")
        text.append(one_line(identity.model, 40), style="bold")
        text.append("  adapter ", style="dim")
        text.append(one_line(identity.adapter or "none", 24), style="bold")
        text.append("  device ", style="dim")
        text.append(one_line(f"{identity.device} ({identity.precision})", 40))
        if self.problem:
            text.append("  DOWN: ", style="bold red")
            text.append(one_line(self.problem, 80), style="red")
            return text
        text.append("  last reply ", style="dim")
        text.append(f"{self.tokens_per_s:.1f} tok/s" if self.tokens_per_s else "–")
        if self.streaming:
            text.append("  replying… (Esc stops)", style="italic")
        if self.retrain:
            text.append("  retrain: ", style="dim")
            text.append(one_line(self.retrain, 80))
        return text

    def _refresh(self) -> None:
        self.query_one("#status-text", Static).update(self._text(), layout=False)  # one fixed line
        bar = self.query_one(ProgressBar)
        bar.display = (self.identity is None or self.retrain is not None) and self.error is None

    def _progress(self, fraction: float | None) -> None:
        bar = self.query_one(ProgressBar)
        if fraction is None:
            bar.update(total=None)
        else:
            bar.update(total=100, progress=round(fraction * 100))

    def loading(self, text: str, fraction: float | None) -> None:
        self.loading_text = text
        self._progress(fraction)
        self._refresh()

    def retraining(self, text: str | None, fraction: float | None = None) -> None:
        """A retrain's progress (None: none runs), with the bar once the model is loaded."""
        if text == self.retrain and fraction is None:
            return
        self.retrain = text
        if text is not None and self.identity is not None:
            self._progress(fraction)
        self._refresh()

    def loaded(self, identity: ModelIdentity) -> None:
        self.identity = identity
        self.error = None
        self._refresh()

    def health(self, problem: str | None) -> None:
        self.problem = problem
        self._refresh()

    def failed(self, error: str) -> None:
        self.error = error
        self._refresh()

    def reply_speed(self, tokens_per_s: float | None) -> None:
        self.tokens_per_s = tokens_per_s
        self._refresh()

    def set_streaming(self, streaming: bool) -> None:
        self.streaming = streaming
        self._refresh()
