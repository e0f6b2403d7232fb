"""Messages that workers post to the app; handlers run on the event loop and touch widgets and the store."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from assistant.engine.base import Backend, Reply


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
class ReplyFailed(Message):
    key: int
    reply: Reply | None  # None when the reply could not even start
    error: str
