"""Win-rate arithmetic of blind A/B judgements: the rate, Wilson's interval and the promotion rule."""

from __future__ import annotations

import pytest

from assistant.adapters.winrate import WinRate, ab_verdict


def test_a_tie_counts_half_and_no_judgement_has_no_rate() -> None:
    assert WinRate(3, 1, 2).rate == pytest.approx(4 / 6)
    assert WinRate(0, 0, 0).rate is None and WinRate(0, 0, 0).interval is None
    assert WinRate(0, 0, 0).text() == "no judgements yet"


@pytest.mark.parametrize(
    ("wins", "losses", "ties", "low", "high"),
    [
        # Wilson's interval, worked out by hand from its formula (8 of 10: the textbook 0.490-0.943)
        (8, 2, 0, 0.4902, 0.9433),
        (50, 50, 0, 0.4038, 0.5962),
        (10, 0, 0, 0.7225, 1.0),
        (0, 10, 0, 0.0, 0.2775),
        (1, 0, 0, 0.2065, 1.0),
    ],
)
def test_the_interval_is_wilsons_and_stays_within_0_and_1(wins: int, losses: int, ties: int, low: float, high: float) -> None:
    got_low, got_high = WinRate(wins, losses, ties).interval
    assert got_low == pytest.approx(low, abs=1e-4) and got_high == pytest.approx(high, abs=1e-4)


def test_promotion_waits_for_enough_judgements_and_a_clear_winner() -> None:
    assert ab_verdict(WinRate(5, 0, 0), min_judgements=20) == (None, "5 of 20 judgements so far")
    verdict, why = ab_verdict(WinRate(16, 4, 0), min_judgements=20)
    assert verdict == "promote" and why.startswith("won the blind A/B: 16 wins, 4 losses, 0 ties: win rate 80%")
    assert ab_verdict(WinRate(4, 16, 0), min_judgements=20)[0] == "reject"
    assert ab_verdict(WinRate(11, 9, 0), min_judgements=20)[0] is None  # 55%, but the interval straddles one half
    assert ab_verdict(WinRate(0, 0, 20), min_judgements=20)[0] is None  # all ties: 50%
    assert WinRate(16, 4, 0).as_dict()["ci95"] == pytest.approx([0.5840, 0.9193], abs=1e-4)
