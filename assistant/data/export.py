"""Dataset export: one snapshot written by `assistant dataset build`, rewritten in the layout another
trainer reads. This module owns the mapping from the snapshot's files (TRL conversational SFT rows in
`train.jsonl` / `eval.jsonl`, preference rows in `dpo.jsonl`, binary-feedback rows in `kto.jsonl`, and
the held-out conversations' preference rows in `dpo_eval.jsonl` / `kto_eval.jsonl`) to those layouts,
and nothing else: it never reads the database and never changes the snapshot.

Formats (`EXPORT_FORMATS`), each written into a new or empty directory:

`openai`
    `train.jsonl`, `eval.jsonl`: OpenAI chat fine-tuning rows, `{"messages": [...]}`, each message
    holding only `role` and `content`, plus `weight` (0 or 1) on assistant messages: the snapshot's
    weights are kept, so earlier assistant turns stay context only. `dpo.jsonl` (only when the
    snapshot has preference rows): OpenAI preference fine-tuning rows, `{"input": {"messages": [...]},
    "preferred_output": [...], "non_preferred_output": [...]}`; `dpo_eval.jsonl` (only when it has
    held-out ones): the same rows of the held-out conversations, a preference job's validation file.
    OpenAI has no KTO format, so the snapshot's `kto.jsonl` and `kto_eval.jsonl` are not exported.
`sharegpt`
    `train.json`, `eval.json`: JSON arrays of `{"conversations": [{"from": "system" | "human" | "gpt",
    "value": ...}]}`, the system turn included when the row has one. ShareGPT has no per-turn
    weights: trainers reading it (LLaMA-Factory, Axolotl) usually train on every `gpt` turn, so the
    snapshot's context-only answers become targets too. Use `openai` or `hf` to keep the weights.
`alpaca`
    `train.json`, `eval.json`: JSON arrays in LLaMA-Factory's multi-turn alpaca shape, `{"instruction":
    last user message, "input": "", "output": target answer, "system": system prompt or "",
    "history": [[user, assistant], ...]}`. The system prompt is the row's leading system messages,
    joined by a blank line; a system message anywhere else cannot be expressed and is refused. The
    instruction is the user message right before the target answer ("" when the target follows an
    assistant message). Earlier turns are paired as they come: a user message opens a pair, the
    next assistant message closes it; a user message with no answer gets "" as its answer, and an
    assistant message with no open question gets "" as its question.
`hf`
    A `datasets.DatasetDict` saved with `save_to_disk(out_dir)`, so `datasets.load_from_disk(out_dir)`
    returns it. Splits: `train` and `eval` (column `messages`, as in `train.jsonl`, with `weight`
    null on non-assistant messages), `dpo` (`prompt`, `chosen`, `rejected`) and `kto` (`prompt`,
    `completion`, `label`), in TRL's conversational preference formats, and `dpo_eval` and `kto_eval`
    (the held-out conversations' preference rows, the same columns). Empty splits are left out,
    because `datasets` cannot load an empty split back from disk.

The text formats are deterministic: the same snapshot gives byte-identical files (UTF-8, keys sorted,
`\\n` line ends; JSONL one row per line, JSON arrays indented by 2). The `hf` arrow files carry
fingerprints of their own and are equal in content, not in bytes. Message contents are carried
verbatim, chat-template markers included: nothing is trimmed, escaped away or re-rendered.

Standard library only at import time: `datasets` is imported inside the `hf` exporter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.errors import AssistantError, InputError
from assistant.files import write_atomic, write_error
from assistant.jsonl import read_jsonl

EXPORT_FORMATS = ("openai", "sharegpt", "alpaca", "hf")

SFT_SPLITS = ("train", "eval")
DPO_SPLITS = ("dpo", "dpo_eval")
KTO_SPLITS = ("kto", "kto_eval")
SPLITS = ("train", "eval", "dpo", "kto", "dpo_eval", "kto_eval")  # the snapshot's files, `<split>.jsonl`
ROLES = ("system", "user", "assistant")
SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}

Row = dict[str, Any]
Message = dict[str, Any]


def export_snapshot(snapshot_dir: Path, fmt: str, out_dir: Path) -> dict[str, int]:
    """Write the snapshot in `fmt` into `out_dir`; returns the rows written per file (per split for `hf`).

    Every row is read and converted before anything is written, so a refused snapshot leaves no
    half-written directory behind.
    """
    exporter = _EXPORTERS.get(fmt)
    if exporter is None:
        raise InputError(f"unknown export format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
    if not (snapshot_dir / "manifest.json").is_file():
        raise InputError(f"{snapshot_dir} is not a dataset snapshot (it has no manifest.json)")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file, not a directory; choose a new directory")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir} already exists and is not empty; choose a new directory")
    snapshot = read_snapshot(snapshot_dir)
    return exporter(snapshot, out_dir)


# -- reading the snapshot ----------------------------------------------------------------------


def read_snapshot(snapshot_dir: Path) -> dict[str, list[Row]]:
    """The snapshot's rows by split (`SPLITS`), each row checked for its shape.

    `train.jsonl` and `eval.jsonl` must exist (an empty one is fine); the preference files are
    optional, since a snapshot without ratings has nothing to put in them (and one built before
    `dpo_eval.jsonl` and `kto_eval.jsonl` existed has none of those).
    """
    splits: dict[str, list[Row]] = {}
    for split in SPLITS:
        path = snapshot_dir / f"{split}.jsonl"
        if not path.is_file():
            if split in SFT_SPLITS:
                raise InputError(f"{snapshot_dir} is not a complete snapshot (it has no {path.name})")
            splits[split] = []
            continue
        check = _check_sft if split in SFT_SPLITS else _check_dpo if split in DPO_SPLITS else _check_kto
        splits[split] = [check(row, where) for row, where in read_jsonl(path)]
    return splits


def _check_messages(value: Any, where: str, key: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise InputError(f'{where}: "{key}" must be a non-empty list of messages')
    for number, message in enumerate(value, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InputError(f'{where}: "{key}" message {number} needs a role of {", ".join(ROLES)}')
        if not isinstance(message.get("content"), str):
            raise InputError(f'{where}: "{key}" message {number} content must be a string')
        weight = message.get("weight")
        if weight is not None and (weight not in (0, 1) or isinstance(weight, bool)):
            raise InputError(f'{where}: "{key}" message {number} weight must be 0 or 1')
    return value


def _check_sft(row: Row, where: str) -> Row:
    messages = _check_messages(row.get("messages"), where, "messages")
    if messages[-1]["role"] != "assistant":
        raise InputError(f"{where}: the last message must be the assistant's answer")
    return row


def _check_answer(value: Any, where: str, key: str) -> list[Message]:
    messages = _check_messages(value, where, key)
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        raise InputError(f'{where}: "{key}" must hold exactly one assistant message')
    return messages


def _check_dpo(row: Row, where: str) -> Row:
    _check_messages(row.get("prompt"), where, "prompt")
    _check_answer(row.get("chosen"), where, "chosen")
    _check_answer(row.get("rejected"), where, "rejected")
    return row


def _check_kto(row: Row, where: str) -> Row:
    _check_messages(row.get("prompt"), where, "prompt")
    _check_answer(row.get("completion"), where, "completion")
    if not isinstance(row.get("label"), bool):
        raise InputError(f'{where}: "label" must be true or false')
    return row


# -- shared conversions ------------------------------------------------------------------------


def _weighted(messages: list[Message]) -> list[Message]:
    """Role and content only, plus a weight on every assistant message: the snapshot's, or where it
    has none the snapshot's convention (the last assistant message is the target, earlier ones are
    context). Other keys are dropped because OpenAI refuses unknown message fields."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    out = []
    for index, message in enumerate(messages):
        item: Message = {"role": message["role"], "content": message["content"]}
        if message["role"] == "assistant":
            weight = message.get("weight")
            item["weight"] = (1 if index == last else 0) if weight is None else weight
        out.append(item)
    return out


