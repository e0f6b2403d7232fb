"""Plain, immutable records the store hands out. No SQL, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")
REASON_TAGS = ("wrong facts", "incomplete", "off-topic", "tone", "unsafe", "other")


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    user: str
    created_at: str
    updated_at: str
    system_prompt: str
    archived: bool


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    parent_id: int | None
    role: str
    content: str
    created_at: str
    model: str | None = None
    adapter: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    ttft_ms: float | None = None
    token_count: int | None = None
    tokens_per_s: float | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class Feedback:
    """One rating of one message by one user. Re-rating adds a new current row; old ones are kept."""

    id: int
    message_id: int
    user: str
    rating: int
    reasons: tuple[str, ...]
    comment: str
    correction: str
    created_at: str
    updated_at: str
    current: bool


@dataclass(frozen=True)
class SearchHit:
    conversation: Conversation
    message_id: int
    snippet: str


@dataclass(frozen=True)
class ImportedMessage:
    """A message parsed from an import file, with the optional feedback it carried."""

    role: str
    content: str
    feedback: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReplyRecord:
    """What the engine reports about a finished reply, ready to store."""

    content: str
    model: str
    adapter: str | None
    params: dict[str, Any]
    ttft_ms: float | None
    token_count: int
    tokens_per_s: float | None
    finish_reason: str
