"""Messages that workers post to the app; handlers run on the event loop and touch widgets and the store."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from assistant.engine.base import Backend, ModelIdentity, Reply
from assistant.store import AdapterRecord


@dataclass
class LoadProgressed(Message):
    text: str
    fraction: float | None


@dataclass
class ModelLoaded(Message):
    backend: Backend
    notice: str | None


@dataclass
class ModelFailed(Message):
    error: str


@dataclass
class ReplyChunk(Message):
    key: int
    text: str


@dataclass
class ReplyFinished(Message):
    key: int
    reply: Reply


@dataclass
class ConversationErased(Message):
    """A conversation deleted in the chat was erased (`problem`: why it was not); `warnings`: what the
    erasure could not finish (another process kept reading the database, say)."""

    conversation_id: int
    title: str
    problem: str | None
    warnings: tuple[str, ...] = ()


@dataclass
class MessageChecked(Message):
    """A question was measured against the model's context: `problem` says why it cannot be sent."""

    text: str
    problem: str | None


@dataclass
class ReplyFailed(Message):
    key: int
    reply: Reply | None  # None when the reply could not even start
    error: str


@dataclass
class AdapterSwapped(Message):
    """The backend now serves `record`'s version (None: the bare base model)."""

    record: AdapterRecord | None
    identity: ModelIdentity
    previous: str | None  # the version served before


@dataclass
class AdapterRefused(Message):
    """The backend refused `version` and keeps serving what it served. `retry`: it could not be asked
    (the model server was unreachable): try again at the next poll."""

    version: str | None
    reason: str
    retry: bool = False


@dataclass
class HealthChecked(Message):
    """What the backend said of itself: None when it answers, else why it cannot (the server is down)."""

    problem: str | None


class ActiveAdapterChanged(Message):
    """The registry's active version was changed in this app (promote, rollback): look again now."""


@dataclass
class PairUnavailable(Message):
    """The second version of a blind A/B pair could not be loaded: the question gets one reply instead."""

    key: int
    version: str
    reason: str
    refused: bool = True  # False: it could not be asked (the model server unreachable): tried again later


@dataclass
class PairJudged(Message):
    """A blind A/B pick was stored (`error`: why not), with what the promotion rule made of it."""

    key: int
    outcome: str
    error: str | None = None
    verdict: str | None = None
    why: str = ""
