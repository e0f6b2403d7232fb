"""The curator's review screen: the queue of rated replies, one reply in detail, and the decisions on
it (approve, edit the ideal answer, reject, tag, undo, approve a whole filtered set).

Driven by the store's curation API only (no SQL here); who may curate is assistant/curation.py's
call: anyone else gets the screen read-only. Every text shown is untrusted: plain text goes through
`terminal_safe` / `one_line` into Text objects, replies into Markdown that opens no links.
"""

from __future__ import annotations

import functools


from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.validation import Regex
from textual.widget import Widget
from textual.widgets import Footer, Input, Markdown, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from assistant.curation import may_curate, require_curator
from assistant.errors import AssistantError
from assistant.store import CurationCounts, Feedback, Message, ReviewFilter, ReviewItem
from assistant.data.pii import Scrubber
from assistant.text import one_line, terminal_safe
from assistant.tui.screens.base import AppScreen
from assistant.tui.screens.dialogs import Confirm, TextPrompt
from assistant.tui.screens.help import REVIEW_KEYS, HelpScreen
from assistant.tui.widgets.chatlog import clock_time

LIST_LIMIT = 500  # the list shows this many; the filters (and bulk approval) reach all of them
FILTER_DELAY_S = 0.25
STATUSES: tuple[str | None, ...] = ("pending", "approved", "rejected", None)  # None: all
RATINGS: tuple[str | None, ...] = (None, "down", "up")  # None: any
SINCE_PATTERN = r"\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2})?)?)?)?)?"  # a prefix of the stored times
FILTER_INPUTS = ("review-search", "review-tag", "review-rater", "review-model", "review-since")
UNDONE_WHAT = {"approve": "approval", "reject": "rejection", "edit": "edit", "tag": "tags"}
STATUS_STYLES = {"pending": "yellow", "approved": "green", "rejected": "red"}
# Keys that act on the queue; while an input or the editor has focus they are typed, not acted on.
QUEUE_ACTIONS = frozenset(
    {"approve", "edit", "reject", "tags", "undo", "approve_all", "move", "cycle_status", "cycle_rating",
     "focus_search", "close"}
)


def replies(count: int) -> str:
    return f"{count} repl{'y' if count == 1 else 'ies'}"


def queue_line(item: ReviewItem) -> Text:
    """One line of the queue: ▼/▲ counts, ⚠ on disagreement, status, conversation title, and the start of
    the reply, so that two answers to the same question (a regenerated reply) are told apart."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"▼{item.downs:<3}", style="bold red" if item.downs else "dim")
    text.append(f"▲{item.ups:<3}", style="bold green" if item.ups else "dim")
    text.append("⚠ " if item.disagreement else "  ", style="bold yellow")
    text.append(f"{item.status:<9}", style=STATUS_STYLES.get(item.status, ""))
    text.append(one_line(item.conversation_title, 40) or "Untitled")
    text.append(f"  · {one_line(terminal_safe(item.message.content), 60)}", style="dim")
    return text


def rating_text(ratings: list[Feedback]) -> Text:
    text = Text()
    if not ratings:
        text.append("none current", style="dim")
    for n, feedback in enumerate(ratings):
        if n:
            text.append("\n")
        if feedback.rating > 0:
            text.append("▲ helpful      ", style="bold green")
        else:
            text.append("▼ not helpful  ", style="bold red")
        text.append(one_line(feedback.user, 30), style="bold")
        text.append(f"  {clock_time(feedback.updated_at)}", style="dim")
        if feedback.reasons:
            text.append("  reasons: ")
            text.append(", ".join(one_line(reason, 30) for reason in feedback.reasons), style="italic")
        if feedback.correction:
            text.append("  ✎ correction", style="bold")
        if feedback.comment:
            text.append("\n    ")
            text.append(terminal_safe(feedback.comment).replace("\n", "\n    "))
    return text


class ReviewQueue(OptionList):
    """The queue of rated replies, one line each."""


class AnswerEditor(Vertical):
    """The curator's ideal answer, edited in place; the reply above stays as written."""

    BINDINGS = [
        Binding("ctrl+s", "screen.save_edit", "Save answer", priority=True),
        Binding("escape", "screen.cancel_edit", "Cancel edit"),
        # Select all, as in most editors (the text area's own ctrl+a goes to the line's start; f7 also works).
        Binding("ctrl+a", "screen.select_all_answer", "Select all", priority=True),
    ]


