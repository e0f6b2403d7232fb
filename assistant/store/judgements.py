"""The store's blind A/B side: judgements of two sibling assistant replies shown side by side in the
chat (which one a user preferred), and the win rates of one adapter version against another.

A mixin of `Store` (see db.py): same connection, same short IMMEDIATE write transactions. A judgement
keeps the version that wrote each reply (NULL: the base model), so win rates are one query. It goes
with either of its replies (ON DELETE CASCADE): erasing a conversation erases its judgements, and
`forget` of a user replaces their name in `judgements.user` (curation.py `_erase_name`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from assistant.adapters.winrate import WinRate
from assistant.errors import InputError, NotFoundError
from assistant.store.records import JUDGEMENT_OUTCOMES, Judgement, VersionPair


def version_order(version: str | None) -> tuple[int, int, str]:
    """Oldest first: the base model (None), then versions by number (v0009 before v0010 before v10000)."""
    return (0, 0, "") if version is None else (1, len(version), version)


class JudgementStore:
    """Mixed into Store; relies on its `db`, `_write()`, `_now()` and `message()`."""

    def judge(self, left_id: int, right_id: int, outcome: str, user: str) -> Judgement:
        """Record `user`'s blind judgement of two sibling assistant replies (left and right as shown):
        `outcome` is left, right (that one is better), tie or both_bad."""
        if outcome not in JUDGEMENT_OUTCOMES:
            raise InputError(f"a judgement is one of {', '.join(JUDGEMENT_OUTCOMES)}, got {outcome!r}")
        if not user.strip():
            raise InputError("a judgement needs the name of who judged")
        if left_id == right_id:
            raise InputError(f"a judgement compares two different replies, got message {left_id} twice")
        with self._write() as db:
            # Read inside the write transaction: a reply deleted meanwhile cannot be judged.
            left, right = self.message(left_id), self.message(right_id)  # NotFoundError: nothing written
            for message in (left, right):
                if message.role != "assistant":
                    raise InputError(f"message {message.id} is a {message.role} message; only assistant replies are judged")
            if left.conversation_id != right.conversation_id or left.parent_id != right.parent_id:
                raise InputError(
                    f"messages {left_id} and {right_id} are not sibling replies (the same question answered twice)"
                )
            cursor = db.execute(
                "INSERT INTO judgements (conversation_id, left_id, right_id, left_version, right_version, outcome,"
                " user, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [left.conversation_id, left_id, right_id, left.adapter, right.adapter, outcome, user, self._now()],
            )
            judgement_id = cursor.lastrowid
        return self._judgements_where("id = ?", [judgement_id])[0]

    def judgement(self, judgement_id: int) -> Judgement:
        found = self._judgements_where("id = ?", [judgement_id])
        if not found:
            raise NotFoundError(f"no judgement with id {judgement_id}")
        return found[0]

    def judgements(self, conversation_id: int | None = None) -> list[Judgement]:
        """Every judgement (or one conversation's), oldest first."""
        if conversation_id is None:
            return self._judgements_where("1", [])
        return self._judgements_where("conversation_id = ?", [conversation_id])

    def win_rate(self, candidate: str | None, baseline: str | None) -> WinRate:
        """`candidate`'s wins, losses and ties against `baseline` (None: the base model) over the
        judgements between the two, in either position: its side picked is a win, the other side a loss,
        a tie or both bad a tie."""
        if candidate == baseline:
            return WinRate(0, 0, 0)
        row = self.db.execute(
            """
            SELECT coalesce(sum((outcome = 'left' AND left_version IS :c) OR (outcome = 'right' AND right_version IS :c)), 0),
                   coalesce(sum((outcome = 'left' AND left_version IS :b) OR (outcome = 'right' AND right_version IS :b)), 0),
                   coalesce(sum(outcome IN ('tie', 'both_bad')), 0)
            FROM judgements
            WHERE (left_version IS :c AND right_version IS :b) OR (left_version IS :b AND right_version IS :c)
            """,
            {"c": candidate, "b": baseline},
        ).fetchone()
        return WinRate(*row)

    def version_pairs(self, version: Any = ...) -> list[VersionPair]:
        """Every pair of different versions judged against each other, with the newer one's score
        against the older one (the base model is the oldest), newest pair first. `version`: only the
        pairs it is in."""
        rows = self.db.execute(
            "SELECT DISTINCT left_version, right_version FROM judgements WHERE left_version IS NOT right_version"
        ).fetchall()
        pairs: set[tuple[str | None, str | None]] = set()
        for a, b in rows:
            newer, older = sorted((a, b), key=version_order, reverse=True)
            if version is ... or version in (newer, older):
                pairs.add((newer, older))
        ordered = sorted(pairs, key=lambda p: (version_order(p[0]), version_order(p[1])), reverse=True)
        return [VersionPair(newer, older, self.win_rate(newer, older)) for newer, older in ordered]

    def _judgements_where(self, where: str, args: Iterable[object]) -> list[Judgement]:
        rows = self.db.query(f"SELECT * FROM judgements WHERE {where} ORDER BY id", list(args))
        return [Judgement(**row) for row in rows]