def _plain(messages: list[Message]) -> list[Message]:
    """Role and content only: preference formats weigh whole completions, not turns."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _jsonl(rows: list[Row]) -> str:
    return "".join(_json(row) + "\n" for row in rows)


def _json_array(rows: list[Row]) -> str:
    return _json(rows, indent=2) + "\n"


# Raw in JSON they are valid, but Python's str.splitlines() and some JSONL readers end a line at them,
# which would cut a row in two; escaped, they parse back to the very same text.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _json(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=indent).translate(_LINE_BREAKS)


def _write(out_dir: Path, files: dict[str, str]) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out_dir, exc) from None
    for name, text in files.items():
        write_atomic(out_dir / name, text)  # "\n" written as is on every platform: the bytes must not depend on it


# -- the formats -------------------------------------------------------------------------------


def _export_openai(snapshot: dict[str, list[Row]], out_dir: Path) -> dict[str, int]:
    files: dict[str, str] = {}
    counts: dict[str, int] = {}
    for split in SFT_SPLITS:
        rows = [{"messages": _weighted(row["messages"])} for row in snapshot[split]]
        files[f"{split}.jsonl"], counts[f"{split}.jsonl"] = _jsonl(rows), len(rows)
    for split in DPO_SPLITS:
        if not snapshot[split]:
            continue
        rows = [
            {
                "input": {"messages": _plain(row["prompt"])},
                "preferred_output": _plain(row["chosen"]),
                "non_preferred_output": _plain(row["rejected"]),
            }
            for row in snapshot[split]
        ]
        files[f"{split}.jsonl"], counts[f"{split}.jsonl"] = _jsonl(rows), len(rows)
    _write(out_dir, files)
    return counts


def _export_sharegpt(snapshot: dict[str, list[Row]], out_dir: Path) -> dict[str, int]:
    files: dict[str, str] = {}
    counts: dict[str, int] = {}
    for split in SFT_SPLITS:
        rows = [
            {"conversations": [{"from": SHAREGPT_FROM[m["role"]], "value": m["content"]} for m in row["messages"]]}
            for row in snapshot[split]
        ]
        files[f"{split}.json"], counts[f"{split}.json"] = _json_array(rows), len(rows)
    _write(out_dir, files)
    return counts


def to_alpaca(messages: list[Message], where: str) -> Row:
    """One SFT row in LLaMA-Factory's multi-turn alpaca shape (the rules are in the module docstring)."""
    leading = 0
    while messages[leading]["role"] == "system":
        leading += 1
    system = "\n\n".join(m["content"] for m in messages[:leading])
    *turns, target = messages[leading:]
    if any(m["role"] == "system" for m in turns):
        raise InputError(f"{where}: a system message after the first turn cannot be written as alpaca")
    instruction = ""
    if turns and turns[-1]["role"] == "user":
        instruction = turns.pop()["content"]
    history: list[list[str]] = []
    question: str | None = None
    for message in turns:
        if message["role"] == "user":
            if question is not None:
                history.append([question, ""])
            question = message["content"]
        else:
            history.append([question or "", message["content"]])
            question = None
    if question is not None:
        history.append([question, ""])
    return {"instruction": instruction, "input": "", "output": target["content"], "system": system, "history": history}


