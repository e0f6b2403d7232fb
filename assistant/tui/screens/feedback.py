"""The feedback dialog: rating, reason tags, a comment and an optional better answer, saved together."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static, TextArea

from assistant.store import REASON_TAGS, Feedback
from assistant.text import one_line, terminal_safe


@dataclass(frozen=True)
class FeedbackDraft:
    rating: int
    reasons: tuple[str, ...]
    comment: str
    correction: str


def reason_id(tag: str) -> str:
    return "reason-" + tag.replace(" ", "-")


class FeedbackScreen(ModalScreen[FeedbackDraft | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, reply_text: str, current: Feedback | None, default_rating: int = -1) -> None:
        super().__init__(classes="dialog-screen")
        self.reply_text = reply_text
        self.current = current
        self.rating = current.rating if current else default_rating

    def compose(self):  # noqa: ANN201
        current = self.current
        with VerticalScroll(classes="dialog", id="feedback"):
            yield Label("Feedback on this reply", classes="dialog-title")
            yield Static(one_line(self.reply_text, 160), id="feedback-reply", markup=False)
            with RadioSet(id="feedback-rating"):
                yield RadioButton("▲ Helpful", value=self.rating > 0, id="rating-up")
                yield RadioButton("▼ Not helpful", value=self.rating < 0, id="rating-down")
            yield Label("Reasons")
            with Grid(id="feedback-reasons"):
                for tag in REASON_TAGS:
                    yield Checkbox(tag, value=bool(current and tag in current.reasons), id=reason_id(tag))
            yield Label("Comment")
            comment = terminal_safe(current.comment) if current else ""
            yield Input(value=comment, placeholder="optional", id="feedback-comment")
            yield Label("Better answer (the correction; optional)")
            correction = terminal_safe(current.correction) if current else ""
            yield TextArea(correction, id="feedback-correction", soft_wrap=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        ratings = self.query_one(RadioSet)
        # The keyboard's place starts on the rating as it is (RadioSet starts on its first button).
        for _ in range(max(0, ratings.pressed_index)):
            ratings.action_next_button()
        ratings.focus()
        self._mark_rating()

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self.rating = 1 if event.pressed.id == "rating-up" else -1
        self._mark_rating()

    def _mark_rating(self) -> None:
        """The chosen rating says so in words too: a terminal without colours shows both buttons alike."""
        for button_id, label, rating in (("rating-up", "▲ Helpful", 1), ("rating-down", "▼ Not helpful", -1)):
            self.query_one(f"#{button_id}", RadioButton).label = label + ("  ✓ chosen" if self.rating == rating else "")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_save(self) -> None:
        self.dismiss(
            FeedbackDraft(
                rating=self.rating,
                reasons=tuple(tag for tag in REASON_TAGS if self.query_one(f"#{reason_id(tag)}", Checkbox).value),
                comment=self.query_one("#feedback-comment", Input).value.strip(),
                correction=self.query_one("#feedback-correction", TextArea).text.strip(),
            )
        )

    def action_cancel(self) -> None:
        self.dismiss(None)
