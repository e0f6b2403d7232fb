"""The chat backend interface: stream a reply to a list of chat messages, cancel it, say who answers,
swap the adapter that answers.

The UI and the commands only see this interface: the in-process model (engine/local.py, in its own
process through engine/worker.py) and a model server (engine/remote.py) are interchangeable. No torch here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from assistant.errors import InputError

TOO_LONG = "too long for the model"  # in every such refusal, and so in a failed reply's stored error


def prompt_budget(context: int, max_new_tokens: int) -> int:
    """How many tokens a prompt may take in a model context of `context` tokens: the rest is room for
    the reply (`max_new_tokens`, at most half the context). The one rule of every backend."""
    return context - min(max_new_tokens, context // 2)


def too_long(tokens: int, budget: int, where: str = "") -> InputError:
    """The refusal of a prompt of `tokens` tokens that `prompt_budget` allows `budget`."""
    return InputError(f"the message is {TOO_LONG}{where} ({tokens} tokens; at most {budget} fit)")


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 384
    temperature: float = 0.3
    top_p: float = 0.9
    repetition_penalty: float = 1.0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class ModelIdentity:
    """Who produced a reply: recorded on every assistant message and shown in the status bar."""

    model: str
    adapter: str | None
    device: str
    precision: str
    is_demo: bool = False
    notice: str | None = None  # the banner's line about this model (the fallback or the demo model: which and why)
    is_fallback: bool = False  # the pretrained fallback model from the package index (`ModelChoice.is_fallback`)

    @property
    def label(self) -> str:
        return f"{self.model} + {self.adapter}" if self.adapter else self.model


@dataclass(frozen=True)
class ReplyStats:
    ttft_ms: float | None
    token_count: int
    tokens_per_s: float | None
    finish_reason: str  # "stop" (end of turn), "length" (max_new_tokens), "cancelled", "error"


class CancelEvent(Protocol):
    """threading.Event or multiprocessing.Event: what cancelling a reply sets."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...


class Reply:
    """A reply being generated: iterate for text chunks; `cancel()` from any thread.

    `stats` is set once the iteration has finished, whatever ended it. `identity` is who produces
    the reply (the adapter serving when its generation started, not when it was asked for): known
    once the first chunk has arrived or the iteration has ended, None before that or when the backend
    does not say. The backend gives it as a value, or as a function that reads it when asked.
    `started`: when the reply was asked for, if that was before the Reply existed (a server's answer
    to the request), so that the time to first token includes the wait.
    """

    def __init__(
        self,
        chunks: Iterator[tuple[str, int]],
        cancel_event: CancelEvent,
        max_new_tokens: int,
        identity: ModelIdentity | Callable[[], ModelIdentity | None] | None = None,
        started: float | None = None,
    ):
        self._chunks = chunks
        self._cancel = cancel_event
        self._max_new_tokens = max_new_tokens
        self._identity = identity
        self._started = started  # time.perf_counter() when the reply was asked for; else when read
        self.stats: ReplyStats | None = None
        self.text = ""

    @property
    def identity(self) -> ModelIdentity | None:
        return self._identity() if callable(self._identity) else self._identity

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def __iter__(self) -> Iterator[str]:
        started = self._started if self._started is not None else time.perf_counter()
        first: float | None = None
        tokens = 0
        reason: str | None = None
        try:
            for text, new_tokens in self._chunks:
                tokens += new_tokens
                if text:
                    if first is None:
                        first = time.perf_counter()
                    self.text += text
                    yield text
                if self._cancel.is_set():
                    break
        except (GeneratorExit, KeyboardInterrupt):
            # The reader walked away: stop the generation too.
            self._cancel.set()
            raise
        except BaseException:
            reason = "error"
            raise
        finally:
            ended = time.perf_counter()
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()  # lets the backend clean up (join its generation thread)
            if reason is None:
                if self._cancel.is_set():
                    reason = "cancelled"
                elif tokens >= self._max_new_tokens:
                    reason = "length"
                else:
                    reason = "stop"
            decode_s = ended - first if first is not None else 0.0
            self.stats = ReplyStats(
                ttft_ms=round((first - started) * 1000, 1) if first is not None else None,
                token_count=tokens,
                tokens_per_s=round((tokens - 1) / decode_s, 1) if tokens > 1 and decode_s > 0 else None,
                finish_reason=reason,
            )


LoadProgress = Callable[[str, float | None], None]
"""progress(message, fraction or None when unknown): reported while a backend loads."""


@runtime_checkable
class Backend(Protocol):
    """What the chat needs from a model, wherever it runs."""

    @property
    def identity(self) -> ModelIdentity: ...

    @property
    def alternate(self) -> ModelIdentity | None:
        """Who answers replies asked with `alternate=True` (the version `load_alternate` loaded), or None."""
        ...

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams, alternate: bool = False) -> Reply:
        """Start a reply; `alternate`: the second version answers it instead of the one serving (blind A/B)."""
        ...

    def swap_adapter(self, version: str | None, path: Path | None) -> ModelIdentity:
        """Serve adapter `version` from `path` (None: the bare base model) from the next reply on.

        Callable from any thread; a reply being generated finishes with the adapter it started with.
        A version that cannot be served raises ModelError and the current one keeps answering.
        """
        ...

    def load_alternate(self, version: str | None, path: Path | None) -> ModelIdentity | None:
        """Load adapter `version` from `path` beside the one serving, on the same base model (or on the
        model server), to answer replies asked with `alternate=True`; None unloads it. Checked as a swap
        is; what serves is unchanged. Returns `alternate`. Call it off the event loop.
        """
        ...

    def check_prompt(self, messages: Sequence[ChatMessage], params: GenerationParams) -> None:
        """Raise InputError when `messages` cannot be answered because they are too long for the model:
        the newest turn, with the system prompt, must leave room for the reply in the context (older
        turns give way by themselves). Measured with the model's tokenizer as `stream` would encode them.

        May block for a moment (the model's process is asked): call it off the event loop.
        """
        ...

    def health(self) -> str | None:
        """None while the backend can answer, else why it cannot (the model server is unreachable).

        May block for a moment (a model server is asked): call it off the event loop.
        """
        ...

    def close(self) -> None: ...
