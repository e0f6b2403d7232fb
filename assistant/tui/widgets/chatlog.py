"""The message list: one view per message, Markdown bodies, a movable highlight.

Every text shown here is untrusted: bodies go through `terminal_safe` into a Markdown widget that
does not open links, headers are built as Text objects, never parsed as markup.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream
from rich.text import Text

from assistant.store import Feedback, Message
from assistant.text import one_line, terminal_safe


def clock_time(timestamp: str) -> str:
    """`2026-11-22T10:04:05.123Z` -> `2026-11-22 10:04` (UTC, as stored)."""
    return timestamp[:16].replace("T", " ")


class MessageView(Vertical):
    """A message: a header line (who, when, which model, rating, alternatives) and a Markdown body."""

    def __init__(self, role: str, message: Message | None = None, *, text: str = "") -> None:
        super().__init__(classes=f"message -{role}")
        self.role = role
        self.message = message
        self.rating: Feedback | None = None
        self.alternatives = (1, 1)
        self._body_text = terminal_safe(message.content if message else text)
        self._header = Static(self._header_text(), classes="message-header", markup=False)
        self._body = Markdown(self._body_text, classes="message-body", open_links=False)

    def compose(self):  # noqa: ANN201
        yield self._header
        yield self._body

    def _header_text(self) -> Text:
        text = Text()
        if self.role == "user":
            text.append("You", style="bold")
        elif self.role == "assistant":
            text.append("Assistant", style="bold")
        else:
            text.append(self.role.title(), style="bold")
        message = self.message
        if message is None:
            text.append("  writing…", style="italic")
            return text
        text.append(f"  {clock_time(message.created_at)}", style="dim")
        if message.role == "assistant":
            if message.model:
                model = message.model + (f" + {message.adapter}" if message.adapter else "")
                text.append(f"  {one_line(model, 48)}", style="dim")
            if message.finish_reason == "cancelled":
                text.append("  stopped", style="italic")
            index, count = self.alternatives
            if count > 1:
                text.append(f"  ‹ {index}/{count} ›", style="bold")
            if self.rating is not None:
                if self.rating.rating > 0:
                    text.append("  ▲ helpful", style="bold green")
                else:
                    text.append("  ▼ not helpful", style="bold red")
                if self.rating.correction:
                    text.append("  ✎ corrected", style="bold")
        return text

    def refresh_header(self) -> None:
        self._header.update(self._header_text())

    def set_message(self, message: Message) -> None:
        """The reply finished and was stored: show it as stored (the whole text, cleaned once)."""
        self.message = message
        self._body_text = terminal_safe(message.content)
        self._body.update(self._body_text)
        self.refresh_header()

    def stream(self) -> MarkdownStream:
        return Markdown.get_stream(self._body)

    @property
    def body_text(self) -> str:
        return self._body_text


class MessageList(VerticalScroll, can_focus=True):
    """The thread of the open conversation. Up/Down move the highlight; keys act on the highlighted reply."""

    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("plus,equals_sign", "screen.rate(1)", "Helpful"),
        Binding("minus", "screen.rate(-1)", "Not helpful"),
        Binding("c", "screen.feedback", "Feedback"),
        Binding("r", "screen.regenerate", "Regenerate"),
        Binding("y", "screen.copy", "Copy"),
        Binding("left,h", "screen.sibling(-1)", "Prev answer", show=False),
        Binding("right,l", "screen.sibling(1)", "Next answer", show=False),
        Binding("enter,i", "screen.focus_composer", "Write", show=False),
    ]

    highlighted: reactive[int | None] = reactive(None)

    @property
    def views(self) -> list[MessageView]:
        return list(self.query_children(MessageView))

    @property
    def highlighted_view(self) -> MessageView | None:
        views = self.views
        if self.highlighted is None or not 0 <= self.highlighted < len(views):
            return None
        return views[self.highlighted]

    def watch_highlighted(self, old: int | None, new: int | None) -> None:
        views = self.views
        for index, view in enumerate(views):
            view.set_class(index == new, "-highlighted")
        if new is not None and 0 <= new < len(views):
            self.scroll_to_widget(views[new], animate=False)

    def action_move(self, step: int) -> None:
        views = self.views
        if not views:
            return
        current = self.highlighted if self.highlighted is not None else len(views)
        self.highlighted = max(0, min(len(views) - 1, current + step))

    def highlight_latest_reply(self) -> None:
        views = self.views
        replies = [i for i, v in enumerate(views) if v.role == "assistant"]
        self.highlighted = replies[-1] if replies else (len(views) - 1 if views else None)

    async def show(self, views: list[MessageView], hint: str = "") -> None:
        """Replace the list; `hint` is shown instead when there are no messages."""
        self.highlighted = None
        await self.remove_children()
        if views:
            await self.mount_all(views)
        elif hint:
            await self.mount(Static(hint, id="empty-hint", markup=False))
        self.scroll_end(animate=False)

    async def append(self, view: MessageView) -> MessageView:
        for hint in self.query("#empty-hint"):
            await hint.remove()
        await self.mount(view)
        self.scroll_end(animate=False)
        return view
