"""Following the registry's active adapter version in a running chat: when to swap, and what to say.

The app polls `Store.active_adapter()` and asks `SwapPolicy` whether the version it names should be
loaded; the swap itself runs in a thread worker of the app (it loads and validates weights). A
version the backend refused is not tried again until the active version changes. No widgets here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assistant.store import AdapterRecord
from assistant.text import one_line


def served(version: str | None) -> str:
    """How a served version reads in a sentence."""
    return one_line(version, 40) if version else "the base model"


@dataclass
class SwapPolicy:
    """Which version to swap to, if any: one swap at a time, and no retry of a refused version.

    A version is None for the bare base model, so the refused one is kept in a 1-tuple.
    """

    swapping: bool = False
    refused: tuple[str | None] | None = None

    def wanted(self, active: str | None, serving: str | None) -> bool:
        """Should `active` (the registry's) replace `serving` (the backend's) now?"""
        if self.refused is not None and self.refused != (active,):
            self.refused = None  # the active version changed since the refusal: try again
        if self.swapping or active == serving or self.refused is not None:
            return False
        return True

    def started(self) -> None:
        self.swapping = True

    def succeeded(self) -> None:
        self.swapping = False
        self.refused = None

    def failed(self, version: str | None) -> None:
        self.swapping = False
        self.refused = (version,)

    def postponed(self) -> None:
        """The backend could not be asked (the model server is down): the next poll tries again."""
        self.swapping = False


def _eval_loss(score: Any) -> float | None:
    if isinstance(score, dict) and isinstance(score.get("eval_loss"), (int, float)):
        return float(score["eval_loss"])
    return None


def swapped_text(record: AdapterRecord | None, previous: str | None) -> str:
    """"Now answering with v0002 (eval loss 1.234, was 1.456)", from the version's eval report.

    The earlier loss is shown only when the report scored the version served before on the same
    eval set (the gate's `active` score, or `base` when the base model was served).
    """
    if record is None:
        return f"Now answering with the base model (no adapter is active; was {served(previous)})"
    text = f"Now answering with {served(record.version)}"
    scores = record.report.get("scores") if isinstance(record.report, dict) else None
    if not isinstance(scores, dict):
        return text
    loss = _eval_loss(scores.get("candidate"))
    before = scores.get("active") if previous is not None else scores.get("base")
    was = None
    if isinstance(before, dict) and before.get("version", previous) == previous:
        was = _eval_loss(before)
    if loss is None:
        return text
    return f"{text} (eval loss {loss:.3f}" + (f", was {was:.3f})" if was is not None else ")")


def refused_text(version: str | None, serving: str | None, reason: str) -> str:
    """"Still answering with v0001: v0002 was refused: <reason>"."""
    return f"Still answering with {served(serving)}: {served(version)} was refused: {one_line(reason, 200)}"
