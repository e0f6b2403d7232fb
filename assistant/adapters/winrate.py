"""Win rates of one version against another, from blind A/B judgements in the chat (pure arithmetic).

A judgement is a win, a loss or a tie for the candidate ("both bad" counts as a tie here: neither was
preferred). The win rate counts a tie as half a win, the usual convention for pairwise comparisons
(Chatbot Arena's), and its 95% confidence interval is Wilson's score interval, which stays inside
[0, 1] and is honest for the small counts a team gathers in a week (the normal approximation is not).

`ab_verdict` is the promotion rule: promote when the interval's lower bound is above one half, reject
when its upper bound is below, after at least `min_judgements`; otherwise wait for more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile


@dataclass(frozen=True)
class WinRate:
    wins: int
    losses: int
    ties: int

    @property
    def judgements(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def rate(self) -> float | None:
        """Wins plus half the ties, over all judgements; None with none."""
        n = self.judgements
        return (self.wins + self.ties / 2) / n if n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """Wilson's 95% score interval of the rate; None with no judgement."""
        n = self.judgements
        if not n:
            return None
        p, z2 = self.rate, Z_95 * Z_95
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = Z_95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def text(self) -> str:
        if not self.judgements:
            return "no judgements yet"
        low, high = self.interval
        return (f"{self.wins} wins, {self.losses} losses, {self.ties} ties: win rate {self.rate:.0%}"
                f" (95% CI {low:.0%}-{high:.0%}, n={self.judgements})")

    def as_dict(self) -> dict[str, object]:
        return {"wins": self.wins, "losses": self.losses, "ties": self.ties, "judgements": self.judgements,
                "win_rate": self.rate, "ci95": list(self.interval) if self.interval else None}


def ab_verdict(score: WinRate, *, min_judgements: int) -> tuple[str | None, str]:
    """("promote" | "reject" | None, why) for a candidate with this score against the active version."""
    if score.judgements < min_judgements:
        return None, f"{score.judgements} of {min_judgements} judgements so far"
    low, high = score.interval
    if low > 0.5:
        return "promote", f"won the blind A/B: {score.text()}"
    if high < 0.5:
        return "reject", f"lost the blind A/B: {score.text()}"
    return None, f"no clear winner yet: {score.text()}"
