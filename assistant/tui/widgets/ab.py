"""The blind A/B pair: one question answered by two versions, side by side (stacked in a narrow
terminal), under neutral labels, and the single keys that pick the better one.

Which version wrote which answer is not shown until the pick (the screen decides the random order).
The answers are untrusted text, shown as every reply is (`MessageView`: terminal-safe Markdown).
"""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from assistant.tui.widgets.chatlog import MessageView

LABELS = ("A", "B")
PROMPT = "Which answer is better?  a: A · b: B · t: tie · n: both bad"


class ABPair(Vertical, can_focus=True):
    """Two blind answers and the pick. The keys call the screen's `ab_pick` (letters only: arrows and
    digits move or type elsewhere, and a pick is for good); Esc skips the pick."""

    BINDINGS = [
        Binding("a", "screen.ab_pick('left')", "A better"),
        Binding("b", "screen.ab_pick('right')", "B better"),
        Binding("t", "screen.ab_pick('tie')", "Tie"),
        Binding("n", "screen.ab_pick('both_bad')", "Both bad"),
        Binding("escape", "screen.ab_skip", "Skip"),
        Binding("enter,i", "screen.focus_composer", "Write", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(classes="ab-pair")
        self.sides = tuple(MessageView("assistant", blind=label) for label in LABELS)
        self.prompt = Static("Two versions answer this question; the second starts when the first is done.",
                             classes="ab-prompt", markup=False)

    def compose(self):  # noqa: ANN201
        with Horizontal(classes="ab-sides"):
            yield from self.sides
        yield self.prompt

    def ready(self) -> None:
        """Both answers are written: ask for the pick."""
        self.prompt.update(PROMPT)
        self.add_class("-ready")
