"""Golden sets: questions with an expected answer or phrases that must or must not appear, read from a
JSONL file and checked line by line, and the answers of a model scored against them.

One JSON object per line: `question` (required), `expected` (an answer to compare with) and/or `must`,
`must_not` (lists of phrases). An answer scores ROUGE-L F1 against `expected` (the `rouge-score`
package: words of ASCII letters and digits, no stemming) and, with phrases, the share of `must` phrases it
contains and of `must_not` phrases it does not (case-insensitive); it passes when it contains every
`must` phrase and no `must_not` one. Totals: the mean ROUGE-L over the questions with `expected`, and the
share of questions with phrases that passed.

Used by `assistant eval`. No torch or textual; rouge-score is imported when the first answer is scored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.chat import check_length
from assistant.errors import InputError
from assistant.jsonl import loads, read_limited
from assistant.settings import Settings

KEYS = ("question", "expected", "must", "must_not")


@dataclass(frozen=True)
class GoldenQuestion:
    line: int  # in the file, from 1
    question: str
    expected: str | None
    must: tuple[str, ...] = ()
    must_not: tuple[str, ...] = ()

    @property
    def has_phrases(self) -> bool:
        return bool(self.must or self.must_not)


@dataclass(frozen=True)
class GoldenSet:
    name: str  # the file's name
    sha256: str  # of its bytes
    questions: tuple[GoldenQuestion, ...]


def read_golden_set(path: Path, settings: Settings) -> GoldenSet:
    """The questions of a golden-set file, or an InputError naming the file and the first bad line. The
    file is read as `assistant import` reads one (at most `import_max_bytes`); a question may be as long
    as a chat message (`max_message_chars`)."""
    data = read_limited(path, settings.import_max_bytes, what="import_max_bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    questions = []
    for number, line in enumerate(text.split("\n"), start=1):  # "\n" only: JSON strings may hold U+2028
        if line.strip():
            where = f"{path.name} line {number}"
            questions.append(_question(loads(line.removesuffix("\r"), where), number, where, settings))
    if not questions:
        raise InputError(f"{path} holds no questions (one JSON object per line, each with a \"question\")")
    return GoldenSet(path.name, hashlib.sha256(data).hexdigest(), tuple(questions))


def _question(data: Any, number: int, where: str, settings: Settings) -> GoldenQuestion:
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object with a \"question\"")
    unknown = [key for key in data if key not in KEYS]
    if unknown:
        raise InputError(f'{where}: unknown key "{unknown[0]}" (a line holds "question", and "expected" and/or "must", "must_not")')
    if "question" not in data:
        raise InputError(f'{where}: no "question"')
    question = data["question"]
    if not isinstance(question, str) or not question.strip():
        raise InputError(f'{where}: "question" must be a non-empty string')
    try:
        check_length(question, settings)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    expected = data.get("expected")
    if expected is not None and (not isinstance(expected, str) or not expected.strip()):
        raise InputError(f'{where}: "expected" must be a non-empty string')
    must, must_not = _phrases(data, "must", where), _phrases(data, "must_not", where)
    if expected is None and not must and not must_not:
        raise InputError(f'{where}: nothing to score the answer against: give "expected", "must" or "must_not"')
    return GoldenQuestion(number, question, expected, must, must_not)


def _phrases(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise InputError(f'{where}: "{key}" must be a list of non-empty strings')
    return tuple(value)


@dataclass(frozen=True)
class Score:
    """One answer to one question, scored."""

    rouge_l: float | None  # F1 against `expected`; None without one
    must_present: tuple[bool, ...]  # per `must` phrase
    must_not_present: tuple[bool, ...]  # per `must_not` phrase

    @property
    def must_share(self) -> float | None:
        """The share of `must` phrases the answer contains (None: the question has none)."""
        return sum(self.must_present) / len(self.must_present) if self.must_present else None

    @property
    def must_not_share(self) -> float | None:
        """The share of `must_not` phrases the answer does not contain (None: the question has none)."""
        return 1 - sum(self.must_not_present) / len(self.must_not_present) if self.must_not_present else None

    @property
    def passed(self) -> bool | None:
        """Every `must` phrase present and no `must_not` one; None for a question without phrases."""
        if not self.must_present and not self.must_not_present:
            return None
        return all(self.must_present) and not any(self.must_not_present)

    def as_dict(self) -> dict[str, Any]:
        return {"rouge_l": self.rouge_l, "must_share": self.must_share, "must_not_share": self.must_not_share,
                "passed": self.passed}


class Scorer:
    """Scores answers: ROUGE-L F1 (rouge-score, no stemming) and phrases (case-insensitive containment)."""

    def __init__(self) -> None:
        from rouge_score import rouge_scorer

        self._rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    def __call__(self, question: GoldenQuestion, answer: str) -> Score:
        rouge = self._rouge.score(question.expected, answer)["rougeL"].fmeasure if question.expected is not None else None
        folded = answer.casefold()
        return Score(
            rouge,
            tuple(phrase.casefold() in folded for phrase in question.must),
            tuple(phrase.casefold() in folded for phrase in question.must_not),
        )


def totals(questions: Sequence[GoldenQuestion], scores: Sequence[Score]) -> dict[str, Any]:
    """One model's totals: the mean ROUGE-L over the questions with `expected`, and how many of the
    questions with phrases passed (None where no question has them)."""
    rouge = [s.rouge_l for s in scores if s.rouge_l is not None]
    judged = [s.passed for s in scores if s.passed is not None]
    return {
        "questions": len(questions),
        "rouge_l": sum(rouge) / len(rouge) if rouge else None,
        "rouge_l_questions": len(rouge),
        "passed": sum(judged),
        "phrase_questions": len(judged),
        "pass_rate": sum(judged) / len(judged) if judged else None,
    }



SAMPLE_QUESTIONS = 30  # the demo model's default golden set: this many sample questions, spread


def sample_golden_set(limit: int = SAMPLE_QUESTIONS) -> GoldenSet:
    """The demo model's default golden set for the gate: the first question of sample conversations
    (spread over them) with its sample answer expected: what the demo model answers well, and a retrain
    must not break."""
    from assistant.demo.samples import load_samples

    pairs = []
    for conversation in load_samples():
        user = next((i for i, m in enumerate(conversation) if m["role"] == "user"), None)
        if user is not None and user + 1 < len(conversation) and conversation[user + 1]["role"] == "assistant":
            pairs.append((conversation[user]["content"], conversation[user + 1]["content"]))
    picked = [pairs[i * len(pairs) // limit] for i in range(limit)] if len(pairs) > limit else pairs
    questions = tuple(GoldenQuestion(i, question, answer) for i, (question, answer) in enumerate(picked, start=1))
    digest = hashlib.sha256(json.dumps([[q.question, q.expected] for q in questions]).encode()).hexdigest()
    return GoldenSet("sample conversations", digest, questions)
