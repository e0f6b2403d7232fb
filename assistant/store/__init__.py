"""The conversation log in SQLite. Only this package writes SQL; everything else gets records."""

from assistant.store.db import Store
from assistant.store.records import (
    REASON_TAGS,
    Conversation,
    Feedback,
    ImportedMessage,
    Message,
    ReplyRecord,
    SearchHit,
)

__all__ = [
    "REASON_TAGS",
    "Conversation",
    "Feedback",
    "ImportedMessage",
    "Message",
    "ReplyRecord",
    "SearchHit",
    "Store",
]
