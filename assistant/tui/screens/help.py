"""The help screen (? or F1): every key binding, by where it works; the review screen has its own."""

from __future__ import annotations

from rich.table import Table
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Anywhere",
        [
            ("ctrl+n", "new conversation"),
            ("ctrl+q", "quit"),
            ("? / F1", "this help"),
            ("tab / shift+tab", "move between the list, the replies and the input"),
            ("ctrl+f", "search conversations"),
            ("ctrl+r", "review rated replies (curators)"),
            ("F2", "adapter versions: promote, roll back"),
        ],
    ),
    (
        "Input",
        [
            ("enter", "send"),
            ("shift+enter / ctrl+j / alt+enter", "new line"),
            ("esc", "stop a streaming reply; otherwise go to the replies, latest highlighted"),
        ],
    ),
    (
        "Replies",
        [
            ("up / down (k / j)", "move the highlight"),
            ("+", "thumbs up"),
            ("-", "thumbs down"),
            ("c", "feedback: reasons, comment, better answer"),
            ("r", "regenerate (the earlier answer is kept)"),
            ("b", "blind A/B: answered again by the version answering and the candidate, side by side"),
            ("left / right (h / l)", "earlier / later answers to the same question"),
            ("y", "copy the reply"),
            ("enter / i", "back to the input"),
            ("esc", "stop a streaming reply"),
        ],
    ),
    (
        "Blind A/B pair",
        [
            ("a", "answer A is better"),
            ("b", "answer B is better"),
            ("t", "a tie"),
            ("n", "both bad: the feedback dialog opens for a better answer"),
            ("esc", "skip the pick (from the input: to the pair; while written: stop the answer being written)"),
        ],
    ),
    (
        "Conversation list",
        [
            ("enter", "open"),
            ("r", "rename"),
            ("a", "archive or unarchive"),
            ("d / delete", "delete (asks first)"),
            ("A", "show or hide archived conversations"),
        ],
    ),
    (
        "Adapter versions (F2)",
        [
            ("up / down", "move between versions; the detail shows the highlighted one"),
            ("p", "promote: every chat answers with it within seconds (asks first)"),
            ("b", "roll back the active version to the one before it (asks first)"),
            ("r", "refresh"),
            ("esc", "back to the chat"),
        ],
    ),
    (
        "Feedback dialog",
        [
            ("ctrl+s", "save"),
            ("esc", "cancel"),
        ],
    ),
]


REVIEW_KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Review queue and detail",
        [
            ("up / down, n / p", "next / previous reply"),
            ("a", "approve (trains on the curated answer, else the correction, else the reply)"),
            ("e", "edit the ideal answer (ctrl+s saves, esc cancels); the reply is kept"),
            ("x", "reject: never train on it"),
            ("t", "tags (comma-separated)"),
            ("u", "undo your last action (a bulk approval as a whole)"),
            ("A", "approve all replies matching the filters (asks first)"),
            ("tab / shift+tab", "move between the list, the detail and the filters"),
            ("esc / q", "close"),
        ],
    ),
    (
        "Filters",
        [
            ("f", "status: pending, approved, rejected, all"),
            ("g", "rating: any, thumbs down, thumbs up"),
            ("/", "search words in the conversation"),
            ("tab", "tag, rater, model version, since (YYYY-MM-DD)"),
            ("enter / esc", "back to the list"),
        ],
    ),
]


def key_table(keys: list[tuple[str, list[tuple[str, str]]]] = KEYS) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, min_width=20)
    table.add_column(max_width=52)
    for group, rows in keys:
        table.add_row(f"[u]{group}[/u]", "")
        for key, what in rows:
            table.add_row(key, what)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def __init__(self, keys: list[tuple[str, list[tuple[str, str]]]] = KEYS) -> None:
        super().__init__(classes="dialog-screen")
        self.keys = keys

    def compose(self):  # noqa: ANN201
        with VerticalScroll(classes="dialog", id="help"):
            yield Static("Keys  ·  esc, q or ? closes this", classes="dialog-title", markup=False)
            yield Static(key_table(self.keys))

    def action_close(self) -> None:
        self.dismiss(None)
