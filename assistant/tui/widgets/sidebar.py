"""The conversation list with full-text search. Titles and snippets are untrusted: shown as Text."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from assistant.store import Conversation, SearchHit
from assistant.text import one_line
from assistant.tui.widgets.chatlog import clock_time


class ConversationOptions(OptionList):
    BINDINGS = [
        Binding("r", "screen.rename_conversation", "Rename"),
        Binding("a", "screen.toggle_archive", "Archive"),
        Binding("delete,d", "screen.delete_conversation", "Delete"),
        Binding("A", "screen.toggle_show_archived", "Show archived"),
    ]


class Sidebar(Vertical):
    """Search box over a list of conversations. Posts `Sidebar.Opened` when one is chosen."""

    @dataclass
    class Opened(Message):
        conversation_id: int

    @dataclass
    class SearchChanged(Message):
        text: str

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.show_archived = False
        self.searching = False

    def compose(self):  # noqa: ANN201
        yield Input(placeholder="Search conversations", id="search")
        yield Static("", id="list-caption", markup=False)
        yield ConversationOptions(id="conversation-options")

    @property
    def options(self) -> ConversationOptions:
        return self.query_one(ConversationOptions)

    @property
    def highlighted_id(self) -> int | None:
        options = self.options
        if options.highlighted is None:
            return None
        option = options.get_option_at_index(options.highlighted)
        return int(option.id) if option.id else None

    def show_conversations(self, conversations: list[Conversation], current: int | None, more: bool = False) -> None:
        self.searching = False
        caption = "Conversations" + (" (with archived)" if self.show_archived else "")
        if more:
            caption += f", {len(conversations)} latest (search finds all)"
        self.query_one("#list-caption", Static).update(caption)
        self._fill([(c, _conversation_prompt(c)) for c in conversations], current)

    def update_top(self, conversation: Conversation) -> bool:
        """Redraw the first entry if it is `conversation` (the usual case after a message); else False."""
        options = self.options
        if self.searching or not options.option_count:
            return False
        top = options.get_option_at_index(0)
        if top.id != str(conversation.id):
            return False
        prompt = _conversation_prompt(conversation)
        if str(top.prompt) != str(prompt):  # redrawing an entry measures the whole list again
            options.replace_option_prompt_at_index(0, prompt)
        options.highlighted = 0
        return True

    def show_hits(self, hits: list[SearchHit], query: str, current: int | None) -> None:
        self.searching = True
        count = f"{len(hits)} match" + ("" if len(hits) == 1 else "es")
        self.query_one("#list-caption", Static).update(f"{count} for “{one_line(query, 20)}”")
        self._fill([(h.conversation, _hit_prompt(h, query)) for h in hits], current)

    def _fill(self, rows: list[tuple[Conversation, Text]], current: int | None) -> None:
        options = self.options
        previous = self.highlighted_id
        options.clear_options()
        options.add_options([Option(prompt, id=str(c.id)) for c, prompt in rows])
        ids = [c.id for c, _ in rows]
        wanted = current if current in ids else previous
        if wanted in ids:
            options.highlighted = ids.index(wanted)
        elif ids:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.SearchChanged(event.value))

    @dataclass
    class SearchSubmitted(Message):
        text: str

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the search box: the screen searches at once and opens the first match; the list
        takes the focus, to pick another."""
        event.stop()
        self.post_message(self.SearchSubmitted(event.value))
        self.options.focus()

    def open_first(self) -> None:
        options = self.options
        if options.option_count:
            options.highlighted = 0
            first = options.get_option_at_index(0)
            if first.id:
                self.post_message(self.Opened(int(first.id)))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.Opened(int(event.option.id)))


def _conversation_prompt(conversation: Conversation) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(one_line(conversation.title) or "Untitled", style="bold" if not conversation.archived else "dim")
    text.append(f"\n{clock_time(conversation.updated_at)}", style="dim")
    if conversation.archived:
        text.append("  archived", style="dim italic")
    return text


def _hit_prompt(hit: SearchHit, query: str) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(one_line(hit.conversation.title) or "Untitled", style="bold")
    snippet = Text("\n" + one_line(hit.snippet, 80), style="dim")
    words = [w for w in query.split() if w.strip()]
    if words:
        snippet.highlight_words(words, style="bold reverse", case_sensitive=False)
    text.append_text(snippet)
    return text
