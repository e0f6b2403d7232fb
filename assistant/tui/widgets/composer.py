"""The message input: multi-line; Enter sends, shift+enter / ctrl+j / alt+enter insert a newline."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea

NEWLINE_KEYS = ("shift+enter", "ctrl+j", "alt+enter")


class Composer(TextArea):
    """Where the user writes. Posts `Composer.Submitted` on Enter; keeps the draft until it is sent."""

    @dataclass
    class Submitted(Message):
        composer: Composer
        text: str

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.placeholder = "Ask a question. Enter sends, shift+enter or ctrl+j adds a line, Esc goes to the replies."

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self, self.text))
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        await super()._on_key(event)
