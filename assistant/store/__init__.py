"""The conversation log in SQLite. Only this package writes SQL; everything else gets records."""

from assistant.store.db import Store
from assistant.store.records import (
    REASON_TAGS,
    REVIEW_STATUSES,
    AuditEntry,
    Conversation,
    CurationCounts,
    DatasetRecord,
    Erasure,
    Feedback,
    ImportedMessage,
    Message,
    ReplyRecord,
    ReviewFilter,
    ReviewItem,
    SearchHit,
    TrainingConversation,
    TrainingMessage,
)

__all__ = [
    "REASON_TAGS",
    "REVIEW_STATUSES",
    "AuditEntry",
    "CurationCounts",
    "DatasetRecord",
    "Erasure",
    "ReviewFilter",
    "ReviewItem",
    "TrainingConversation",
    "TrainingMessage",
    "Conversation",
    "Feedback",
    "ImportedMessage",
    "Message",
    "ReplyRecord",
    "SearchHit",
    "Store",
]
