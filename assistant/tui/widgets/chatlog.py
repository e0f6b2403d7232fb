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

from assistant.chat import what_helps
from assistant.data.pii import mark_placeholders
from assistant.store import Feedback, Message
from assistant.text import one_line, terminal_safe


def clock_time(timestamp: str) -> str:
    """`2026-11-22T10:04:05.123Z` -> `2026-11-22 10:04` (UTC, as stored)."""
    return timestamp[:16].replace("T", " ")


def shown(role: str, content: str) -> tuple[str, int]:
    """A message's text as the screen shows it, and its gaps: a reply's PII placeholders (`<EMAIL_1>`,
    learnt from scrubbed training data) shown as what they are, `[missing: e-mail address]`."""
    if role != "assistant":
        return terminal_safe(content), 0
    text, gaps = mark_placeholders(content)
    return terminal_safe(text), gaps


class MessageView(Vertical):
    """A message: a header line (who, when, which model, rating, alternatives) and its body.

    Replies are Markdown; what people typed is shown as typed (plain text), so a customer's `#`
    or `1.` stays what it was.
    """

    def __init__(self, role: str, message: Message | None = None, *, text: str = "", blind: str | None = None) -> None:
        super().__init__(classes=f"message -{role}")
        self.role = role
        self.message = message
        self.blind = blind  # a blind A/B answer's neutral label: who wrote it is not shown
        self.writing = blind is None  # a blind answer says "waiting…" until its turn comes
        self.rating: Feedback | None = None
        self.alternatives = (1, 1)
        self._body_text, self.gaps = shown(role, message.content if message else text)
        self._streamed: str | None = None  # what streaming has shown, when it showed all of it in the body
        self._body: Markdown | Static
        if role == "assistant":
            self._header = Static(self._header_text(), classes="message-header", markup=False)
            self._body = Markdown(self._body_text, classes="message-body", open_links=False)
        else:
            # Header and text in one widget: fewer widgets to mount when a question is sent.
            self._header = self._body = Static(self._header_and_text(), classes="message-body", markup=False)

    def compose(self):  # noqa: ANN201
        yield self._header
        if self._body is not self._header:
            yield self._body

    def _header_and_text(self) -> Text:
        return Text.assemble(self._header_text(), "\n", self._body_text)

    def _header_text(self) -> Text:
        text = Text()
        if self.blind is not None:
            return self._blind_header_text()
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
            elif message.finish_reason == "error":
                error = one_line(message.error or "unknown error", 80)
                text.append(f"  ⚠ failed: {error} ({what_helps(message.error)})", style="bold red")
            if self.gaps:
                text.append(
                    f"  ⚠ {self.gaps} {'gap' if self.gaps == 1 else 'gaps'}: placeholders learnt from scrubbed data",
                    style="bold yellow",
                )
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

    def _blind_header_text(self) -> Text:
        text = Text(f"Answer {self.blind}", style="bold")
        message = self.message
        if message is None:
            text.append("  writing…" if self.writing else "  waiting…", style="italic")
        elif message.finish_reason == "cancelled":
            text.append("  stopped", style="italic")
        elif message.finish_reason == "error":
            text.append(f"  ⚠ failed: {one_line(message.error or 'unknown error', 80)}", style="bold red")
        return text

    def refresh_header(self) -> None:
        if self._body is self._header:
            self._header.update(self._header_and_text())
        else:
            self._header.update(self._header_text(), layout=False)  # one fixed line: no layout pass

    async def set_message(self, message: Message) -> None:
        """The reply finished and was stored: show it as stored (the whole text, cleaned once)."""
        self.message = message
        self._body_text, self.gaps = shown(self.role, message.content)
        if self._streamed != self._body_text:  # else the screen shows it already
            for segment in self.query_children(".message-segment"):
                await segment.remove()
            await self._body.update(self._body_text)
        self.refresh_header()

    def stream(self) -> ReplyStream:
        return ReplyStream(self)

    @property
    def body_text(self) -> str:
        return self._body_text


