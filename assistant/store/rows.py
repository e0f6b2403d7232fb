"""Rows in and out of SQL: each record built from its row (one place per table), and the text a user
searches for turned into an FTS5 query. Used by `db.py`, `curation.py` and `training.py`, none of which
import each other for these."""

from __future__ import annotations

import json
import re
from typing import Any

from assistant.store.records import (
    AdapterRecord,
    AuditEntry,
    Conversation,
    DatasetRecord,
    Feedback,
    Message,
    ReviewItem,
    TrainingRun,
)


def conversation(row: dict[str, Any]) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        user=row["user"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        system_prompt=row["system_prompt"],
        archived=bool(row["archived"]),
    )


def message(row: dict[str, Any]) -> Message:
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        parent_id=row["parent_id"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        model=row["model"],
        adapter=row["adapter"],
        params=json.loads(row["params"]) if row["params"] else {},
        ttft_ms=row["ttft_ms"],
        token_count=row["token_count"],
        tokens_per_s=row["tokens_per_s"],
        finish_reason=row["finish_reason"],
        error=row.get("error"),
    )


def feedback(row: dict[str, Any]) -> Feedback:
    return Feedback(
        id=row["id"],
        message_id=row["message_id"],
        user=row["user"],
        rating=row["rating"],
        reasons=tuple(json.loads(row["reasons"])),
        comment=row["comment"],
        correction=row["correction"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        current=bool(row["current"]),
    )


def review_item(row: dict[str, Any]) -> ReviewItem:
    return ReviewItem(
        message=message(row),
        conversation_title=row["conversation_title"],
        conversation_user=row["conversation_user"],
        ups=row["ups"],
        downs=row["downs"],
        rated_at=row["rated_at"],
        raters=tuple(json.loads(row["raters"])),
        proposed_correction=row["proposed_correction"],
        status=row["status"],
        answer=row["answer"],
        source=row["source"],
        tags=tuple(json.loads(row["tags"])),
        curator=row["curator"],
        reviewed_at=row["reviewed_at"],
        reasons=tuple(sorted(json.loads(row["reasons"] or "[]"))),
    )


def audit_entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        message_id=row["message_id"],
        batch=row["batch"],
        before=json.loads(row["before"]) if row["before"] else None,
        after=json.loads(row["after"]) if row["after"] else None,
        undone=bool(row["undone"]),
    )


def dataset(row: dict[str, Any]) -> DatasetRecord:
    return DatasetRecord(
        id=row["id"],
        path=row["path"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        counts=json.loads(row["counts"]),
        erased_at=row["erased_at"],
        erased_reason=row.get("erased_reason"),
    )


def training_run(row: dict[str, Any]) -> TrainingRun:
    return TrainingRun(**{**row, "config": json.loads(row["config"] or "{}")})


def adapter(row: dict[str, Any]) -> AdapterRecord:
    return AdapterRecord(**{**row, "metrics": json.loads(row["metrics"]), "report": json.loads(row["report"])})


def fts_query(text: str) -> str:
    """Every word must match, the last as a prefix; FTS syntax in the user's text stays inert."""
    words = re.findall(r"\w+", text)
    if not words:
        return ""
    quoted = [f'"{word}"' for word in words]
    quoted[-1] += "*"
    return " ".join(quoted)
