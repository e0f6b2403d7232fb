"""The main screen: conversation list, message list, input. Chat logic lives here, models do not.

Replies are consumed in a thread worker that posts chunks; the handlers on the event loop update
the widgets and write to the store, so the UI never waits on a model.

A question is measured before it is stored or sent (`chat.check_fits`, in a thread worker: the
model's tokenizer counts, in its own process): one too long for the model is refused, its text put
back in the input, and the reason stays under the input until a question is sent. One sent while the
model loads cannot be measured; if the model refuses it then, its reply is stored as failed and
carries the reason in its header with what helps (shorten it: asking again cannot help), and its text
goes back into the input to be edited.

A deleted conversation is erased in a thread worker (assistant/erasure.py: seconds for a long one,
longer while another chat reads the database); it is no longer listed meanwhile.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass

from textual import work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from assistant import erasure
from assistant.chat import (
    check_fits,
    check_message,
    context,
    failed_record,
    generation_params,
    reply_record,
    too_long_for_the_model,
    with_references,
)
from assistant.engine.base import Backend, GenerationParams, ModelIdentity, Reply
from assistant.errors import AssistantError, InputError, ServerError
from assistant.store import Conversation, Message, ReplyRecord
from assistant.text import one_line, terminal_safe
from assistant.tui.messages import (
    ConversationErased,
    MessageChecked,
    PairJudged,
    PairUnavailable,
    ReplyChunk,
    ReplyFailed,
    ReplyFinished,
)
from assistant.tui.screens.base import AppScreen
from assistant.tui.screens.dialogs import Confirm, TextPrompt
from assistant.tui.screens.feedback import FeedbackDraft, FeedbackScreen
from assistant.tui.widgets.ab import LABELS, ABPair
from assistant.tui.widgets.chatlog import MessageList, MessageView, ReplyStream
from assistant.tui.widgets.composer import Composer
from assistant.tui.widgets.sidebar import Sidebar
from assistant.tui.widgets.status import StatusBar

log = logging.getLogger(__name__)

SEARCH_DELAY_S = 0.15
SIDEBAR_LIMIT = 60  # the list shows the latest; search reaches every conversation
SIDEBAR_DELAY_S = 0.3
MIN_CHUNK_INTERVAL_S = 1 / 15
MAX_CHUNK_INTERVAL_S = 0.25
CHARS_PER_SECOND = 20_000  # a reply of n characters is redrawn at most every n / 20,000 s
TYPING_QUIET_S = 0.3  # a key typed this recently means the user is typing
TYPING_CHUNK_INTERVAL_S = 0.5
PICK_FIRST = "Pick the better answer first: Esc, then a, b, t (tie) or n (both bad); Esc again skips the pick."
OUTCOME_TEXT = {"left": "A is better", "right": "B is better", "tie": "a tie", "both_bad": "both bad"}


@dataclass
class ActiveReply:
    """A reply being streamed: where it goes and what it answers.

    `reply` is set by the worker thread once the backend has started it; cancelling before that is
    remembered and applied then (each side writes its field before reading the other's).
    """

    key: int
    identity: ModelIdentity
    params: GenerationParams
    conversation_id: int
    question: Message
    view: MessageView | None
    stream: ReplyStream | None
    reply: Reply | None = None
    cancelled: bool = False
    discarded: bool = False  # its conversation was deleted: nothing to store
    blind: bool = False  # one answer of a blind A/B pair (the pair decides what the thread continues with)

    def cancel(self) -> None:
        if self.reply is not None and self.reply.stats is not None:
            return  # written already: the cancel event may be the next reply's (a pair's second answer)
        self.cancelled = True
        if self.reply is not None:
            self.reply.cancel()


@dataclass
class PairState:
    """A blind A/B pair: one question answered by the version serving and by a candidate, shown as A
    (left) and B (right) in random order, written one after the other, then picked."""

    key: int
    conversation_id: int
    question: Message
    candidate: str
    sides: tuple[ActiveReply, ActiveReply]  # left (A), right (B)
    alternate_side: int  # which side the candidate writes
    widget: ABPair | None
    ended: dict[int, Message | None]  # side -> its stored reply (None: not stored), once it ended
    judging: bool = False
    abandoned: bool = False  # the app is quitting: the answer not started is not asked for

    def side_of(self, active: ActiveReply) -> int | None:
        return next((i for i, side in enumerate(self.sides) if side is active), None)


class ChatScreen(AppScreen):
    BINDINGS = [
        Binding("escape", "escape", "Stop/replies"),
        Binding("ctrl+f", "focus_search", "Search", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.conversation: Conversation | None = None
        self.thread: list[Message] = []
        self.active: ActiveReply | None = None
        self.pair: PairState | None = None  # a blind A/B pair being written or waiting for its pick
        self.ab_refused: dict[str, str] = {}  # candidate versions the backend could not load, and why
        self.waiting: Message | None = None  # a question sent before the model was ready
        self.checking: str | None = None  # a question being measured against the model's context
        self.erasing: set[int] = set()  # conversations deleted and being erased: no longer listed
        self._keys = itertools.count(1)
        self._search_timer: Timer | None = None
        self._search_text = ""

    # -- layout ------------------------------------------------------------------------------

    def compose(self):  # noqa: ANN201
        yield Static("", id="title-bar", markup=False)
        yield Static("", id="demo-banner", markup=False)
        with Horizontal(id="main"):
            yield Sidebar(id="sidebar")
            with Vertical(id="chat"):
                yield MessageList(id="messages")
                yield Composer(id="composer")
                yield Static("", id="composer-notice", markup=False)
        yield StatusBar(id="status")
        yield Footer()

    @property
    def messages(self) -> MessageList:
        return self.query_one(MessageList)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    @property
    def sidebar(self) -> Sidebar:
        return self.query_one(Sidebar)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    def on_mount(self) -> None:
        self.refresh_sidebar()
        self.update_title()
        self.composer.focus()
        # The latest conversation is drawn right after the first frame, which comes sooner without it.
        self.call_after_refresh(self._open_latest)

    async def _open_latest(self) -> None:
        if self.conversation is not None or self.thread:
            return  # the user got there first
        with self.reported("Could not open the latest conversation"):
            recent = self.store.conversations(user=self.settings.user, limit=1)
            if recent:
                await self.open_conversation(recent[0].id)
                return
        await self.new_conversation()

    def update_title(self) -> None:
        title = self.conversation.title if self.conversation and self.conversation.title else "New conversation"
        self.query_one("#title-bar", Static).update(
            f" {one_line(title, 100)}  ·  {one_line(self.settings.user, 30)}", layout=False
        )

    # -- conversations -----------------------------------------------------------------------

    def touch_sidebar(self) -> None:
        """The open conversation changed (title, time, position): redraw only its entry when it can,
        else the whole list a moment later, once the reply has started (it costs tens of ms)."""
        if self.conversation is None or self._search_text.strip() or not self.sidebar.update_top(self.conversation):
            self.set_timer(SIDEBAR_DELAY_S, self.refresh_sidebar)

    def refresh_sidebar(self) -> None:
        with self.reported("Could not list the conversations"):
            self._fill_sidebar()

    def _fill_sidebar(self) -> None:
        current = self.conversation.id if self.conversation else None
        if self._search_text.strip():
            hits = self.store.search(self._search_text, user=self.settings.user)
            hits = [h for h in hits if h.conversation.id not in self.erasing]
            self.sidebar.show_hits(hits, self._search_text, current)
        else:
            conversations = self.store.conversations(
                user=self.settings.user,
                include_archived=self.sidebar.show_archived,
                limit=SIDEBAR_LIMIT + 1 + len(self.erasing),
            )
            conversations = [c for c in conversations if c.id not in self.erasing]
            self.sidebar.show_conversations(
                conversations[:SIDEBAR_LIMIT], current, more=len(conversations) > SIDEBAR_LIMIT
            )

    async def new_conversation(self) -> None:
        await self._detach_active_view()
        self.conversation = None
        self.thread = []
        await self.messages.show([], hint=self.empty_hint())
        self.update_title()
        self.composer.focus()

    def empty_hint(self) -> str:
        hint = "Ask a question below; Enter sends. Press F1 for every key."
        backend = self.app.backend
        if backend is not None and backend.identity.is_demo:
            from assistant.demo.samples import sample_openers

            suggestions = "\n".join(f"  • {one_line(q, 90)}" for q in sample_openers(3))
            hint += f"\n\nThe demo model knows the sample conversations. Try one of their questions:\n{suggestions}"
        return hint

    async def open_conversation(self, conversation_id: int, leaf_id: int | None = None) -> None:
        await self._detach_active_view()
        self.conversation = self.store.conversation(conversation_id)
        self.thread = self.store.thread(conversation_id, leaf_id)
        await self.messages.show(self._views(self.thread))
        self.update_title()
        replies = [m for m in self.thread if m.role == "assistant"]
        self.status.reply_speed(replies[-1].tokens_per_s if replies else None)
        if (
            self.active
            and self.active.conversation_id == conversation_id
            and self.active.view is None
            and not self.active.blind
        ):
            # Back to the conversation whose reply is still streaming: show it again.
            streamed = self.active.reply.text if self.active.reply is not None else ""
            view = await self.messages.append(MessageView("assistant", text=streamed))
            self.active.view, self.active.stream = view, view.stream()

    def _views(self, thread: list[Message]) -> list[MessageView]:
        ratings = self.store.current_ratings([m.id for m in thread if m.role == "assistant"], self.settings.user)
        views = []
        for message in thread:
            view = MessageView(message.role, message)
            if message.role == "assistant":
                view.rating = ratings.get(message.id)
                view.alternatives = self._sibling_position(message)
                view.refresh_header()
            views.append(view)
        return views

    def _sibling_position(self, message: Message) -> tuple[int, int]:
        siblings = [m.id for m in self.store.siblings(message.id)]
        return siblings.index(message.id) + 1, len(siblings)

    async def _detach_active_view(self) -> None:
        """The list is about to be rebuilt: a streaming reply keeps going, but stops drawing. A blind
        A/B pair is not judged then: its answers are written and stored, and the thread goes on as stored."""
        if self.pair is not None:
            pair = self.pair
            if pair.widget is not None and len(pair.ended) == 2 and not pair.judging:
                self.notify("The blind comparison was left without a pick.", markup=False)
            pair.widget = None
            for side in pair.sides:
                side.view = None
            if len(pair.ended) == 2:
                self.pair = None
        if self.active and self.active.stream is not None:
            stream, self.active.stream, self.active.view = self.active.stream, None, None
            await stream.stop()

    def on_sidebar_opened(self, event: Sidebar.Opened) -> None:
        self.run_worker(self._open_chosen(event.conversation_id), exclusive=True, group="open")

    async def _open_chosen(self, conversation_id: int) -> None:
        with self.reported("Could not open it"):
            await self.open_conversation(conversation_id)
            return
        self.refresh_sidebar()  # it may have been deleted in another window

    def _listed_conversation(self) -> Conversation | None:
        """The conversation highlighted in the list, if it still exists (another window may delete it)."""
        conversation_id = self.sidebar.highlighted_id
        if conversation_id is None:
            return None
        try:
            return self.store.conversation(conversation_id)
        except AssistantError as exc:
            self.notify(one_line(str(exc), 200), severity="warning", markup=False)
            self.refresh_sidebar()
            return None

    def on_sidebar_search_changed(self, event: Sidebar.SearchChanged) -> None:
        self._search_text = event.text
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(SEARCH_DELAY_S, self.refresh_sidebar)

    def on_sidebar_search_submitted(self, event: Sidebar.SearchSubmitted) -> None:
        """Enter in the search box: the search runs now (not after the typing pause, or the list could
        still show the rows before it) and its first match opens; an empty search opens nothing."""
        self._search_text = event.text
        if self._search_timer is not None:
            self._search_timer.stop()
        self.refresh_sidebar()
        if event.text.strip():
            self.sidebar.open_first()

    def action_focus_search(self) -> None:
        self.query_one("#search").focus()

    def action_rename_conversation(self) -> None:
        conversation = self._listed_conversation()
        if conversation is None:
            return
        conversation_id = conversation.id

        def renamed(title: str | None) -> None:
            if title is None:
                return
            with self.reported("Could not rename"):
                self.store.rename_conversation(conversation_id, title)
            if self.conversation and self.conversation.id == conversation_id:
                self.conversation = self.store.conversation(conversation_id)
                self.update_title()
            self.refresh_sidebar()

        self.app.push_screen(TextPrompt("Rename conversation", one_line(conversation.title)), renamed)

    def action_toggle_archive(self) -> None:
        conversation = self._listed_conversation()
        if conversation is None:
            return
        with self.reported("Could not archive"):
            self.store.set_archived(conversation.id, not conversation.archived)
            self.notify("Unarchived" if conversation.archived else "Archived", markup=False)
        self.refresh_sidebar()

    def action_toggle_show_archived(self) -> None:
        self.sidebar.show_archived = not self.sidebar.show_archived
        self.refresh_sidebar()

    def action_delete_conversation(self) -> None:
        conversation = self._listed_conversation()
        if conversation is None:
            return
        conversation_id = conversation.id

        title = one_line(conversation.title, 50) or "Untitled"

        async def answered(yes: bool | None) -> None:
            if not yes:
                return
            if self.active and self.active.conversation_id == conversation_id:
                self.active.discarded = True
                self.active.cancel()
            if self.pair is not None and self.pair.conversation_id == conversation_id:
                for side in self.pair.sides:
                    side.discarded = True
                    side.cancel()
            if self.waiting is not None and self.waiting.conversation_id == conversation_id:
                self.waiting = None
            self.erasing.add(conversation_id)
            if self.conversation and self.conversation.id == conversation_id:
                await self.new_conversation()
            self.refresh_sidebar()
            self.notify(f"Deleting “{title}”…", markup=False)
            self._erase(conversation_id, title)

        self.app.push_screen(Confirm(f"Delete “{title}” with all its messages and ratings?"), answered)

    @work(thread=True, group="erase", exit_on_error=False)
    def _erase(self, conversation_id: int, title: str) -> None:
        """Erase a deleted conversation off the event loop, on a connection of its own: the rows, the
        search index, the write-ahead log, snapshot files and log lines (assistant/erasure.py) take
        seconds for a long conversation, and the log waits for other chats' reads to end."""
        problem, warnings = None, ()
        try:
            store = self.store.reopen()
            try:
                warnings = erasure.delete_conversation(self.settings, store, conversation_id).warnings
            finally:
                store.close()
        except AssistantError as exc:
            problem = str(exc)
        except Exception as exc:  # reported in the UI; the app keeps running
            log.exception("erasing conversation %s failed", conversation_id)
            problem = f"unexpected {type(exc).__name__} (details in the log)"
        self.post_message(ConversationErased(conversation_id, title, problem, warnings))

    def on_conversation_erased(self, event: ConversationErased) -> None:
        self.erasing.discard(event.conversation_id)
        if event.problem is not None:
            self.notify(f"Could not delete “{event.title}”: {one_line(event.problem, 200)}", severity="error",
                        markup=False)
        else:
            self.notify(f"Deleted “{event.title}”", markup=False)
        for warning in event.warnings:
            self.notify(one_line(warning, 300), severity="warning", markup=False, timeout=15)
        self.refresh_sidebar()

    # -- sending and streaming ---------------------------------------------------------------

    async def on_composer_submitted(self, event: Composer.Submitted) -> None:
        text = event.text
        try:
            check_message(text, self.settings, len(self.thread))
        except AssistantError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return
        if self.active is not None or self.waiting is not None or self.checking is not None or self.pair is not None:
            self.composer.restore(text)
            if self.pair is not None and self.active is None:
                self.notify(PICK_FIRST, markup=False)
            elif self.waiting is not None:
                self.notify("The model is still loading; your earlier question is answered first.", markup=False)
            elif self.active is not None:
                self.notify("A reply is still being written: wait, or press Esc to stop it.", markup=False)
            return
        backend = self.app.backend
        if backend is None:  # cannot be measured yet: a refusal comes as its reply, stored as failed
            await self.send(text)
            return
        self.checking = text
        system_prompt = self.conversation.system_prompt if self.conversation else self.settings.system_prompt
        self._check_fits(backend, system_prompt, text, generation_params(self.settings))

    @work(thread=True, exclusive=True, group="check", exit_on_error=False)
    def _check_fits(self, backend: Backend, system_prompt: str, text: str, params: GenerationParams) -> None:
        try:
            check_fits(backend, system_prompt, text, params)
        except InputError as exc:
            self.post_message(MessageChecked(text, str(exc)))
            return
        except Exception:  # cannot tell (the model process is gone, say): sending it reports what is wrong
            log.warning("could not measure a question", exc_info=True)
        self.post_message(MessageChecked(text, None))

    async def on_message_checked(self, event: MessageChecked) -> None:
        self.checking = None
        if event.problem is not None:
            self.composer.restore(event.text)
            self.show_refusal(f"Not sent: {one_line(event.problem, 200)}. Shorten it and press Enter again.")
            return
        await self.send(event.text)

    def show_refusal(self, reason: str | None) -> None:
        """Why the text in the input was not sent (None: nothing refused); it stays until a question is sent."""
        notice = self.query_one("#composer-notice", Static)
        notice.update(reason or "")
        notice.display = reason is not None

    async def send(self, text: str) -> None:
        """Store the question and ask for its reply (or keep it for the model still loading)."""
        self.show_refusal(None)
        question = None
        with self.reported("Not sent (your text is kept)"):
            if self.conversation is None:
                self.conversation = self.store.create_conversation(self.settings.user, self.settings.system_prompt)
            parent = self.thread[-1].id if self.thread else None
            question = self.store.add_message(self.conversation.id, "user", text, parent_id=parent)
        if question is None:
            self.composer.restore(text)
            return
        self.conversation = self.store.conversation(self.conversation.id)
        self.thread.append(question)
        self.update_title()
        self.touch_sidebar()
        candidate = self._ab_by_share()
        if candidate is not None:
            await self.start_pair(question, candidate, shown_with=MessageView("user", question))
            return
        await self.start_reply(question, shown_with=MessageView("user", question))

    async def start_reply(self, question: Message, shown_with: MessageView | None = None) -> None:
        """Stream a reply to `question`, in the open conversation or (when the user has moved on) unseen.

        `shown_with`, the question's own view, is added together with the reply's (one layout pass).
        """
        backend = self.app.backend
        if backend is None and shown_with is not None:
            await self.messages.append(shown_with)
        if backend is None:
            if self.app.load_error is not None:
                self.notify(f"No model to answer: {one_line(self.app.load_error, 160)}", severity="error", markup=False)
                return
            self.waiting = question
            self.notify("The model is still loading; the reply starts when it is ready.", markup=False)
            return
        shown = self.conversation is not None and self.conversation.id == question.conversation_id
        if shown:
            assert self.conversation is not None
            messages = context(self.conversation, self.thread)
            views = [v for v in (shown_with, MessageView("assistant")) if v is not None]
            view: MessageView | None = await self.messages.append(*views)
        else:
            conversation = self.store.conversation(question.conversation_id)
            messages = context(conversation, self.store.thread(conversation.id, question.id))
            view = None
        params = generation_params(self.settings)
        self.active = self._new_reply(backend, params, question, view)
        self.active.stream = view.stream() if view is not None else None
        self.status.set_streaming(True)
        self._consume(self.active, backend, messages, params)

    def _new_reply(
        self, backend: Backend, params: GenerationParams, question: Message, view: MessageView | None, *, blind: bool = False
    ) -> ActiveReply:
        """A reply to `question` about to be asked for (its stream, if shown, attached by the caller)."""
        return ActiveReply(
            key=next(self._keys),
            identity=backend.identity,
            params=params,
            conversation_id=question.conversation_id,
            question=question,
            view=view,
            stream=None,
            blind=blind,
        )

    async def model_ready(self) -> None:
        if self.conversation is None and not self.thread:
            await self.messages.show([], hint=self.empty_hint())
        if self.waiting is not None:
            question, self.waiting = self.waiting, None
            with self.reported("The question sent while the model loaded was not answered"):
                await self.start_reply(question)

    def model_failed(self) -> None:
        """No model will come: a question waiting for one stays unanswered (it is stored)."""
        self.waiting = None

    @work(thread=True, group="reply", exit_on_error=False)
    def _consume(self, active: ActiveReply, backend: Backend, messages: list, params: GenerationParams) -> None:
        """Start the reply and read it, off the event loop."""
        self._read_reply(active, backend, messages, params)

    def _read_reply(
        self,
        active: ActiveReply,
        backend: Backend,
        messages: list,
        params: GenerationParams,
        alternate: bool = False,
        grounded: bool = False,
    ) -> None:
        """Start a reply and read it (in a thread worker); hand the text over in batches.

        Tokens can come faster than a screen can usefully show them, and each redraw of a growing
        message costs a full layout: batches are 1/15 s apart for short replies and up to 1/4 s apart
        for very long ones, and 1/2 s apart while the user is typing, whose keys come first.
        """
        key = active.key
        try:
            if not grounded:  # the curated answers closest to the question (`references`), where they fit
                messages = with_references(messages, self.app.references, self.settings, backend, params)
            reply = backend.stream(messages, params, alternate=True) if alternate else backend.stream(messages, params)
        except Exception as exc:  # reported in the UI; the app keeps running
            self.post_message(ReplyFailed(key, None, str(exc)))
            return
        active.reply = reply
        if active.cancelled:
            reply.cancel()
        pending: list[str] = []
        last = time.monotonic()
        try:
            for chunk in reply:
                pending.append(chunk)
                now = time.monotonic()
                interval = min(MAX_CHUNK_INTERVAL_S, max(MIN_CHUNK_INTERVAL_S, len(reply.text) / CHARS_PER_SECOND))
                if now - self.composer.last_key_at < TYPING_QUIET_S:
                    interval = TYPING_CHUNK_INTERVAL_S
                if now - last >= interval:
                    self.post_message(ReplyChunk(key, "".join(pending)))
                    pending.clear()
                    last = now
        except Exception as exc:  # reported in the UI; the app keeps running
            self.post_message(ReplyFailed(key, reply, str(exc)))
            return
        if pending:
            self.post_message(ReplyChunk(key, "".join(pending)))
        self.post_message(ReplyFinished(key, reply))

    async def on_reply_chunk(self, event: ReplyChunk) -> None:
        active = self.active
        if active is None or active.key != event.key or active.stream is None:
            return
        await active.stream.write(terminal_safe(event.text))

    async def on_reply_finished(self, event: ReplyFinished) -> None:
        active = self.active
        if active is None or active.key != event.key:
            return
        self.active = None
        if active.stream is not None:
            await active.stream.stop()
        self.status.set_streaming(False)
        if active.discarded:
            await self._pair_side_ended(active, None)
            return
        answer = await self._store_reply(active, reply_record(event.reply, active.identity, active.params))
        if answer is not None and not active.blind:  # a blind answer's speed could tell the versions apart
            self.status.reply_speed(answer.tokens_per_s)
        await self._pair_side_ended(active, answer)

    async def _store_reply(self, active: ActiveReply, record: ReplyRecord) -> Message | None:
        """Store a finished or failed reply and show it as stored, with its place among its siblings."""
        answer = None
        with self.reported("The reply could not be saved"):
            answer = self.store.add_message(
                active.conversation_id, "assistant", record.content, parent_id=active.question.id, reply=record
            )
        if answer is None:
            return None
        if self.conversation and self.conversation.id == active.conversation_id:
            if not active.blind:  # a blind answer joins the thread once picked
                self.thread.append(answer)
            if active.view is not None:
                active.view.alternatives = self._sibling_position(answer)
                await active.view.set_message(answer)
            for view in self.messages.views:
                if view.message is not None and view.message.parent_id == active.question.id:
                    view.alternatives = self._sibling_position(view.message)
                    view.refresh_header()
            # The conversation went to the top of the list when the question was sent.
            self.conversation = self.store.conversation(active.conversation_id)
        return answer

    async def on_reply_failed(self, event: ReplyFailed) -> None:
        """The reply could not start or broke off (the model server went down): it is stored as failed,
        with what had arrived, and the question stays to be asked again (`r` on the failed reply)."""
        active = self.active
        if active is None or active.key != event.key:
            return
        self.active = None
        if active.stream is not None:
            await active.stream.stop()
        self.status.set_streaming(False)
        self.app.check_backend_health()
        if too_long_for_the_model(event.error):
            self._give_back_to_edit(active, event.error)
        elif active.blind:
            self.notify(f"Answer {self._side_label(active)} failed: {one_line(event.error, 200)}", severity="error",
                        markup=False, timeout=10)  # fmt: skip
        else:
            self.notify(
                f"The reply failed: {one_line(event.error, 200)}. Your question is kept: Esc, then r, asks again.",
                severity="error",
                markup=False,
                timeout=10,
            )
        if active.discarded:
            await self._pair_side_ended(active, None)
            return
        if event.reply is not None and event.reply.stats is not None:
            record = reply_record(event.reply, active.identity, active.params, error=event.error)
        else:
            record = failed_record(active.identity, active.params, event.error)
        await self._pair_side_ended(active, await self._store_reply(active, record))

    def _give_back_to_edit(self, active: ActiveReply, error: str) -> None:
        """Asking again cannot help a question too long for the model: its text goes back into the input
        (unless the user is writing another), with the reason under it, to be shortened and sent again."""
        shown = self.conversation is not None and self.conversation.id == active.conversation_id
        if shown and not self.composer.text.strip():
            self.composer.restore(active.question.content)
        self.show_refusal(f"Not answered: {one_line(error, 200)}. Shorten the question and send it again.")

    def action_escape(self) -> None:
        search = self.sidebar.query_one("#search", Input)
        if self.focused is search and search.value:
            search.value = ""  # Esc clears the search (a streaming reply goes on): the list shows the conversations again
            return
        if self.active is not None:
            self.active.cancel()
            return
        if self.pair is not None and self.pair.widget is not None and len(self.pair.ended) == 2:
            self.pair.widget.focus()  # Esc there again skips the pick
            return
        if self.waiting is not None:
            self.waiting = None
            self.notify("The question stays unanswered; the model is still loading.", markup=False)
            return
        # From the input, the list or the search box: to the replies, the latest highlighted (the footer's
        # "Stop/replies").
        if self.focused is not self.messages:
            self.messages.focus()
            self.messages.highlight_latest_reply()

    def save_reply_in_progress(self, wait_s: float = 1.0) -> None:
        """The app is closing: stop the reply being written and store what it has so far (of a blind pair,
        the answer not started is not asked for)."""
        if self.pair is not None:
            self.pair.abandoned = True
        active = self.active
        if active is None or active.reply is None or active.discarded:
            return
        active.cancel()
        deadline = time.monotonic() + wait_s
        while active.reply.stats is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the reading thread settles the stats as soon as the model stops
        if active.reply.stats is None:
            return
        self.active = None
        with self.reported("The reply could not be saved"):
            self.store.add_message(
                active.conversation_id,
                "assistant",
                active.reply.text,
                parent_id=active.question.id,
                reply=reply_record(active.reply, active.identity, active.params),
            )

    def action_focus_composer(self) -> None:
        self.composer.focus()

    # -- acting on the highlighted reply -----------------------------------------------------

    def _highlighted_reply(self) -> MessageView | None:
        view = self.messages.highlighted_view
        if view is None or view.role != "assistant" or view.message is None:
            self.notify("Highlight a finished reply first (Up/Down).", markup=False)
            return None
        return view

    def action_rate(self, rating: int) -> None:
        view = self._highlighted_reply()
        if view is None:
            return
        assert view.message is not None
        with self.reported("Rating not saved"):
            view.rating = self.store.rate(view.message.id, self.settings.user, rating)
            view.refresh_header()
            self.notify("Rated helpful" if rating > 0 else "Rated not helpful", markup=False)

    def action_feedback(self) -> None:
        view = self._highlighted_reply()
        if view is None:
            return
        message = view.message
        assert message is not None
        current = view.rating

        def saved(draft: FeedbackDraft | None) -> None:
            if draft is None:
                return
            with self.reported("Feedback not saved"):
                view.rating = self.store.rate(
                    message.id,
                    self.settings.user,
                    draft.rating,
                    reasons=draft.reasons,
                    comment=draft.comment,
                    correction=draft.correction,
                )
                view.refresh_header()
                self.notify("Feedback saved", markup=False)

        self.app.push_screen(FeedbackScreen(view.body_text, current), saved)

    def action_copy(self) -> None:
        view = self._highlighted_reply()
        if view is None:
            return
        assert view.message is not None
        self.app.copy_to_clipboard(view.message.content)
        self.notify("Copied the reply", markup=False)

    async def action_regenerate(self) -> None:
        view = self._highlighted_reply()
        if view is None or self._busy():
            return
        question = await self._rewind(view)
        if question is not None:
            await self.start_reply(question)
            self.messages.highlight_latest_reply()

    def _busy(self) -> bool:
        """A reply or a blind pair is being written or picked, or no model yet: said, and True."""
        if self.active is not None or self.pair is not None or self.app.backend is None:
            self.notify("Wait for the current reply (or the model) first.", markup=False)
            return True
        return False

    async def _rewind(self, view: MessageView) -> Message | None:
        """The thread cut back to the question of reply `view`, and shown: to answer it again."""
        assert view.message is not None and self.conversation is not None
        question_id = view.message.parent_id
        if question_id is None:
            return None
        self.thread = self.store.thread(self.conversation.id, question_id)
        await self.messages.show(self._views(self.thread))
        return self.store.message(question_id)

    async def action_sibling(self, step: int) -> None:
        view = self._highlighted_reply()
        if view is None or self.conversation is None:
            return
        if self.active is not None or self.pair is not None:
            self.notify("Wait for the current reply first.", markup=False)
            return
        assert view.message is not None
        siblings = self.store.siblings(view.message.id)
        index = [m.id for m in siblings].index(view.message.id) + step
        if not 0 <= index < len(siblings):
            return
        position = self.messages.highlighted
        leaf = self.store.latest_descendant(siblings[index].id)
        with self.reported("Could not remember the answer shown"):
            self.store.set_leaf(self.conversation.id, leaf)  # reopened later, the conversation shows it
        await self.open_conversation(self.conversation.id, leaf)
        self.messages.highlighted = position

    # -- blind A/B: one question answered by the version serving and by the candidate -------------

    def ab_candidate(self, *, say_why: bool = False) -> str | None:
        """The newest candidate version, when it can answer beside the one serving: not a chat pinned to
        one adapter, not the version serving, not one this chat could not load. `say_why`: a notice when not."""
        from assistant.adapters.ab import newest_candidate

        why = None
        backend = self.app.backend
        candidate = None
        if self.settings.adapter:
            why = "This chat is pinned to one adapter (the adapter setting): there is nothing to compare."
        elif backend is None:
            why = "The model is still loading."
        else:
            try:
                record = newest_candidate(self.store)
            except AssistantError as exc:
                record, why = None, f"Could not read the versions: {one_line(str(exc), 160)}"
            if record is None:
                why = why or ("No candidate version to compare with: a retrain keeps one when it is better but not "
                              "enough to promote (assistant models lists the versions).")  # fmt: skip
            elif record.version == backend.identity.adapter:
                why = f"{record.version} is the version answering: there is nothing to compare it with."
            elif record.version in self.ab_refused:
                why = f"{record.version} could not be loaded beside this version: {one_line(self.ab_refused[record.version], 160)}"
            else:
                candidate = record.version
        if candidate is None and say_why and why:
            self.notify(why, markup=False, timeout=8)
        return candidate

    def _ab_by_share(self) -> str | None:
        """The candidate, for the share of questions (`ab_share`) answered twice; else None."""
        share = self.settings.ab_share
        if share <= 0 or self.app.backend is None or self.app.ab_random.random() >= share:
            return None
        return self.ab_candidate()

    async def action_compare(self) -> None:
        """`b` on a reply: its question answered again, by the version serving and by the candidate, blind."""
        if self.pair is not None and self.pair.widget is not None and len(self.pair.ended) == 2:
            self.pair.widget.focus()  # the pick waits
            return
        view = self._highlighted_reply()
        if view is None or self._busy():
            return
        candidate = self.ab_candidate(say_why=True)
        if candidate is None:
            return
        question = await self._rewind(view)
        if question is not None:
            await self.start_pair(question, candidate)

    async def start_pair(self, question: Message, candidate: str, shown_with: MessageView | None = None) -> None:
        """Answer `question` (in the open conversation) twice, blind: the version serving and `candidate`,
        on sides drawn at random, written one after the other; then the agent picks."""
        backend = self.app.backend
        assert backend is not None and self.conversation is not None
        messages = context(self.conversation, self.thread)
        widget = ABPair()
        await self.messages.append(*[w for w in (shown_with, widget) if w is not None])
        params = generation_params(self.settings)
        sides = tuple(self._new_reply(backend, params, question, view, blind=True) for view in widget.sides)
        self.pair = PairState(
            key=next(self._keys),
            conversation_id=question.conversation_id,
            question=question,
            candidate=candidate,
            sides=sides,  # type: ignore[arg-type]
            alternate_side=0 if self.app.ab_random.random() < 0.5 else 1,
            widget=widget,
            ended={},
        )
        first = sides[0]
        first.stream = widget.sides[0].stream()
        widget.sides[0].writing = True
        widget.sides[0].refresh_header()
        self.active = first
        self.status.set_streaming(True)
        self._consume_pair(self.pair, backend, messages, params)

    @work(thread=True, group="reply", exit_on_error=False)
    def _consume_pair(self, pair: PairState, backend: Backend, messages: list, params: GenerationParams) -> None:
        """Load the candidate beside the version serving if it is not yet, then write both answers in turn."""
        try:
            loaded = backend.alternate
            if loaded is None or loaded.adapter != pair.candidate:
                backend.load_alternate(pair.candidate, self.settings.layout.version(pair.candidate))
        except Exception as exc:  # the question is answered once instead; the log has the details
            log.warning("could not load %s for a blind A/B pair: %s", pair.candidate, exc)
            refused = not isinstance(exc, ServerError)  # an unreachable server may answer next time
            self.post_message(PairUnavailable(pair.key, pair.candidate, str(exc), refused))
            return
        messages = with_references(messages, self.app.references, self.settings, backend, params)  # one prompt for both
        for index, side in enumerate(pair.sides):
            if pair.abandoned:
                return
            alternate = index == pair.alternate_side
            identity = backend.alternate if alternate else backend.identity
            if identity is not None:
                side.identity = identity
            self._read_reply(side, backend, messages, params, alternate=alternate, grounded=True)

    async def on_pair_unavailable(self, event: PairUnavailable) -> None:
        pair = self.pair
        if pair is None or pair.key != event.key:
            return
        self.pair, self.active = None, None
        self.status.set_streaming(False)
        if event.refused:
            self.ab_refused[event.version] = event.reason
        self.notify(f"Could not compare with {event.version}: {one_line(event.reason, 160)}. The version answering "
                    "answers alone.", severity="warning", markup=False, timeout=10)  # fmt: skip
        if pair.widget is not None:
            await pair.widget.remove()
        if any(side.discarded for side in pair.sides):
            return
        await self.start_reply(pair.question)

    def _side_label(self, active: ActiveReply) -> str:
        pair = self.pair
        index = pair.side_of(active) if pair is not None else None
        return LABELS[index] if index is not None else "?"

    async def _pair_side_ended(self, active: ActiveReply, answer: Message | None) -> None:
        """One answer of the pair is written and stored (or not): the other starts, or the pick is asked for."""
        pair = self.pair
        index = pair.side_of(active) if pair is not None else None
        if pair is None or index is None:
            return
        pair.ended[index] = answer
        if len(pair.ended) < 2:
            following = pair.sides[1 - index]
            self.active = following
            if following.view is not None:
                following.stream = following.view.stream()
                following.view.writing = True
                following.view.refresh_header()
            self.status.set_streaming(True)
            return
        if any(side.discarded for side in pair.sides):
            self.pair = None  # its conversation was deleted
            return
        if pair.widget is None:  # left behind (another conversation opened): not judged
            self.pair = None
            if self.conversation is not None and self.conversation.id == pair.conversation_id and self.active is None:
                with self.reported("Could not show the conversation"):
                    await self.open_conversation(pair.conversation_id)  # came back meanwhile: both are there now
            return
        usable = [i for i, m in sorted(pair.ended.items()) if m is not None and m.finish_reason != "error" and m.content.strip()]
        if len(usable) < 2:
            self.notify("Not both answers could be written: no comparison this time.", severity="warning",
                        markup=False)  # fmt: skip
            await self._continue_with(pair, usable[0] if usable else None)
            return
        if pair.ended[0].adapter == pair.ended[1].adapter:  # a promotion or rollback came between the two
            self.notify("The version answering changed while the two answers were written: no comparison this time.",
                        severity="warning", markup=False)  # fmt: skip
            await self._continue_with(pair, 1 - pair.alternate_side)
            return
        pair.widget.ready()
        focused = self.focused
        if focused is None or focused is self.messages or (focused is self.composer and not self.composer.text.strip()):
            pair.widget.focus()

    def action_ab_pick(self, outcome: str) -> None:
        pair = self.pair
        if pair is None or pair.widget is None or pair.judging:
            return
        if len(pair.ended) < 2:
            self.notify("Wait for both answers (Esc stops the one being written).", markup=False)
            return
        left, right = pair.ended[0], pair.ended[1]
        assert left is not None and right is not None
        pair.judging = True
        self._judge(pair.key, left.id, right.id, outcome)

    @work(thread=True, group="judge", exit_on_error=False)
    def _judge(self, key: int, left_id: int, right_id: int, outcome: str) -> None:
        """Store the pick and apply the promotion rule (a promotion may load the version on the model
        server: off the event loop, on a connection of this thread's own)."""
        from assistant.adapters.ab import record_judgement

        try:
            store = self.store.reopen()
            try:
                _, verdict, why = record_judgement(store, self.settings, left_id, right_id, outcome)
            finally:
                store.close()
        except AssistantError as exc:
            self.post_message(PairJudged(key, outcome, error=str(exc)))
            return
        except Exception as exc:  # reported in the UI; the app keeps running
            log.exception("storing a blind A/B judgement failed")
            self.post_message(PairJudged(key, outcome, error=f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(PairJudged(key, outcome, verdict=verdict, why=why))

    async def on_pair_judged(self, event: PairJudged) -> None:
        if event.verdict is not None:
            self.notify(one_line(event.why, 300), markup=False, timeout=15)
            self.app.check_active_adapter()  # a promotion: this chat swaps to it now
        pair = self.pair
        if pair is None or pair.key != event.key:
            return
        if event.error is not None:
            pair.judging = False
            self.notify(f"The pick was not saved: {one_line(event.error, 200)}", severity="error", markup=False)
            return
        serving = 1 - pair.alternate_side
        kept = {"left": 0, "right": 1}.get(event.outcome, serving)
        who = [(m.adapter if m is not None else None) or "the base model" for m in (pair.ended[0], pair.ended[1])]
        roles = ["candidate" if i == pair.alternate_side else "answering now" for i in (0, 1)]
        self.notify(f"Saved: {OUTCOME_TEXT[event.outcome]}. A was {who[0]} ({roles[0]}), B was {who[1]} ({roles[1]}).",
                    markup=False, timeout=8)  # fmt: skip
        await self._continue_with(pair, kept)
        if event.outcome == "both_bad":
            self.messages.highlight_latest_reply()
            self.action_feedback()  # a correction for the answer the conversation goes on with

    def action_ab_skip(self) -> None:
        if self.pair is not None and self.pair.widget is not None and len(self.pair.ended) == 2:
            self.run_worker(self._skip_pick(self.pair), group="pick")

    async def _skip_pick(self, pair: PairState) -> None:
        """Esc with both answers written: no pick; the version answering now goes on."""
        if self.pair is pair and not pair.judging:
            self.notify("No pick: the conversation goes on with the answer of the version answering now.",
                        markup=False)  # fmt: skip
            await self._continue_with(pair, 1 - pair.alternate_side)

    async def _continue_with(self, pair: PairState, index: int | None) -> None:
        """The pair is settled: the thread goes on through answer `index` (the other stays its sibling)."""
        self.pair = None
        message = pair.ended.get(index) if index is not None else None
        if message is None:
            message = next((m for m in pair.ended.values() if m is not None), None)
        if self.conversation is None or self.conversation.id != pair.conversation_id:
            return
        leaf = message.id if message is not None else pair.question.id
        with self.reported("Could not remember the answer picked"):
            self.store.set_leaf(pair.conversation_id, leaf)  # reopened later, it goes on from there
        self.thread = self.store.thread(pair.conversation_id, leaf)
        await self.messages.show(self._views(self.thread))
        self.messages.highlight_latest_reply()
        self.composer.focus()