def _export_alpaca(snapshot: dict[str, list[Row]], out_dir: Path) -> dict[str, int]:
    files: dict[str, str] = {}
    counts: dict[str, int] = {}
    for split in SFT_SPLITS:
        rows = [to_alpaca(row["messages"], f"{split}.jsonl row {n}") for n, row in enumerate(snapshot[split], start=1)]
        files[f"{split}.json"], counts[f"{split}.json"] = _json_array(rows), len(rows)
    _write(out_dir, files)
    return counts


def _export_hf(snapshot: dict[str, list[Row]], out_dir: Path) -> dict[str, int]:
    try:
        import datasets
    except ImportError:
        raise AssistantError("the hf export needs the datasets library", hint="pip install datasets") from None

    text = datasets.Value("string")
    weighted = [{"role": text, "content": text, "weight": datasets.Value("int64")}]
    plain = [{"role": text, "content": text}]
    # Explicit features: inferring them would type a split whose weights are all null as "null",
    # and the splits of one export would not share one schema.
    sft = datasets.Features({"messages": weighted})
    dpo = datasets.Features({"prompt": plain, "chosen": plain, "rejected": plain})
    kto = datasets.Features({"prompt": plain, "completion": plain, "label": datasets.Value("bool")})
    kinds: dict[tuple[str, ...], tuple[datasets.Features, Callable[[Row], Row]]] = {
        SFT_SPLITS: (sft, lambda row: {"messages": _weighted_or_null(row["messages"])}),
        DPO_SPLITS: (dpo, lambda row: {k: _plain(row[k]) for k in ("prompt", "chosen", "rejected")}),
        KTO_SPLITS: (kto, lambda row: {k: _plain(row[k]) for k in ("prompt", "completion")} | {"label": row["label"]}),
    }
    splits = {}
    for split in SPLITS:  # train, eval, dpo, kto, dpo_eval, kto_eval
        split_features, convert = next(kind for names, kind in kinds.items() if split in names)
        rows = [convert(row) for row in snapshot[split]]
        if rows:
            columns = {name: [row[name] for row in rows] for name in split_features}
            splits[split] = datasets.Dataset.from_dict(columns, features=split_features)
    if not splits:
        raise InputError("the snapshot has no rows; there is nothing to export")
    # The progress bars would land on the CLI's stderr; put their setting back for other callers.
    bars_were_off = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        datasets.DatasetDict(splits).save_to_disk(str(out_dir))
    finally:
        if not bars_were_off:
            datasets.enable_progress_bars()
    return {split: dataset.num_rows for split, dataset in splits.items()}


def _weighted_or_null(messages: list[Message]) -> list[Message]:
    """As in train.jsonl, with every message holding a weight key (null off the assistant) so the
    rows share one arrow struct."""
    return [{**m, "weight": m.get("weight")} for m in _weighted(messages)]


_EXPORTERS: dict[str, Callable[[dict[str, list[Row]], Path], dict[str, int]]] = {
    "openai": _export_openai,
    "sharegpt": _export_sharegpt,
    "alpaca": _export_alpaca,
    "hf": _export_hf,
}
