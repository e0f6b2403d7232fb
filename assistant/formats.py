"""Conversation files in and out: OpenAI chat and ShareGPT import, JSONL and Markdown export.

Import reads two file layouts, told apart by the first non-space character: JSONL (one record per
line) and a whole-file JSON array of records (`[` first: the usual ShareGPT `.json`). Each record
is read by its own key: `messages` (OpenAI chat, with optional per-message feedback) or
`conversations` (ShareGPT `{"from": ..., "value": ...}` turns), so one file may mix them. Every
record is validated before anything is stored; errors name the line (or array index) and message.
Export writes the conversation's current thread with each message's metadata and current ratings,
in a JSONL shape that `assistant import` reads back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from assistant.errors import InputError
from assistant.store import REASON_TAGS, Conversation, ImportedMessage, Store

IMPORT_ROLES = ("system", "user", "assistant")
# ShareGPT speakers as the common dumps spell them (ShareGPT, LLaMA-Factory, Axolotl, Gemini exports).
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "system": "system",
}
FEEDBACK_KEYS = {"rating", "comment", "correction", "reasons", "user"}


def parse_import_file(path: Path) -> list[tuple[str, list[ImportedMessage]]]:
    """Every conversation in a JSONL file or JSON array of OpenAI chat or ShareGPT records, or an
    InputError naming the first bad line (or array index)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a JSONL file") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    if text.lstrip().startswith("["):
        conversations = _parse_json_array(text, path)
    else:
        conversations = _parse_jsonl(text, path)
    if not conversations:
        raise InputError(f"{path} holds no conversations")
    return conversations


def _parse_json_array(text: str, path: Path) -> list[tuple[str, list[ImportedMessage]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, list):
        raise InputError(f"{path.name}: expected a JSON array of conversations")
    # Indexes count from 0, as in the array itself: "data.json[3]" is data[3].
    return [parse_import_record(item, f"{path.name}[{index}]") for index, item in enumerate(data)]


def _parse_jsonl(text: str, path: Path) -> list[tuple[str, list[ImportedMessage]]]:
    conversations = []
    # Lines end at "\n" only: JSON strings may hold U+2028 and other characters splitlines() breaks at.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            conversations.append(parse_import_line(line, f"{path.name} line {number}"))
    return conversations


def parse_import_line(line: str, where: str) -> tuple[str, list[ImportedMessage]]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return parse_import_record(data, where)


def parse_import_record(data: Any, where: str) -> tuple[str, list[ImportedMessage]]:
    """One conversation from a decoded record: OpenAI chat (`messages`) or ShareGPT (`conversations`).

    `messages` wins when a record has both, so an OpenAI record reads exactly as it always did.
    """
    if isinstance(data, dict) and "messages" not in data and isinstance(data.get("conversations"), list):
        return _parse_sharegpt(data, where)
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise InputError(f'{where}: expected an object with a "messages" list (or a ShareGPT "conversations" list)')
    if not data["messages"]:
        raise InputError(f'{where}: "messages" is empty')
    title = _title(data, where)
    messages = [_parse_message(m, f"{where}, message {i}") for i, m in enumerate(data["messages"], start=1)]
    if not any(m.role == "user" for m in messages):
        raise InputError(f"{where}: a conversation needs at least one user message")
    return title, messages


def _title(data: dict[str, Any], where: str) -> str:
    title = data.get("title", "")
    if not isinstance(title, str):
        raise InputError(f'{where}: "title" must be a string')
    return title


def _parse_sharegpt(data: dict[str, Any], where: str) -> tuple[str, list[ImportedMessage]]:
    """A ShareGPT record: `conversations` turns, optional `title`, optional top-level `system` (the
    LLaMA-Factory layout keeps the system prompt there); `id` and other keys are ignored."""
    if not data["conversations"]:
        raise InputError(f'{where}: "conversations" is empty')
    title = _title(data, where)
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise InputError(f'{where}: "system" must be a string')
    messages = [ImportedMessage(role="system", content=system)] if system else []
    messages += [_parse_turn(t, f"{where}, message {i}") for i, t in enumerate(data["conversations"], start=1)]
    if not any(m.role == "user" for m in messages):
        raise InputError(f"{where}: a conversation needs at least one user message")
    return title, messages


def _parse_turn(item: Any, where: str) -> ImportedMessage:
    if not isinstance(item, dict):
        raise InputError(f'{where}: expected an object with "from" and "value"')
    speaker, value = item.get("from"), item.get("value")
    role = SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
    if role is None:
        raise InputError(f'{where}: "from" must be one of {", ".join(SHAREGPT_ROLES)}, got {speaker!r}')
    if not isinstance(value, str):
        raise InputError(f'{where}: "value" must be a string')
    if role == "user" and not value.strip():
        raise InputError(f"{where}: a user message cannot be empty")
    return ImportedMessage(role=role, content=value)


def _parse_message(item: Any, where: str) -> ImportedMessage:
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object with role and content")
    role, content = item.get("role"), item.get("content")
    if role not in IMPORT_ROLES:
        raise InputError(f"{where}: role must be one of {', '.join(IMPORT_ROLES)}, got {role!r}")
    if not isinstance(content, str):
        raise InputError(f"{where}: content must be a string")
    if role == "user" and not content.strip():
        raise InputError(f"{where}: a user message cannot be empty")
    feedback = item.get("feedback")
    if feedback is not None:
        if role != "assistant":
            raise InputError(f"{where}: only assistant messages can carry feedback")
        feedback = _parse_feedback(feedback, where)
    return ImportedMessage(role=role, content=content, feedback=feedback)


def _parse_feedback(feedback: Any, where: str) -> dict[str, Any]:
    if not isinstance(feedback, dict):
        raise InputError(f"{where}: feedback must be an object")
    unknown = sorted(set(feedback) - FEEDBACK_KEYS)
    if unknown:
        raise InputError(f"{where}: unknown feedback field {unknown[0]!r}")
    rating = feedback.get("rating")
    if rating not in (1, -1) or isinstance(rating, bool):
        raise InputError(f"{where}: feedback rating must be 1 or -1")
    for key in ("comment", "correction", "user"):
        if key in feedback and not isinstance(feedback[key], str):
            raise InputError(f"{where}: feedback {key} must be a string")
    reasons = feedback.get("reasons", [])
    if not isinstance(reasons, list) or any(r not in REASON_TAGS for r in reasons):
        raise InputError(f"{where}: feedback reasons must be a list of: {', '.join(REASON_TAGS)}")
    return dict(feedback)


def export_records(store: Store, conversations: Iterable[Conversation]) -> Iterator[dict[str, Any]]:
    """One JSON-ready record per conversation: its thread, with metadata and current ratings."""
    for conversation in conversations:
        thread = store.thread(conversation.id)
        messages: list[dict[str, Any]] = []
        if conversation.system_prompt:
            messages.append({"role": "system", "content": conversation.system_prompt})
        for message in thread:
            item: dict[str, Any] = {"role": message.role, "content": message.content}
            meta = {"id": message.id, "created_at": message.created_at}
            if message.role == "assistant":
                meta.update(
                    model=message.model,
                    adapter=message.adapter,
                    params=message.params,
                    ttft_ms=message.ttft_ms,
                    token_count=message.token_count,
                    tokens_per_s=message.tokens_per_s,
                    finish_reason=message.finish_reason,
                )
                ratings = store.feedback_for(message.id)
                if ratings:
                    # The importable shape holds one rating: the most recent one.
                    latest = max(ratings, key=lambda f: (f.updated_at, f.id))
                    item["feedback"] = {
                        "rating": latest.rating,
                        "reasons": list(latest.reasons),
                        "comment": latest.comment,
                        "correction": latest.correction,
                        "user": latest.user,
                    }
                    meta["ratings"] = [
                        {"user": f.user, "rating": f.rating, "updated_at": f.updated_at} for f in ratings
                    ]
            item["metadata"] = meta
            messages.append(item)
        yield {
            "id": conversation.id,
            "title": conversation.title,
            "user": conversation.user,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
            "archived": conversation.archived,
            "messages": messages,
        }


_C1 = re.compile("[\x7f-\x9f\u2028\u2029]")


def json_text(value: Any, *, indent: int | None = None) -> str:
    """JSON with readable Unicode, and C1 controls escaped too (json leaves them raw), so the text is
    safe to print to a terminal and still parses back to exactly the same values."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_jsonl(record: dict[str, Any]) -> str:
    """One line of JSON, safe to print to a terminal."""
    return json_text(record)


def to_markdown(record: dict[str, Any]) -> str:
    lines = [f"# {record['title'] or 'Untitled'}", ""]
    lines.append(f"*Conversation {record['id']} by {record['user']}, {record['created_at']}*")
    lines.append("")
    for message in record["messages"]:
        heading = {"system": "System", "user": "User", "assistant": "Assistant"}[message["role"]]
        meta = message.get("metadata", {})
        if message["role"] == "assistant" and meta.get("model"):
            heading += f" ({meta['model']}" + (f" + {meta['adapter']}" if meta.get("adapter") else "") + ")"
        lines += [f"## {heading}", "", message["content"], ""]
        feedback = message.get("feedback")
        if feedback:
            mark = "👍" if feedback["rating"] > 0 else "👎"
            lines.append(f"> {mark} {feedback['user']}" + (f": {feedback['comment']}" if feedback["comment"] else ""))
            if feedback["correction"]:
                lines += [">", "> Better answer:", ">"] + [f"> {line}" for line in feedback["correction"].splitlines()]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
