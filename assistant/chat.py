"""One chat turn, the same for the app and for `assistant ask`.

What a reply sees (the conversation's system prompt and its thread), how a finished reply is
recorded (model identity, settings, timings), and the whole turn for callers without a UI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from assistant.engine.base import TOO_LONG, Backend, ChatMessage, GenerationParams, ModelIdentity, Reply
from assistant.errors import AssistantError, InputError
from assistant.references import References, count_for, grounded, last_question
from assistant.settings import Settings
from assistant.store import Conversation, Message, ReplyRecord, Store
from assistant.text import is_utf8

log = logging.getLogger(__name__)


def generation_params(settings: Settings) -> GenerationParams:
    return GenerationParams(
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
    )


def context(conversation: Conversation, thread: Sequence[Message]) -> list[ChatMessage]:
    """The messages a model answers: the system prompt, then the thread (less replies that failed
    before saying anything)."""
    messages = [ChatMessage("system", conversation.system_prompt)] if conversation.system_prompt.strip() else []
    messages += [ChatMessage(m.role, m.content) for m in thread if not _failed_empty(m)]
    return messages


def with_references(
    messages: Sequence[ChatMessage], references: References | None, settings: Settings, backend: Backend, params: GenerationParams
) -> list[ChatMessage]:
    """`messages` with the curated answers closest to the newest question added to the system prompt
    (`references`), as many as the `references` setting says for this model; unchanged when none is
    found, or when the question would not fit the model with them. May block (the index is built on
    first use, the backend counts tokens): call it off the event loop."""
    count = count_for(settings.references, backend.identity.is_demo)
    if references is None or not count:
        return list(messages)
    try:
        found = references.find(last_question(messages), count)
    except Exception:  # a broken snapshot must not stop a reply
        log.exception("finding curated answers for a question failed; answering without them")
        return list(messages)
    if not found:
        return list(messages)
    extended = grounded(messages, found)
    newest = next((i for i in range(len(extended) - 1, -1, -1) if extended[i].role == "user"), len(extended) - 1)
    try:
        backend.check_prompt([extended[0], *extended[newest:]], params)
    except InputError:
        return list(messages)
    return extended


def _failed_empty(message: Message) -> bool:
    return message.role == "assistant" and message.finish_reason == "error" and not message.content.strip()


def reply_record(
    reply: Reply, identity: ModelIdentity, params: GenerationParams, *, error: str | None = None
) -> ReplyRecord:
    """`identity`: the backend's when the reply was asked for; the one the engine set on the reply
    (`Reply.identity`, which an adapter swap between the two can change) wins. `error`: why the reply
    broke off; it is stored as failed, with the text that came before."""
    stats = reply.stats
    assert stats is not None, "record a reply only after it has finished"
    identity = reply.identity or identity
    return ReplyRecord(
        content=reply.text,
        model=identity.model,
        adapter=identity.adapter,
        params=params.as_dict(),
        ttft_ms=stats.ttft_ms,
        token_count=stats.token_count,
        tokens_per_s=stats.tokens_per_s,
        finish_reason="error" if error is not None else stats.finish_reason,
        error=error,
    )


def failed_record(identity: ModelIdentity, params: GenerationParams, error: str) -> ReplyRecord:
    """A reply that could not start (the model server down, say): stored empty, as failed, to retry."""
    return ReplyRecord(
        content="",
        model=identity.model,
        adapter=identity.adapter,
        params=params.as_dict(),
        ttft_ms=None,
        token_count=0,
        tokens_per_s=None,
        finish_reason="error",
        error=error,
    )


def too_long_for_the_model(error: str | None) -> bool:
    """Did a reply fail because its question is too long for the model? Asking again cannot help then."""
    return error is not None and TOO_LONG in error


def what_helps(error: str | None) -> str:
    """What to do about a reply that failed with `error`: ask again (the server was down, the stream
    broke off), unless asking again cannot help (a question too long for the model)."""
    return "shorten the question and send it again" if too_long_for_the_model(error) else "r asks again"


def check_message(text: str, settings: Settings | None = None, thread_length: int = 0) -> str:
    """`text` if it may be sent: not empty, valid text, and with `settings`, not longer than
    `max_message_chars`, in a conversation of `thread_length` messages that a question and its reply
    keep within `max_conversation_messages`."""
    if not text.strip():
        raise InputError("a message cannot be empty")
    if not is_utf8(text):
        raise InputError("the message is not valid UTF-8 text")
    if settings is not None:
        check_length(text, settings)
        most = settings.max_conversation_messages
        if thread_length + 2 > most:
            raise InputError(
                f"this conversation has {thread_length} messages, the most is {most} (max_conversation_messages)",
                hint="start a new conversation",
            )
    return text


def check_length(text: str, settings: Settings) -> str:
    """`text` if it is not longer than `max_message_chars`."""
    if len(text) > settings.max_message_chars:
        raise InputError(
            f"the message has {len(text)} characters, more than max_message_chars ({settings.max_message_chars})"
        )
    return text


def check_fits(backend: Backend, system_prompt: str, text: str, params: GenerationParams) -> None:
    """InputError when `text`, a new question, is too long for the model: with the system prompt it
    must leave room for the reply in the model's context (older turns give way by themselves). Asks
    the backend, whose tokenizer counts: may block for a moment."""
    system = [ChatMessage("system", system_prompt)] if system_prompt.strip() else []
    backend.check_prompt([*system, ChatMessage("user", text)], params)


def run_turn(
    store: Store,
    backend: Backend,
    settings: Settings,
    text: str,
    *,
    conversation_id: int | None = None,
    on_text: Callable[[str], None] | None = None,
    references: References | None = None,
) -> tuple[Conversation, Message, Message]:
    """Store the user's message, stream the reply, store it. Ctrl+C keeps the partial reply; a reply
    that fails (the model server down, a stream broken off) is stored as failed, and the error raised."""
    check_message(text, settings)
    if conversation_id is None:
        conversation, thread = store.create_conversation(settings.user, settings.system_prompt), []
    else:
        conversation = store.conversation(conversation_id)
        thread = store.thread(conversation.id)
    try:
        check_message(text, settings, len(thread))
        question = store.add_message(conversation.id, "user", text, parent_id=thread[-1].id if thread else None)
    except BaseException:
        if conversation_id is None:  # a failed ask leaves no empty conversation behind
            store.delete_conversation(conversation.id)
        raise
    params = generation_params(settings)
    try:
        messages = with_references(context(conversation, [*thread, question]), references, settings, backend, params)
        reply = backend.stream(messages, params)
    except AssistantError as exc:
        failed = failed_record(backend.identity, params, str(exc))
        store.add_message(conversation.id, "assistant", "", parent_id=question.id, reply=failed)
        raise
    chunks = iter(reply)
    interrupted = False
    failure: AssistantError | None = None
    try:
        for chunk in chunks:
            if on_text is not None:
                on_text(chunk)
    except KeyboardInterrupt:
        interrupted = True
        reply.cancel()
        chunks.close()  # settles the stats as cancelled
    except AssistantError as exc:
        failure = exc
    answer = store.add_message(
        conversation.id,
        "assistant",
        reply.text,
        parent_id=question.id,
        reply=reply_record(reply, backend.identity, params, error=str(failure) if failure else None),
    )
    if interrupted:
        raise KeyboardInterrupt
    if failure is not None:
        raise failure
    return store.conversation(conversation.id), question, answer
