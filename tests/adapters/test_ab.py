"""Promotion by use: `ab_decision` (promote_on_ab, ab_min_judgements) and `record_judgement`, on a
real store with small real adapter versions published in the data dir."""

from __future__ import annotations

import pytest

from assistant.adapters.ab import ab_decision, record_judgement
from assistant.settings import Settings
from assistant.store import ReplyRecord, Store
from tests.cli.test_models import publish  # noqa: F401  (the fixture)


def sibling_replies(store: Store, candidate: str | None, baseline: str | None, n: int) -> tuple[int, int]:
    """Two replies to one question, the candidate's on the left on even `n`, on the right on odd."""
    cid = store.create_conversation("ann", "sys").id
    question = store.add_message(cid, "user", f"Question {n}?").id
    versions = (candidate, baseline) if n % 2 == 0 else (baseline, candidate)
    left, right = (
        store.add_message(cid, "assistant", f"Answer {n} by {v}.", parent_id=question,
                          reply=ReplyRecord("", "tiny", v, {}, 10.0, 3, 30.0, "stop")).id
        for v in versions
    )
    return left, right


def judge(store: Store, candidate: str | None, baseline: str | None, wins: int, losses: int) -> None:
    for n in range(wins + losses):
        left, right = sibling_replies(store, candidate, baseline, n)
        candidate_side = "left" if n % 2 == 0 else "right"
        store.judge(left, right, candidate_side if n < wins else {"left": "right", "right": "left"}[candidate_side], "bob")


@pytest.fixture
def versions(store: Store, publish) -> None:  # noqa: ANN001, F811
    """v0001 active, v0002 a candidate."""
    publish("v0001")
    store.promote("v0001", actor="cora")
    publish("v0002")


def on(settings: Settings, **changes: object) -> Settings:
    return settings.replace(promote_on_ab=True, **changes)


def test_the_settings_default_to_off_and_twenty(settings: Settings) -> None:
    assert (settings.promote_on_ab, settings.ab_min_judgements) == (False, 20)


def test_a_candidate_that_clearly_wins_is_promoted_with_why(settings: Settings, store: Store, versions: None) -> None:
    judge(store, "v0002", "v0001", wins=17, losses=3)
    verdict, why = ab_decision(store, on(settings))
    assert verdict == "promote" and why.startswith("v0002 promoted: won the blind A/B: 17 wins, 3 losses")
    active = store.active_adapter()
    assert active.version == "v0002" and active.reason.startswith("won the blind A/B")
    assert active.reason.endswith("against v0001")
    assert store.adapter("v0001").status == "retired"
    assert store.adapter_events("v0002")[-1].action == "promote"


def test_a_candidate_that_clearly_loses_is_rejected(settings: Settings, store: Store, versions: None) -> None:
    judge(store, "v0002", "v0001", wins=3, losses=17)
    verdict, why = ab_decision(store, on(settings))
    assert verdict == "reject" and why.startswith("v0002 rejected: lost the blind A/B")
    assert store.adapter("v0002").status == "rejected" and store.active_adapter().version == "v0001"


def test_against_the_base_model_when_no_version_is_active(settings: Settings, store: Store, publish) -> None:  # noqa: ANN001, F811
    publish("v0001")
    judge(store, "v0001", None, wins=2, losses=18)
    assert ab_decision(store, on(settings))[0] == "reject"
    assert store.adapter("v0001").status == "rejected" and store.active_adapter() is None


def test_nothing_changes_when_off(settings: Settings, store: Store, versions: None) -> None:
    judge(store, "v0002", "v0001", wins=20, losses=0)
    verdict, why = ab_decision(store, settings)
    assert verdict is None and "won the blind A/B" in why and "promote_on_ab is off" in why
    assert store.adapter("v0002").status == "candidate" and store.active_adapter().version == "v0001"


def test_nothing_changes_short_of_the_minimum(settings: Settings, store: Store, versions: None) -> None:
    judge(store, "v0002", "v0001", wins=19, losses=0)
    verdict, why = ab_decision(store, on(settings, ab_min_judgements=20))
    assert (verdict, why) == (None, "v0002 against v0001: 19 of 20 judgements so far")
    assert store.adapter("v0002").status == "candidate"


def test_nothing_changes_without_a_clear_winner(settings: Settings, store: Store, versions: None) -> None:
    judge(store, "v0002", "v0001", wins=10, losses=10)
    verdict, why = ab_decision(store, on(settings))
    assert verdict is None and "no clear winner yet" in why and store.adapter("v0002").status == "candidate"


def test_nothing_to_decide_without_a_candidate(settings: Settings, store: Store) -> None:
    assert ab_decision(store, on(settings)) == (None, "no candidate version to compare")


def test_record_judgement_stores_it_then_decides(settings: Settings, store: Store, versions: None) -> None:
    judge(store, "v0002", "v0001", wins=4, losses=0)
    settings = on(settings, ab_min_judgements=5)
    left, right = sibling_replies(store, "v0002", "v0001", 0)
    judgement, verdict, why = record_judgement(store, settings, left, right, "left")
    assert (judgement.user, judgement.outcome, judgement.left_version) == (settings.user, "left", "v0002")
    assert verdict == "promote" and store.active_adapter().version == "v0002"


def test_a_candidate_whose_files_fail_is_not_promoted(settings: Settings, store: Store, versions: None) -> None:
    (settings.layout.version("v0002") / "adapter_config.json").chmod(0o644)
    (settings.layout.version("v0002") / "adapter_config.json").write_text("{}", encoding="utf-8")
    judge(store, "v0002", "v0001", wins=20, losses=0)
    verdict, why = ab_decision(store, on(settings))
    assert verdict is None and "won the blind A/B" in why and "not promoted" in why
    assert store.adapter("v0002").status == "candidate" and store.active_adapter().version == "v0001"
