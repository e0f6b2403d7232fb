"""Plain, immutable records the store hands out. No SQL, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistant.adapters.winrate import WinRate

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
    error: str | None = None  # why the reply failed (finish_reason "error")


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
    error: str | None = None  # why it failed, when finish_reason is "error"


REVIEW_STATUSES = ("pending", "approved", "rejected")


@dataclass(frozen=True)
class ReviewItem:
    """A rated assistant reply in the curation queue, with its ratings summed up and its review."""

    message: Message
    conversation_title: str
    conversation_user: str
    ups: int
    downs: int
    rated_at: str
    raters: tuple[str, ...]
    proposed_correction: str
    status: str
    answer: str | None
    source: str | None
    tags: tuple[str, ...]
    curator: str | None
    reviewed_at: str | None
    reasons: tuple[str, ...] = ()  # the raters' reason tags

    @property
    def disagreement(self) -> bool:
        """Thumbs up and thumbs down on the same reply."""
        return self.ups > 0 and self.downs > 0

    @property
    def curated_answer(self) -> str:
        """What approving trains on: the curator's answer, else the proposed correction, else the reply."""
        return self.answer or self.proposed_correction or self.message.content


@dataclass(frozen=True)
class ReviewFilter:
    """Which rated replies the queue shows. None: any."""

    status: str | None = "pending"
    rating: str | None = None  # "up": has a thumbs-up; "down": has a thumbs-down
    tag: str | None = None  # a rater's reason tag or a curator's tag
    rater: str | None = None
    model_version: str | None = None  # the adapter (or, without one, the model) that wrote the reply
    since: str | None = None  # rated at or after (ISO date or time)
    until: str | None = None  # rated before
    search: str | None = None  # words in the conversation


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    message_id: int | None
    batch: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    undone: bool


@dataclass(frozen=True)
class CurationCounts:
    pending: int
    approved: int
    rejected: int
    approved_since: int  # approved since the last published adapter (all, before the first)


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    path: str
    created_at: str
    created_by: str
    counts: dict[str, Any]
    erased_at: str | None
    erased_reason: str | None = None  # the tombstone of a snapshot whose files were deleted: why


@dataclass(frozen=True)
class Erasure:
    """What `forget` removed, and the dataset snapshots now marked as holding erased data."""

    conversations: int
    messages: int
    datasets_marked: tuple[str, ...]
    conversation_ids: tuple[int, ...] = ()
    wal_cleared: bool = True  # False: a reader kept the write-ahead log from being emptied
    rewritten: bool = True  # False: written before secure deletion, it could not be rewritten yet (`rewrite_once`)


@dataclass(frozen=True)
class TrainingMessage:
    """A message as the dataset builder sees it, with its ratings and review."""

    id: int
    parent_id: int | None
    role: str
    content: str
    ratings: tuple[tuple[str, int, str], ...] = ()  # (user, rating, correction), current ones
    status: str = "pending"
    answer: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class TrainingConversation:
    id: int
    user: str
    system_prompt: str
    messages: tuple[TrainingMessage, ...]
    title: str = ""
    personal: bool = True  # customers' text, scrubbed of PII; False: the shipped sample conversations
    judgements: tuple[tuple[int, int, str], ...] = ()  # blind A/B judgements: (left_id, right_id, outcome), oldest first


ADAPTER_STATUSES = ("candidate", "active", "rejected", "retired")


@dataclass(frozen=True)
class TrainingRun:
    id: str
    started_at: str
    finished_at: str | None
    status: str
    user: str
    pid: int | None
    dataset_id: str | None
    data_until: str | None
    base_model: str
    config: dict[str, Any]
    version: str | None
    error: str | None


@dataclass(frozen=True)
class MetricPoint:
    split: str  # "train" or "eval"
    step: int
    epoch: float | None
    loss: float | None
    grad_norm: float | None
    learning_rate: float | None
    stage: str = "sft"  # "sft" or "preference" (KTO or DPO, after SFT); each stage's steps start at 1


@dataclass(frozen=True)
class AdapterRecord:
    version: str
    path: str
    status: str
    reason: str
    created_at: str
    run_id: str | None
    dataset_id: str | None
    data_until: str | None
    base_model: str
    metrics: dict[str, Any]
    report: dict[str, Any]
    activated_at: str | None
    deleted_at: str | None
    dataset_erased_at: str | None = None  # the dataset snapshot it was trained on held data since erased


@dataclass(frozen=True)
class AdapterEvent:
    id: int
    at: str
    actor: str
    action: str
    version: str | None
    previous: str | None
    reason: str


@dataclass(frozen=True)
class RatingCounts:
    """Thumbs on the replies one adapter version produced."""

    replies: int
    up: int
    down: int

    @property
    def up_rate(self) -> float | None:
        rated = self.up + self.down
        return self.up / rated if rated else None


@dataclass(frozen=True)
class ThumbsBucket:
    """Current thumbs on the replies one adapter version produced in one period (`Store.thumbs_over_time`)."""

    day: str  # the period's first day, UTC, YYYY-MM-DD: the day itself, or a week's Monday
    up: int
    down: int

    @property
    def rated(self) -> int:
        return self.up + self.down

    @property
    def up_rate(self) -> float | None:
        return self.up / self.rated if self.rated else None

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day, "up": self.up, "down": self.down}


@dataclass(frozen=True)
class GoldenEval:
    """One model's answers to a golden set, scored (`assistant eval`): one row of `golden_evals`."""

    id: int
    batch: int  # the id of the first row the same run of `assistant eval` wrote (one per model)
    version: str | None  # None: the bare base model
    model: str  # the base model's name
    file: str  # the golden set's file name
    sha256: str  # of the file's bytes
    at: str
    user: str
    scores: list[dict[str, Any]]  # per question: line, question, rouge_l, must_share, must_not_share, passed
    totals: dict[str, Any]  # questions, rouge_l (mean), rouge_l_questions, passed, phrase_questions, pass_rate


JUDGEMENT_OUTCOMES = ("left", "right", "tie", "both_bad")


@dataclass(frozen=True)
class Judgement:
    """A blind A/B judgement: which of two sibling assistant replies, shown side by side, a user preferred."""

    id: int
    conversation_id: int
    left_id: int
    right_id: int
    left_version: str | None  # the adapter version that wrote the left reply; None: the base model
    right_version: str | None
    outcome: str  # left, right, tie or both_bad
    user: str
    created_at: str

    @property
    def chosen_id(self) -> int | None:
        """The reply picked (None for a tie or both bad)."""
        return {"left": self.left_id, "right": self.right_id}.get(self.outcome)


@dataclass(frozen=True)
class VersionPair:
    """Two versions judged against each other in blind A/B: the newer one's score against the older."""

    candidate: str | None  # the newer version (None: the base model, only ever the older one)
    baseline: str | None
    score: WinRate

    def as_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "baseline": self.baseline, **self.score.as_dict()}
