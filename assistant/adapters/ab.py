"""Promotion by use: blind A/B judgements in the chat decide between the newest candidate and the
active version (`promote_on_ab`, `ab_min_judgements`; the rule is winrate.ab_verdict).

The chat's A/B pair (tui/screens/chat.py) calls `record_judgement` when an agent picks: it stores the
judgement and applies the rule right away, so a candidate is promoted or rejected by the judgement
that settles it. Promoting checks the version's files and loads it on a model server first, as
`assistant models promote` does (promotion.verify); a version that fails stays a candidate.
"""

from __future__ import annotations

from assistant.adapters import promotion
from assistant.adapters.winrate import ab_verdict
from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.store import AdapterRecord, Judgement, Store


def newest_candidate(store: Store) -> AdapterRecord | None:
    """The newest version that is a candidate (not deleted), or None."""
    return next((record for record in store.adapters() if record.status == "candidate"), None)


def ab_decision(store: Store, settings: Settings) -> tuple[str | None, str]:
    """The blind A/B verdict on the newest candidate against the active version (or the base model):
    ("promote" | "reject" | None, why). With `promote_on_ab` on it is applied: promoted (the reason
    recorded is why) or marked rejected; with it off, or short of `ab_min_judgements` judgements,
    nothing changes and the verdict is None."""
    candidate = newest_candidate(store)
    if candidate is None:
        return None, "no candidate version to compare"
    active = store.active_adapter()
    baseline = active.version if active else None
    score = store.win_rate(candidate.version, baseline)
    verdict, why = ab_verdict(score, min_judgements=settings.ab_min_judgements)
    against = f"{candidate.version} against {baseline or 'the base model'}"
    if verdict is None:
        return None, f"{against}: {why}"
    if not settings.promote_on_ab:
        return None, f"{against}: {why} (promote_on_ab is off: nothing changed)"
    reason = f"{why} against {baseline or 'the base model'}"
    if verdict == "reject":
        store.set_adapter_status(candidate.version, "rejected", actor=settings.user, reason=reason)
        return "reject", f"{candidate.version} rejected: {reason}"
    try:
        promotion.verify(settings, candidate.version)  # the files, and the model server's copy
        store.promote(candidate.version, actor=settings.user, reason=reason, expected_active=baseline)
    except AssistantError as exc:
        return None, f"{against}: {why}, but it was not promoted: {exc}"
    return "promote", f"{candidate.version} promoted: {reason}"


def record_judgement(
    store: Store, settings: Settings, left_id: int, right_id: int, outcome: str
) -> tuple[Judgement, str | None, str]:
    """What the chat's A/B view calls when the agent picks (`settings.user` judges): the judgement
    stored (`Store.judge`), then `ab_decision` applied. Returns the judgement, the verdict and why."""
    judgement = store.judge(left_id, right_id, outcome, settings.user)
    verdict, why = ab_decision(store, settings)
    return judgement, verdict, why
