"""The message input: multi-line; Enter sends, shift+enter / ctrl+j / alt+enter insert a newline."""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea

NEWLINE_KEYS = ("shift+enter", "ctrl+j", "alt+enter")


class Composer(TextArea):
    """Where the user writes. Enter posts `Composer.Submitted` and clears the input at once, so what
    is typed next is never lost; a message that cannot be sent is put back with `restore`."""

    @dataclass
    class Submitted(Message):
        composer: Composer
        text: str

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.last_key_at = 0.0  # time.monotonic() of the last key typed here
        self.placeholder = "Ask a question. Enter sends, shift+enter or ctrl+j adds a line, Esc goes to the replies."

    async def _on_key(self, event: events.Key) -> None:
        self.last_key_at = time.monotonic()
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.clear()
            self.post_message(self.Submitted(self, text))
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        await super()._on_key(event)

    def restore(self, text: str) -> None:
        """Put back a message that was not sent, before anything typed since."""
        if text.strip() and not self.text.startswith(text):
            self.text = text + self.text
            self.move_cursor(self.document.end)
