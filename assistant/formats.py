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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import InputError
from assistant.jsonl import loads, parse_lines, read_text
from assistant.settings import Settings
from assistant.store import REASON_TAGS, Conversation, Feedback, ImportedMessage, Message, Store
from assistant.text import one_line

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


@dataclass(frozen=True)
class ImportLimits:
    """How much one import may hold (settings `import_max_bytes`, `max_message_chars`,
    `max_conversation_messages`); None: no limit."""

    max_bytes: int | None = None
    max_message_chars: int | None = None
    max_conversation_messages: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ImportLimits:
        return cls(settings.import_max_bytes, settings.max_message_chars, settings.max_conversation_messages)


NO_LIMITS = ImportLimits()


def parse_import_file(path: Path, limits: ImportLimits = NO_LIMITS) -> list[tuple[str, list[ImportedMessage]]]:
    """Every conversation in a JSONL file or JSON array of OpenAI chat or ShareGPT records, or an
    InputError naming the first bad line (or array index)."""
    text = read_text(path, limits.max_bytes, what="import_max_bytes")
    if text.lstrip().startswith("["):
        data = loads(text, path.name)
        if not isinstance(data, list):
            raise InputError(f"{path.name}: expected a JSON array of conversations")
        # Indexes count from 0, as in the array itself: "data.json[3]" is data[3].
        records = [(item, f"{path.name}[{index}]") for index, item in enumerate(data)]
    else:
        records = parse_lines(text, path.name)
    conversations = [parse_import_record(item, where, limits) for item, where in records]
    if not conversations:
        raise InputError(f"{path} holds no conversations")
    return conversations


def parse_import_record(data: Any, where: str, limits: ImportLimits = NO_LIMITS) -> tuple[str, list[ImportedMessage]]:
    """One conversation from a decoded record: OpenAI chat (`messages`) or ShareGPT (`conversations`).

    `messages` wins when a record has both, so an OpenAI record reads exactly as it always did.
    """
    if isinstance(data, dict) and "messages" not in data and isinstance(data.get("conversations"), list):
        title, messages = _parse_sharegpt(data, where)
    else:
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise InputError(f'{where}: expected an object with a "messages" list (or a ShareGPT "conversations" list)')
        if not data["messages"]:
            raise InputError(f'{where}: "messages" is empty')
        title = _title(data, where)
        messages = [_parse_message(m, f"{where}, message {i}") for i, m in enumerate(data["messages"], start=1)]
        if not any(m.role == "user" for m in messages):
            raise InputError(f"{where}: a conversation needs at least one user message")
    _check_size(messages, where, limits)
    return title, messages


def _check_size(messages: list[ImportedMessage], where: str, limits: ImportLimits) -> None:
    most = limits.max_conversation_messages
    if most is not None and len(messages) > most:
        raise InputError(f"{where}: {len(messages)} messages, more than max_conversation_messages ({most})")
    longest = limits.max_message_chars
    if longest is None:
        return
    for number, message in enumerate(messages, start=1):
        texts = [message.content, (message.feedback or {}).get("correction") or ""]
        size = max(len(text) for text in texts)
        if size > longest:
            raise InputError(f"{where}, message {number}: {size} characters, more than max_message_chars ({longest})")


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


def export_records(
    store: Store, conversations: Iterable[Conversation], *, alternatives: bool = False
) -> Iterator[dict[str, Any]]:
    """One JSON-ready record per conversation: its thread, with metadata and current ratings.
    `alternatives` (`history show`): each reply also lists the other answers to its question
    (regenerated, each with its ratings) and every rater's feedback, not only the latest."""
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
                if alternatives:
                    item["alternatives"] = [
                        _alternative(store, other) for other in store.siblings(message.id) if other.id != message.id
                    ]
                    item["all_feedback"] = [_feedback(f) for f in ratings]
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


def _feedback(f: Feedback) -> dict[str, Any]:
    return {"user": f.user, "rating": f.rating, "reasons": list(f.reasons), "comment": f.comment, "correction": f.correction}


def _alternative(store: Store, message: Message) -> dict[str, Any]:
    return {
        "content": message.content,
        "metadata": {"id": message.id, "created_at": message.created_at, "model": message.model,
                     "adapter": message.adapter, "finish_reason": message.finish_reason},
        "all_feedback": [_feedback(f) for f in store.feedback_for(message.id)],
    }


def _feedback_lines(feedback: dict[str, Any]) -> list[str]:
    mark = "👍" if feedback["rating"] > 0 else "👎"
    comment = one_line(feedback["comment"] or "")
    lines = [f"> {mark} {one_line(feedback['user'] or '')}" + (f": {comment}" if comment else "")]
    if feedback["correction"]:
        lines += [">", "> Better answer:", ">"] + [f"> {line}".rstrip() for line in markdown_block(feedback["correction"])]
    return [*lines, ""]


def to_markdown(record: dict[str, Any]) -> str:
    """A conversation as a Markdown transcript. Its text came from users and models: names, titles and
    comments are folded onto one line, and a message that could start a Markdown block (a heading, a
    quote, a list, a fence, HTML) is shown in a fence it cannot close, so no text forges a turn, a
    rating or a section."""
    lines = [f"# {one_line(record['title']) or 'Untitled'}", ""]
    lines.append(f"*Conversation {record['id']} by {one_line(record['user'])}, {record['created_at']}*")
    lines.append("")
    for message in record["messages"]:
        heading = {"system": "System", "user": "User", "assistant": "Assistant"}[message["role"]]
        meta = message.get("metadata", {})
        if message["role"] == "assistant" and meta.get("model"):
            heading += f" ({one_line(meta['model'])}" + (f" + {one_line(meta['adapter'])}" if meta.get("adapter") else "") + ")"
        lines += [f"## {heading}", "", *markdown_block(message["content"]), ""]
        if "all_feedback" in message:  # every rater's (`history show`)
            for feedback in message["all_feedback"]:
                lines += _feedback_lines(feedback)
        elif message.get("feedback"):
            lines += _feedback_lines(message["feedback"])
        others = message.get("alternatives", [])
        for number, other in enumerate(others, 1):
            meta = other["metadata"]
            lines += [f"### Another answer to the same question ({number} of {len(others)}, message {meta['id']})", ""]
            lines += [*markdown_block(other["content"]), ""]
            for feedback in other["all_feedback"]:
                lines += _feedback_lines(feedback)
    return "\n".join(lines).rstrip() + "\n"


# A line that Markdown could read as the start of a block: a heading, quote, list item, thematic
# break, setext underline, fence, HTML, table row, link definition or indented code.
_BLOCK_START = re.compile(r"^(?: {0,3}(?:[#>*+\-_=`~<|\[]|[0-9]{1,9}[.)])| {4}|\t)")
_BACKTICKS = re.compile(r"`+")


def markdown_block(text: str) -> list[str]:
    """`text` as Markdown lines that show exactly that text: as it is when no line could start a block,
    else in a fenced code block whose fence is longer than any run of backticks inside."""
    lines = text.split("\n")
    if not any(_BLOCK_START.match(line) for line in lines):
        return lines
    fence = "`" * max(3, 1 + max((len(run) for run in _BACKTICKS.findall(text)), default=0))
    return [fence + "text", *lines, fence]
