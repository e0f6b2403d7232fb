"""Checks before any heavy work: is there something to train, will it train, can this machine do it?

Counts, token length quantiles and the share of examples dropped for length come from the
snapshot's manifest; examples with no trainable token are found with the training template (an
assistant turn cut off by `max_length`, or a template that marks nothing); the device check looks
for CUDA and bitsandbytes. `check` raises TrainingError (exit 10) naming the first failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from assistant.data.builder import describe_too_long, too_many_too_long
from assistant.errors import TrainingError

SHOWN = 5  # over-long examples listed


@dataclass(frozen=True)
class Preflight:
    dataset_id: str
    train_examples: int
    eval_examples: int
    token_quantiles: dict[str, Any]  # of the train split: min, p50, p90, p99, max
    dropped_too_long: int
    truncated_fraction: float
    too_long: list[dict[str, Any]]  # the manifest's: which examples were dropped (conversation, title, message)
    zero_trainable: int
    device: str
    cuda: bool
    bitsandbytes: str | None  # its version, None when it cannot be imported
    problems: list[str] = field(default_factory=list)
    preference: dict[str, Any] | None = None  # the stage's plan (preference.Plan) and its answers' tokens

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        q = self.token_quantiles
        lengths = ", ".join(f"{k} {q[k]}" for k in ("min", "p50", "p90", "p99", "max") if k in q) or "-"
        return [
            f"dataset {self.dataset_id}: {self.train_examples} train, {self.eval_examples} eval examples",
            f"tokens per example: {lengths}",
            f"dropped for length: {self.dropped_too_long} ({self.truncated_fraction:.1%})",
            *(f"  {describe_too_long(d)}" for d in self.too_long[:SHOWN]),
            *([f"  and {len(self.too_long) - SHOWN} more (`assistant dataset stats`)"] if len(self.too_long) > SHOWN else []),
            f"examples with no trainable token: {self.zero_trainable}",
            *self._preference_lines(),
            f"device: {self.device}; CUDA {'yes' if self.cuda else 'no'}; bitsandbytes {self.bitsandbytes or 'missing'}",
        ]


    def _preference_lines(self) -> list[str]:
        stage = self.preference
        if stage is None:
            return []
        counts = (f"{stage['pairs']} pairs; {stage['desirable']} desirable, {stage['undesirable']} undesirable rows"
                  + (f" ({stage['stand_ins']} approved answers standing in)" if stage["stand_ins"] else ""))
        if stage["kind"] is None:
            return [f"preference stage: none ({stage['why']}); {counts}"]
        return [f"preference stage: {stage['kind'].upper()} ({stage['why']}); {counts}; "
                f"{stage.get('tokens', 0)} answer tokens"]


def bitsandbytes_version() -> str | None:
    try:
        import bitsandbytes
    except Exception:  # a broken install raises all sorts of errors at import
        return None
    return getattr(bitsandbytes, "__version__", "unknown")


def run_preflight(
    dataset_id: str,
    manifest: dict[str, Any],
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]],
    tokenizer: Any,
    *,
    max_length: int,
    max_truncated_fraction: float,
    device: str,
    require_eval: bool = True,
    preference: Any = None,  # preference.Plan
    preference_rows: list[dict[str, Any]] | None = None,
) -> Preflight:
    """Gather the facts and the problems; nothing raises here (see `check`)."""
    import torch

    counts = manifest.get("counts", {})
    filters = counts.get("filters", {})
    dropped = int(filters.get("dropped_too_long", 0))
    considered = len(train_rows) + len(eval_rows) + dropped
    fraction = dropped / considered if considered else 0.0
    zero = 0
    for row in train_rows:
        ids = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        if not any(ids["assistant_masks"][:max_length]):
            zero += 1
    cuda = torch.cuda.is_available()
    bnb = bitsandbytes_version()
    problems = []
    if device == "cuda" and not cuda:
        problems.append("device is cuda but no CUDA GPU is available")
    if bnb is None:
        problems.append("bitsandbytes cannot be imported; 4-bit training needs it (pip install bitsandbytes)")
    if require_eval and train_rows and not eval_rows:
        problems.append(
            "no eval examples, so the gate could not judge the new adapter (approve answers in more conversations "
            "or raise eval_fraction; --force trains and promotes without the gate)"
        )
    if too_many_too_long(dropped, considered, max_truncated_fraction):
        problems.append(f"{fraction:.1%} of the examples are longer than max_length {max_length} (limit {max_truncated_fraction:.0%})")
    if train_rows and zero == len(train_rows):
        problems.append("no training example has a trainable token: the chat template marks no assistant tokens")
    elif zero:
        problems.append(f"{zero} of {len(train_rows)} training examples have no trainable token (answers cut off by max_length {max_length})")
    tokens = manifest.get("tokens", {}).get("train", {})
    stage = None
    if preference is not None:
        answers = [m["content"] for row in preference_rows or [] for key in ("chosen", "rejected", "completion")
                   for m in row.get(key, [])]
        counted = sum(len(ids) for ids in tokenizer(answers, add_special_tokens=False)["input_ids"]) if answers else 0
        stage = {**preference.as_dict(), "tokens": counted}
        if preference.kind is not None and not counted:
            problems.append(f"the {preference.kind.upper()} rows have no answer tokens")
    return Preflight(
        preference=stage,
        dataset_id=dataset_id,
        train_examples=len(train_rows),
        eval_examples=len(eval_rows),
        token_quantiles={k: v for k, v in tokens.items() if k in {"min", "p50", "p90", "p99", "max", "mean"}},
        dropped_too_long=dropped,
        truncated_fraction=fraction,
        too_long=list(manifest.get("dropped_too_long", [])),
        zero_trainable=zero,
        device="cuda" if (device == "cuda" or (device == "auto" and cuda)) else "cpu",
        cuda=cuda,
        bitsandbytes=bnb,
        problems=problems,
    )


def check(preflight: Preflight) -> None:
    if preflight.problems:
        raise TrainingError(f"preflight: {preflight.problems[0]}")