SEGMENT_CHARS = 1200


class ReplyStream:
    """Streams text into a message view, in Markdown segments of bounded size.

    Redrawing a Markdown block costs time in proportion to its length, and a streaming reply is
    redrawn many times a second: text goes into segments of about SEGMENT_CHARS, cut at a paragraph
    break (else a line break, else a space; never inside a code fence unless it runs on), so an update
    redraws one segment. Once complete, the view shows the reply again as one document.
    """

    def __init__(self, view: MessageView) -> None:
        self.view = view
        self.segment = ""
        assert isinstance(view._body, Markdown), "only replies stream"
        self.stream: MarkdownStream = Markdown.get_stream(view._body)
        view._streamed = ""

    async def write(self, text: str) -> None:
        if self.view._streamed is not None:
            self.view._streamed += text
        written = len(self.segment)
        self.segment += text
        cut = _segment_cut(self.segment, written)
        if cut is None:
            await self.stream.write(text)
            return
        if cut > written:
            await self.stream.write(self.segment[written:cut])
        rest = self.segment[cut:]
        self.view._streamed = None  # shown in segments: the full text is drawn again at the end
        await self.stream.stop()
        markdown = Markdown("", classes="message-body message-segment", open_links=False)
        await self.view.mount(markdown)
        self.stream = Markdown.get_stream(markdown)
        self.segment = ""
        if rest:
            await self.write(rest)

    async def stop(self) -> None:
        await self.stream.stop()


def _segment_cut(segment: str, start: int) -> int | None:
    """Where a new segment should begin, found in segment[start:]; None to keep going."""
    length = len(segment)
    if length < SEGMENT_CHARS:
        return None
    in_fence = segment.count("```") % 2 == 1
    for separator, from_length in (("\n\n", SEGMENT_CHARS), ("\n", 2 * SEGMENT_CHARS), (" ", 3 * SEGMENT_CHARS)):
        if length >= from_length and not (in_fence and length < 4 * SEGMENT_CHARS):
            found = segment.rfind(separator, start)
            if found != -1:
                return found + len(separator)
    return start if length >= 4 * SEGMENT_CHARS else None


class MessageList(VerticalScroll, can_focus=True):
    """The thread of the open conversation. Up/Down move the highlight; keys act on the highlighted reply."""

    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("plus,equals_sign", "screen.rate(1)", "Helpful"),
        Binding("minus", "screen.rate(-1)", "Not helpful"),
        Binding("c", "screen.feedback", "Feedback"),
        Binding("r", "screen.regenerate", "Regenerate"),
        Binding("b", "screen.compare", "A/B"),
        Binding("y", "screen.copy", "Copy"),
        Binding("left,h", "screen.sibling(-1)", "Prev answer", show=False),
        Binding("right,l", "screen.sibling(1)", "Next answer", show=False),
        Binding("enter,i", "screen.focus_composer", "Write", show=False),
    ]

    highlighted: reactive[int | None] = reactive(None)

    def on_mount(self) -> None:
        # Follow the end as replies grow, until the user scrolls up (and again once back at the end).
        self.anchor()

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

    def on_focus(self) -> None:
        """Tab (or a click) into the replies highlights the latest one, as Esc does."""
        if self.highlighted is None:
            self.highlight_latest_reply()

    def action_move(self, step: int) -> None:
        """To the previous or next reply: the keys act on replies, so your own messages are skipped."""
        views = self.views
        if not views:
            return
        replies = [i for i, v in enumerate(views) if v.role == "assistant"] or list(range(len(views)))
        current = self.highlighted if self.highlighted is not None else len(views)
        ahead = [i for i in replies if i > current] if step > 0 else [i for i in reversed(replies) if i < current]
        if ahead:
            self.highlighted = ahead[0]

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

    async def append(self, *views: MessageView) -> MessageView:
        """Add views at the end (in one layout pass); returns the last."""
        for hint in self.query("#empty-hint"):
            await hint.remove()
        await self.mount_all(views)
        self.scroll_end(animate=False)
        return views[-1]
