"""`assistant eval`: a golden set answered by adapter versions and the base model, scored side by side.

    assistant eval golden.jsonl                        # the active version (if any) and the base model
    assistant eval golden.jsonl --version 3 --version 4
    assistant eval golden.jsonl --version base --json  # the base model alone; every answer and score

Every model answers every question greedily, with the chat's system prompt and `max_new_tokens`, on one
loaded base model whose adapter is swapped as a chat swaps it (or on the model server). The scores
(assistant/adapters/golden.py) are stored with each version and shown by `assistant models show`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from assistant.adapters import registry
from assistant.adapters.report import number
from assistant.commands.common import TEXT, Context, load_backend, settings_options
from assistant.errors import InputError, NotFoundError
from assistant.formats import json_text
from assistant.text import one_line, plural

BASE = "base"


@click.command(name="eval")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--version", "versions", multiple=True, type=TEXT, metavar="V",
    help="An adapter version to score (repeatable; `base`: the bare base model). Default: the active version. "
    "The base model is always scored too.",
)
@click.option("--json", "as_json", is_flag=True, help="Print every question, answer and score, and the totals, as JSON.")
@settings_options
def eval_(state: Context, file: Path, versions: tuple[str, ...], as_json: bool) -> None:
    """Score adapter versions and the base model on a golden set (JSONL): a side-by-side table, stored per version.

    Each line of FILE is a JSON object: "question", and "expected" (an answer, scored by ROUGE-L F1)
    and/or "must" and "must_not" (lists of phrases that must or must not appear, case-insensitive).
    """
    from rich.console import Console

    from assistant.adapters import serving
    from assistant.adapters.golden import Scorer, read_golden_set, totals
    from assistant.chat import check_fits, generation_params
    from assistant.engine.base import ChatMessage

    settings = state.settings
    golden = read_golden_set(file, settings)  # every check that needs no model first
    store = state.store()
    models = _models(store, settings.data_dir, versions)
    params = replace(generation_params(settings), temperature=0.0)
    system = [ChatMessage("system", settings.system_prompt)] if settings.system_prompt.strip() else []
    prompts = [[*system, ChatMessage("user", q.question)] for q in golden.questions]
    backend = load_backend(settings, quiet=as_json)
    answers: dict[str, list[str]] = {label: [] for label, _, _ in models}
    try:
        for question in golden.questions:
            try:
                check_fits(backend, settings.system_prompt, question.question, params)
            except InputError as exc:
                raise InputError(f"{golden.name} line {question.line}: {exc}") from None
        console = Console(stderr=True, quiet=as_json, highlight=False)
        with console.status("Answering…") as status:
            for label, version, path in models:
                status.update(f"Loading {label}…" if version else "Answering with the base model…")
                backend.swap_adapter(version, path)
                for n, messages in enumerate(prompts, start=1):
                    status.update(f"{label}: question {n} of {len(prompts)}")
                    reply = backend.stream(messages, params)
                    for _ in reply:
                        pass
                    answers[label].append(reply.text.strip())
    finally:
        backend.close()

    scorer = Scorer()
    scores = {label: [scorer(q, a) for q, a in zip(golden.questions, answers[label], strict=True)] for label in answers}
    summed = {label: totals(golden.questions, scores[label]) for label in answers}
    stored = store.record_golden_evals(
        file=golden.name, sha256=golden.sha256, user=settings.user, model=backend.identity.model,
        results=[
            (version, [{"line": q.line, "question": q.question, **s.as_dict()} for q, s in zip(golden.questions, scores[label], strict=True)],
             summed[label])
            for label, version, _ in models
        ],
    )  # fmt: skip
    warning = serving.tidy(settings, serving.keep(store))  # with a model server: unload what is not kept
    if warning:
        click.echo(f"warning: {one_line(warning)}", err=True)
    labels = [label for label, _, _ in models]
    if as_json:
        click.echo(json_text(_as_json(golden, labels, answers, scores, summed, stored)))
        return
    _print_table(golden, labels, scores, summed)


def _models(store, data_dir: Path, names: tuple[str, ...]) -> list[tuple[str, str | None, Path | None]]:  # noqa: ANN001
    """(column label, version or None for the base model, its directory) in the order named, the base model
    last unless named; no names: the active version, if any, and the base model. An unknown or deleted
    version is a NotFoundError, a version whose files fail the checks a ModelError, before any model loads."""
    chosen: list[str | None] = []
    for name in names:
        version = None if name.strip().lower() == BASE else registry.normalise_version(name)
        if version not in chosen:
            chosen.append(version)
    active = store.active_adapter()
    if not names and active is not None:
        chosen.append(active.version)
    if None not in chosen:
        chosen.append(None)
    models: list[tuple[str, str | None, Path | None]] = []
    for version in chosen:
        if version is None:
            models.append((BASE, None, None))
            continue
        if store.adapter(version).deleted_at:
            raise NotFoundError(f"adapter {version} was deleted: its files are gone")
        directory = registry.version_dir(data_dir, version)
        registry.check_files(directory)
        models.append((version, version, directory))
    return models


def _as_json(golden, labels, answers, scores, summed, stored) -> dict[str, Any]:  # noqa: ANN001
    questions = []
    for index, question in enumerate(golden.questions):
        scored = {}
        for label in labels:
            score, text = scores[label][index], answers[label][index]
            scored[label] = {
                "answer": text,
                **score.as_dict(),
                "must_missing": [p for p, hit in zip(question.must, score.must_present, strict=True) if not hit],
                "must_not_found": [p for p, hit in zip(question.must_not, score.must_not_present, strict=True) if hit],
            }
        questions.append({"line": question.line, "question": question.question, "expected": question.expected,
                          "must": list(question.must), "must_not": list(question.must_not), "answers": scored})
    first = stored[0]
    return {
        "file": golden.name,
        "sha256": golden.sha256,
        "model": first.model,
        "at": first.at,
        "user": first.user,
        "batch": first.batch,
        "versions": labels,
        "totals": summed,
        "questions": questions,
    }


def _print_table(golden, labels, scores, summed) -> None:  # noqa: ANN001
    """One row per question, one column per model, then the totals. Text from the file is never markup."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="ROUGE-L F1 against the expected answer; pass or FAIL: the must and must_not phrases")
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("question", ratio=1, overflow="fold")
    for label in labels:
        table.add_column(Text(label), no_wrap=True)
    for index, question in enumerate(golden.questions):
        cells = [_cell(scores[label][index]) for label in labels]
        table.add_row(Text(str(question.line)), Text(one_line(question.question)), *map(Text, cells))
    table.add_section()
    if any(q.expected is not None for q in golden.questions):
        table.add_row(Text(""), Text("mean ROUGE-L"), *(Text(number(summed[label]["rouge_l"], 3)) for label in labels))
    if any(q.has_phrases for q in golden.questions):
        table.add_row(Text(""), Text("passed"), *(Text(_passed(summed[label])) for label in labels))
    console = Console(highlight=False)
    console.print(Text(f"{one_line(golden.name)}: {plural(len(golden.questions), 'question')}, sha256 {golden.sha256[:12]}"))
    console.print(table)


def _cell(score) -> str:  # noqa: ANN001
    """`0.857 pass`: the ROUGE-L F1 (with an expected answer) and pass or FAIL (with phrases)."""
    parts = [number(score.rouge_l, 3)] if score.rouge_l is not None else []
    if score.passed is not None:
        parts.append("pass" if score.passed else "FAIL")
    return " ".join(parts)



def _passed(totals: dict[str, Any]) -> str:
    rate = totals.get("pass_rate")
    return f"{totals['passed']}/{totals['phrase_questions']} ({rate:.0%})" if isinstance(rate, (int, float)) else "-"