class ReviewScreen(AppScreen):
    """Review rated replies. `standalone`: the app's only screen (`assistant review`): closing it
    quits; else it was pushed over the chat and closing goes back there."""

    BINDINGS = [
        Binding("a", "approve", "Approve"),
        Binding("e", "edit", "Edit answer"),
        Binding("x", "reject", "Reject"),
        Binding("t", "tags", "Tags"),
        Binding("u", "undo", "Undo"),
        Binding("A", "approve_all", "Approve all"),
        Binding("n", "move(1)", "Next", show=False),
        Binding("p", "move(-1)", "Previous", show=False),
        Binding("f", "cycle_status", "Status", show=False),
        Binding("g", "cycle_rating", "Rating", show=False),
        Binding("slash", "focus_search", "Search", key_display="/"),
        Binding("escape", "back", "Back", show=False),
        Binding("q", "close", "Close"),
        Binding("f1,question_mark", "help", "Keys"),
    ]

    def __init__(self, *, standalone: bool = False, adapter_since: str | None = None) -> None:
        """`adapter_since`: approvals after this time are counted apart; None: after the data of the
        newest published adapter was read (every approval when there is none)."""
        super().__init__()
        self.standalone = standalone
        self.adapter_since = adapter_since
        self.status_filter: str | None = "pending"
        self.rating_filter: str | None = None
        self.items: list[ReviewItem] = []  # the whole filtered queue; the list shows the first LIST_LIMIT
        self.counts: CurationCounts | None = None
        self.editing: ReviewItem | None = None  # the item whose answer the editor holds
        self.shown: ReviewItem | None = None  # the item the detail pane shows
        self._wanted: ReviewItem | None = None
        self._wanted_version = 0
        self._shown_version = 0
        self._rendering = False
        self._filter_timer: Timer | None = None

    # -- layout ------------------------------------------------------------------------------

    def compose(self):  # noqa: ANN201
        yield Static("", id="review-header", markup=False)
        with Horizontal(id="review-filters"):
            yield Static("", id="filter-status", markup=False)
            yield Static("", id="filter-rating", markup=False)
            yield Input(placeholder="search words (/)", id="review-search", compact=True)
            yield Input(placeholder="tag", id="review-tag", compact=True)
            yield Input(placeholder="rater", id="review-rater", compact=True)
            yield Input(placeholder="model version", id="review-model", compact=True)
            yield Input(
                placeholder="since YYYY-MM-DD",
                id="review-since",
                compact=True,
                validators=[Regex(SINCE_PATTERN, failure_description="a date: YYYY-MM-DD")],
                valid_empty=True,
            )
        with Horizontal(id="review-main"):
            with Vertical(id="review-queue-pane"):
                yield Static("", id="review-caption", markup=False)
                yield ReviewQueue(id="review-queue")
            with Vertical(id="review-side"):
                yield VerticalScroll(id="review-detail", can_focus=True)
                with AnswerEditor(id="review-editor"):
                    yield Static("", id="review-editor-title", markup=False)
                    yield TextArea("", id="review-editor-text", soft_wrap=True)
        yield Footer()

    @property
    def queue(self) -> ReviewQueue:
        return self.query_one(ReviewQueue)

    @property
    def detail(self) -> VerticalScroll:
        return self.query_one("#review-detail", VerticalScroll)

    @property
    def editor(self) -> TextArea:
        return self.query_one("#review-editor-text", TextArea)

    @property
    def current(self) -> ReviewItem | None:
        """The highlighted item: what the keys act on."""
        index = self.queue.highlighted
        if index is None or not 0 <= index < min(len(self.items), LIST_LIMIT):
            return None
        return self.items[index]

    @property
    def idle(self) -> bool:
        """The detail pane shows the highlighted item (tests wait for this)."""
        return self._wanted_version > 0 and not self._rendering and self._wanted_version == self._shown_version

    def on_mount(self) -> None:
        self.query_one("#review-editor").display = False
        self._show_filters()
        self.reload()
        self.queue.focus()

    # -- the queue ---------------------------------------------------------------------------

    def filters(self) -> ReviewFilter:
        def value(input_id: str) -> str | None:
            return self.query_one(f"#{input_id}", Input).value.strip() or None

        since = self.query_one("#review-since", Input)
        return ReviewFilter(
            status=self.status_filter,
            rating=self.rating_filter,
            tag=value("review-tag"),
            rater=value("review-rater"),
            model_version=value("review-model"),
            since=value("review-since") if since.is_valid else None,
            search=value("review-search"),
        )

    def reload(self, *, select: int | None = None, decided: int | None = None) -> None:
        """Query the queue and the counts again and redraw them.

        `select`: highlight this reply if it is listed. `decided`: this reply was just decided on:
        go to the next pending reply after it (it may have left the list: the one now in its place).
        """
        previous = self.queue.highlighted
        old_ids = [item.message.id for item in self.items]
        try:
            items = self.store.review_queue(self.filters())
            self.counts = self.store.curation_counts(since=self.adapter_since or self.store.last_data_until())
        except AssistantError as exc:
            self.notify(f"Could not read the queue: {one_line(str(exc), 200)}", severity="error", markup=False)
            return
        self.items = items
        shown = items[:LIST_LIMIT]
        ids = [item.message.id for item in shown]
        queue = self.queue
        queue.set_options(Option(queue_line(item), id=str(item.message.id)) for item in shown)
        index: int | None = None
        if select is not None and select in ids:
            index = ids.index(select)
        elif decided is not None:
            start = ids.index(decided) + 1 if decided in ids else (old_ids.index(decided) if decided in old_ids else 0)
            index = self._next_pending(shown, start)
        elif previous is not None and old_ids and previous < len(old_ids) and old_ids[previous] in ids:
            index = ids.index(old_ids[previous])
        if index is None and shown:
            index = min(previous or 0, len(shown) - 1)
        queue.highlighted = index
        if index is not None:
            queue.scroll_to_highlight()
        self._show_header()
        caption = replies(len(items)) if len(items) <= LIST_LIMIT else f"showing {LIST_LIMIT} of {len(items)}"
        self.query_one("#review-caption", Static).update(f"{caption}  ·  thumbs-down first")
        self._show_current()

    @staticmethod
    def _next_pending(items: list[ReviewItem], start: int) -> int | None:
        """The first pending item from `start` on, else from the top; else the one at `start`."""
        if not items:
            return None
        start = max(0, min(start, len(items)))
        for index in [*range(start, len(items)), *range(0, start)]:
            if items[index].status == "pending":
                return index
        return min(start, len(items) - 1)

    def _show_header(self) -> None:
        text = Text(" Review", style="bold")
        counts = self.counts
        if counts is not None:
            text.append(
                f"  ·  {counts.pending} pending  ·  {counts.approved} approved  ·  {counts.rejected} rejected"
                f"  ·  {counts.approved_since} approved since the last adapter"
            )
        if not may_curate(self.settings):
            text.append(f"  ·  read-only: {one_line(self.settings.user, 30)} is not a curator", style="bold red")
        self.query_one("#review-header", Static).update(text)

    def _show_filters(self) -> None:
        status = self.status_filter or "all"
        rating = {None: "any", "down": "▼ down", "up": "▲ up"}[self.rating_filter]
        self.query_one("#filter-status", Static).update(f"status: {status} (f)")
        self.query_one("#filter-rating", Static).update(f"rating: {rating} (g)")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list is self.queue and self.current is not self._wanted:
            self._show_current()  # (a redraw of the list highlights the same item again: no new render)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list is self.queue:
            self.detail.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in FILTER_INPUTS:
            if self._filter_timer is not None:
                self._filter_timer.stop()
            self._filter_timer = self.set_timer(FILTER_DELAY_S, self._apply_filters)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id in FILTER_INPUTS:
            self._apply_filters()
            self.queue.focus()

    def _apply_filters(self) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        self.reload()

    # -- the detail pane ---------------------------------------------------------------------

    def _show_current(self) -> None:
        """Show the highlighted item; renders are serialized, and quick moves skip the ones between."""
        self._wanted = self.current
        self._wanted_version += 1
        if not self._rendering:
            self._rendering = True
            self.run_worker(self._render_loop(), group="review-detail", exit_on_error=False)

    async def _render_loop(self) -> None:
        try:
            while self._shown_version != self._wanted_version:
                version, item = self._wanted_version, self._wanted
                await self._render_detail(item)
                self.shown, self._shown_version = item, version
        finally:
            self._rendering = False

    async def _render_detail(self, item: ReviewItem | None) -> None:
        detail = self.detail
        widgets: list[Widget]
        if item is None:
            widgets = [Static("Nothing to review with these filters: f changes the status, g the rating.",
                              classes="review-empty", markup=False)]
        else:
            try:
                thread = self.store.thread(item.message.conversation_id, leaf_id=item.message.id)
                ratings = self.store.feedback_for(item.message.id)
            except AssistantError as exc:
                widgets = [Static(f"Could not read this reply: {one_line(str(exc), 200)}", markup=False)]
            else:
                widgets = self._detail_widgets(item, thread, ratings)
        await detail.remove_children()
        await detail.mount_all(widgets)
        detail.scroll_home(animate=False)

    def _detail_widgets(self, item: ReviewItem, thread: list[Message], ratings: list[Feedback]) -> list[Widget]:
        reply = item.message
        meta = Text()
        meta.append(one_line(item.conversation_title, 80) or "Untitled", style="bold")
        meta.append(f"  ·  {one_line(item.conversation_user, 30)}  ·  reply {reply.id}", style="dim")
        meta.append(f"  ·  {clock_time(reply.created_at)}", style="dim")
        if reply.model:
            meta.append(f"  ·  {one_line(reply.model + (f' + {reply.adapter}' if reply.adapter else ''), 60)}",
                        style="dim")
        meta.append("\nstatus: ")
        meta.append(item.status, style=f"bold {STATUS_STYLES.get(item.status, '')}")
        if item.curator and item.reviewed_at:
            meta.append(f" by {one_line(item.curator, 30)}, {clock_time(item.reviewed_at)}", style="dim")
        meta.append(f"  ·  ▼ {item.downs}  ▲ {item.ups}")
        meta.append("  ·  tags: ")
        meta.append(", ".join(one_line(tag, 40) for tag in item.tags) or "none", style="italic")
        widgets: list[Widget] = [Static(meta, classes="review-meta")]
        if item.disagreement:
            ups = ", ".join(one_line(f.user, 20) for f in ratings if f.rating > 0)
            downs = ", ".join(one_line(f.user, 20) for f in ratings if f.rating < 0)
            flag = f"⚠ disagreement: helpful to {ups}; not helpful to {downs}"
            widgets.append(Static(flag, classes="review-flag", markup=False))
        widgets.append(_section("Conversation"))
        for message in thread:
            if message.id != reply.id:
                widgets.extend(_message_widgets(message))
        widgets.append(_section("Reply (as the model wrote it)"))
        widgets.append(Markdown(terminal_safe(reply.content), classes="review-markdown", open_links=False))
        widgets.append(_section("Ratings"))
        widgets.append(Static(rating_text(ratings), classes="review-ratings"))
        if item.proposed_correction:
            widgets.append(_section("Proposed correction (by a rater)"))
            widgets.append(Static(Text(terminal_safe(item.proposed_correction)), classes="review-plain"))
        if item.answer:
            widgets.append(_section(f"Curated answer (from the {item.source or 'curator'})"))
            widgets.append(Markdown(terminal_safe(item.answer), classes="review-markdown", open_links=False))
        else:
            trains_on = "the proposed correction" if item.proposed_correction else "the reply as written"
            widgets.append(Static(f"No curated answer yet: approving trains on {trains_on}.",
                                  classes="review-note", markup=False))
        widgets.extend(self._training_text_widgets(item.curated_answer))
        return widgets

    @functools.cached_property
    def _scrubber(self) -> Scrubber | None:
        """The dataset builder's scrubber, compiled once per screen; None for a bad pattern (`dataset
        build` says so)."""
        try:
            return Scrubber(dict(self.settings.pii_patterns), self.settings.pii_allow)
        except ValueError:
            return None

    def _training_text_widgets(self, answer: str) -> list[Widget]:
        """What the dataset will hold for this answer when PII scrubbing changes it: the placeholders
        a curator approves are what the model learns to write."""
        if self._scrubber is None:
            return []
        scrub = self._scrubber.conversation()
        scrubbed = scrub.scrub(answer)
        if scrubbed == answer:
            return []
        found = ", ".join(f"{kind} {count}" for kind, count in sorted(scrub.counts.items()))
        return [
            _section("What training sees (PII scrubbed)"),
            Static(Text(terminal_safe(scrubbed)), classes="review-plain"),
            Static(
                f"⚠ placeholders ({found}): the model learns to write them. If they are your organisation's own "
                "addresses or numbers, list them in pii_allow; else edit the answer (e).",
                classes="review-flag",
                markup=False,
            ),
        ]

    # -- keys --------------------------------------------------------------------------------

    def _typing(self) -> bool:
        return isinstance(self.focused, (Input, TextArea))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in QUEUE_ACTIONS and self._typing():
            return False  # the key is text in the input or the editor
        if action in ("save_edit", "cancel_edit"):
            return self.editing is not None
        return True

    def _curator(self) -> str | None:
        """The curating user, or None after saying why this user may not curate."""
        try:
            return require_curator(self.settings)
        except AssistantError as exc:
            self.notify(one_line(str(exc), 200), severity="error", markup=False)
            return None

    def _target(self) -> tuple[str, ReviewItem] | None:
        curator = self._curator()
        if curator is None:
            return None
        item = self.current
        if item is None:
            self.notify("No reply here to act on.", markup=False)
            return None
        return curator, item

    def action_approve(self) -> None:
        target = self._target()
        if target is None:
            return
        curator, item = target
        with self.reported("Not approved"):
            (approved,) = self.store.approve([item.message.id], curator)
            self.notify(f"Approved (trains on the {approved.source}): {one_line(item.conversation_title, 60)}",
                        markup=False)
            self.reload(decided=item.message.id)

    def action_reject(self) -> None:
        target = self._target()
        if target is None:
            return
        curator, item = target
        with self.reported("Not rejected"):
            self.store.reject([item.message.id], curator)
            self.notify(f"Rejected: {one_line(item.conversation_title, 60)}", markup=False)
            self.reload(decided=item.message.id)

    def action_edit(self) -> None:
        target = self._target()
        if target is None:
            return
        _, item = target
        self.editing = item
        self.query_one("#review-editor").display = True
        starts_from = (
            "your curated answer" if item.answer else "the rater's correction" if item.proposed_correction else "the reply as written"
        )
        self.query_one("#review-editor-title", Static).update(
            f"Ideal answer for reply {item.message.id} in “{one_line(item.conversation_title, 40) or 'Untitled'}”, "
            f"starting from {starts_from} (ctrl+s saves, esc cancels, ctrl+a selects all)"
        )
        self.editor.load_text(terminal_safe(item.curated_answer))
        self.editor.focus()
        self.refresh_bindings()

    def action_save_edit(self) -> None:
        item = self.editing
        if item is None:
            return
        curator = self._curator()
        if curator is None:
            return
        with self.reported("Not saved"):
            self.store.edit(item.message.id, curator, self.editor.text)
            self._close_editor()
            self.notify(f"Saved the curated answer: {one_line(item.conversation_title, 60)}", markup=False)
            self.reload(decided=item.message.id)

    def action_cancel_edit(self) -> None:
        self._close_editor()

    def action_select_all_answer(self) -> None:
        if self.editing is not None:
            self.editor.select_all()

    def _close_editor(self) -> None:
        self.editing = None
        self.query_one("#review-editor").display = False
        self.editor.load_text("")
        self.queue.focus()
        self.refresh_bindings()

    def action_tags(self) -> None:
        target = self._target()
        if target is None:
            return
        curator, item = target
        message_id = item.message.id

        def tagged(value: str | None) -> None:
            if value is None:
                return
            with self.reported("Tags not saved"):
                saved = self.store.set_tags(message_id, curator, value.split(","))
                self.notify(f"Tags: {', '.join(one_line(t, 40) for t in saved.tags) or 'none'}", markup=False)
                self.reload(select=message_id)

        current = ", ".join(one_line(tag, 40) for tag in item.tags)
        self.app.push_screen(TextPrompt("Tags (comma-separated)", current), tagged)

    def action_undo(self) -> None:
        curator = self._curator()
        if curator is None:
            return
        with self.reported("Nothing undone"):
            what = self._last_action(curator)
            undone = self.store.undo(curator)
            if not undone:
                self.notify("Nothing to undo", markup=False)
                return
            self.notify(f"Undid the {UNDONE_WHAT.get(what or '', 'last action')} of {replies(len(undone))}",
                        markup=False)
            self.reload(select=undone[0])

    def _last_action(self, curator: str) -> str | None:
        """What `store.undo(curator)` is about to revert, to say so (the store returns only ids)."""
        for entry in self.store.audit_log(limit=200):
            if entry.actor == curator and not entry.undone and entry.action in UNDONE_WHAT:
                return entry.action
        return None

    def action_approve_all(self) -> None:
        curator = self._curator()
        if curator is None:
            return
        self._apply_filters()  # what is approved is what the filters match now, not at the last redraw
        ids = [item.message.id for item in self.items if item.status != "approved"]
        if not ids:
            self.notify("Nothing to approve with these filters.", markup=False)
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            with self.reported("Not approved"):
                self.store.approve(ids, curator)
                self.notify(f"Approved {replies(len(ids))}; u undoes it", markup=False)
            self.reload()

        self.app.push_screen(Confirm(f"Approve {replies(len(ids))}?"), answered)

    def action_move(self, step: int) -> None:
        queue = self.queue
        if not queue.option_count:
            return
        index = queue.highlighted
        queue.highlighted = 0 if index is None else max(0, min(queue.option_count - 1, index + step))

    def action_cycle_status(self) -> None:
        self.status_filter = STATUSES[(STATUSES.index(self.status_filter) + 1) % len(STATUSES)]
        self._show_filters()
        self.reload()

    def action_cycle_rating(self) -> None:
        self.rating_filter = RATINGS[(RATINGS.index(self.rating_filter) + 1) % len(RATINGS)]
        self._show_filters()
        self.reload()

    def action_focus_search(self) -> None:
        self.query_one("#review-search", Input).focus()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(REVIEW_KEYS))

    def action_back(self) -> None:
        """Esc: out of a filter input back to the queue; else close."""
        if isinstance(self.focused, Input):
            self._apply_filters()
            self.queue.focus()
            return
        self.action_close()

    def action_close(self) -> None:
        if self.standalone:
            self.app.exit()
        else:
            self.dismiss()


def _section(title: str) -> Static:
    return Static(title, classes="review-section", markup=False)


def _message_widgets(message: Message) -> list[Widget]:
    """A message of the conversation: what people typed as plain text, replies as Markdown."""
    if message.role == "assistant":
        return [
            Static("Assistant", classes="review-who", markup=False),
            Markdown(terminal_safe(message.content), classes="review-markdown", open_links=False),
        ]
    who = "User" if message.role == "user" else message.role.title()
    return [Static(Text.assemble((who, "bold"), "\n", terminal_safe(message.content)), classes="review-plain")]
