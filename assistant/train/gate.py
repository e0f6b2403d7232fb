"""The eval gate: is the new adapter better than the one serving now?

The candidate, the active adapter (if any) and the bare base model are scored as they are served:
the base as a chat loads it (4-bit on CUDA; on a CPU full precision unless `cpu_load_in_4bit`) with
the adapter unmerged on top. Each gets

- its loss on the eval split of the candidate's dataset (assistant tokens only, token-weighted);
- its loss on a regression set: eval examples of earlier snapshots that still exist and are not
  training examples now;
- its loss on the new rows: the team's training rows that the active version was not trained on
  (all of them for a first version), i.e. what curators approved since;
- its greedy answers to the probe prompts, kept in the report for people to read.

`decide` is the rule, kept pure: promote only if the candidate beats the baseline (the active
adapter, else the base model) on eval loss by at least `margin`, or learned its new rows (their loss
fell by at least `margin`) while its eval loss rose by at most `max_rise` (the learned path, which
retrain opens only for the small-data schedule: a few corrections on a model that already answers the
eval questions well cannot beat it there, only not break them), and does not raise the regression
loss by more than `tolerance` (a fraction). A candidate worse than the baseline that did not take
the learned path is rejected; one that is better but not by enough, or regresses, stays a candidate.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.engine.base import ChatMessage
from assistant.quantization import load_base_4bit
from assistant.train.loop import cpu_has_bf16, load_training_tokenizer, read_rows

log = logging.getLogger(__name__)

PROBE_TOKENS = 64  # enough of an answer to read; each token is a decoding step of two models
DEFAULT_PROBES = 3
LOSS_BATCH = 8  # evaluation rows per forward pass
NEW_ROWS = 32  # new rows scored: enough to tell whether a version learned them (SmolLM2: about 6 s a model)


@dataclass(frozen=True)
class Verdict:
    verdict: str  # "promote", "keep" (stays a candidate) or "reject"
    reason: str


def decide(scores: dict[str, dict[str, Any]], *, margin: float, tolerance: float, max_rise: float = 0.0) -> Verdict:
    candidate = scores["candidate"]
    baseline_name = "active" if "active" in scores else "base"
    baseline = scores[baseline_name]
    label = f"the active adapter {baseline.get('version')}" if baseline_name == "active" else "the base model"
    new, old = candidate.get("eval_loss"), baseline.get("eval_loss")
    if new is None or old is None or not (math.isfinite(new) and math.isfinite(old)):
        return Verdict("reject", "no eval loss to compare (empty eval split or non-finite loss)")
    gain = old - new
    learned = _learned(candidate, baseline, label, margin=margin, max_rise=max_rise) if gain < margin else None
    if gain < 0 and learned is None:
        return Verdict("reject", f"eval loss {new:.4f} is worse than {label}'s {old:.4f}")
    if gain < margin and learned is None:
        return Verdict("keep", f"eval loss {new:.4f} beats {label}'s {old:.4f} by {gain:.4f}, less than the margin {margin}")
    new_reg, old_reg = candidate.get("regression_loss"), baseline.get("regression_loss")
    if new_reg is not None and old_reg is not None and not new_reg <= old_reg * (1 + tolerance):
        return Verdict(
            "keep",
            f"regression loss rose {_rise(old_reg, new_reg)} ({old_reg:.4f} -> {new_reg:.4f}), more than the tolerance {tolerance:.0%}",
        )
    return Verdict("promote", learned or f"eval loss {new:.4f} beats {label}'s {old:.4f} by {gain:.4f}")


def _learned(candidate: dict[str, Any], baseline: dict[str, Any], label: str, *, margin: float, max_rise: float) -> str | None:
    """Why the candidate counts as better though its eval loss is not (it learned its new rows and its eval
    loss rose by at most max_rise), or None."""
    new, old = candidate.get("new_loss"), baseline.get("new_loss")
    eval_new, eval_old = candidate["eval_loss"], baseline["eval_loss"]
    if max_rise <= 0 or new is None or old is None or not (math.isfinite(new) and math.isfinite(old)):
        return None
    if old - new < max(margin, 1e-9) or eval_new - eval_old > max_rise:
        return None
    return (f"learned its new rows (loss {old:.4f} -> {new:.4f}) while its eval loss {eval_new:.4f} stays within"
            f" {max_rise} of {label}'s {eval_old:.4f}")


def new_rows(dataset_dir: Path, active_dataset: Path | None, limit: int) -> list[dict[str, Any]]:
    """The team's training rows (not replayed samples) that the active version's dataset did not train on."""
    from assistant.train.loop import team_row_flags

    seen = {_key(row) for row in read_rows(active_dataset / "train.jsonl")} if active_dataset else set()
    rows = read_rows(dataset_dir / "train.jsonl")
    flags = team_row_flags(dataset_dir)
    if len(flags) != len(rows):
        return []
    fresh = [row for row, team in zip(rows, flags, strict=True) if team and _key(row) not in seen]
    if len(fresh) <= limit:
        return fresh
    return [fresh[i * len(fresh) // limit] for i in range(limit)]  # spread over them


def _key(row: dict[str, Any]) -> str:
    """A row's messages as a comparable key, whatever their keys' order."""
    return json.dumps(row["messages"], sort_keys=True)


def _rise(old: float, new: float) -> str:
    if not math.isfinite(new):
        return "to a non-finite value"
    return f"{new / old - 1:.1%}" if old > 0 else "from zero"


def regression_rows(earlier: Sequence[Path], current_train: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Eval rows of earlier snapshots (newest first), without duplicates or current training rows."""
    seen = {_key(row) for row in current_train}
    rows = []
    for directory in earlier:
        for row in read_rows(directory / "eval.jsonl"):
            key = _key(row)
            if key not in seen:
                seen.add(key)
                rows.append(row)
                if len(rows) >= limit:
                    return rows
    return rows


def probe_prompts(configured: Sequence[str], eval_rows: Sequence[dict[str, Any]]) -> list[str]:
    if configured:
        return list(configured)
    prompts: list[str] = []
    for row in eval_rows:
        users = [m["content"] for m in row["messages"] if m["role"] == "user"]
        if users and users[-1] not in prompts:
            prompts.append(users[-1])
        if len(prompts) == DEFAULT_PROBES:
            break
    return prompts


def evaluate(
    base_path: Path,
    candidate_dir: Path,
    active: tuple[str, Path] | None,
    dataset_dir: Path,
    earlier_datasets: Sequence[Path],
    *,
    on_cuda: bool,
    four_bit: bool = True,  # on CPU: how the chat serves the base (`cpu_load_in_4bit`)
    max_examples: int,
    max_length: int,
    probes: Sequence[str],
    new: Sequence[dict[str, Any]] = (),
    system_prompt: str,
    progress: Callable[[str], None] = lambda text: None,
) -> dict[str, Any]:
    """Score candidate, active and base; the report (without the verdict)."""
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from assistant.engine.prompt import encode_chat

    eval_rows = read_rows(dataset_dir / "eval.jsonl")[:max_examples]
    regression = regression_rows(earlier_datasets, read_rows(dataset_dir / "train.jsonl"), max_examples)
    prompts = probe_prompts(probes, eval_rows)
    tokenizer = load_training_tokenizer(base_path)
    serving_tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = load_base_4bit(base_path, on_cuda=on_cuda, four_bit=on_cuda or four_bit)
    model = PeftModel.from_pretrained(model, candidate_dir, adapter_name="candidate", is_trainable=False)
    if active is not None:
        model.load_adapter(active[1], adapter_name="active", is_trainable=False)
    model.eval()
    device = next(model.parameters()).device

    def encoded(rows: Sequence[dict[str, Any]]) -> list[tuple[list[int], list[int]]]:
        out = []
        for row in rows:
            ids = tokenizer.apply_chat_template(
                row["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
            )
            input_ids, mask = list(ids["input_ids"])[:max_length], list(ids["assistant_masks"])[:max_length]
            if sum(mask[1:]):
                out.append((input_ids, mask))
        return out

    eval_set, regression_set, new_set = encoded(eval_rows), encoded(regression), encoded(new)

    def loss(examples: list[tuple[list[int], list[int]]]) -> float | None:
        if not examples:
            return None
        total, count = 0.0, 0
        ordered = sorted(examples, key=lambda example: len(example[0]))  # little padding per batch
        # A full-precision base on a CPU with bf16 (the training's own autocast): the losses of every model
        # scored are computed alike, in half the time; the probe answers stay in the chat's precision.
        fast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=not on_cuda and not four_bit and cpu_has_bf16())
        with torch.inference_mode(), fast:
            for start in range(0, len(ordered), LOSS_BATCH):
                batch = ordered[start : start + LOSS_BATCH]
                width = max(len(input_ids) for input_ids, _ in batch)
                ids = torch.tensor([input_ids + [0] * (width - len(input_ids)) for input_ids, _ in batch], device=device)
                attention = torch.tensor([[1] * len(input_ids) + [0] * (width - len(input_ids)) for input_ids, _ in batch], device=device)
                labels = torch.tensor(
                    [[t if m else -100 for t, m in zip(input_ids, mask, strict=True)] + [-100] * (width - len(input_ids)) for input_ids, mask in batch],
                    device=device,
                )
                n = int((labels[:, 1:] != -100).sum())
                if n:  # the mean over the batch's answer tokens, back to their sum
                    total += float(model(input_ids=ids, attention_mask=attention, labels=labels).loss) * n
                    count += n
        return total / count

    stop = [serving_tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>")]
    stop = [t for t in stop if isinstance(t, int) and t >= 0 and t != serving_tokenizer.unk_token_id]
    if serving_tokenizer.eos_token_id is not None:
        stop.append(serving_tokenizer.eos_token_id)

    pad = serving_tokenizer.pad_token_id if serving_tokenizer.pad_token_id is not None else (stop[0] if stop else 0)

    def answer_all(prompts: Sequence[str]) -> list[str]:
        """Greedy answers to every probe in one batch (left-padded): a CPU decodes three rows for the
        price of one, so the probes cost a third of asking them one by one."""
        if not prompts:
            return []
        system = [ChatMessage("system", system_prompt)] if system_prompt else []
        encoded_prompts = [encode_chat(serving_tokenizer, [*system, ChatMessage("user", p)]) for p in prompts]
        width = max(len(ids) for ids in encoded_prompts)
        ids = torch.tensor([[pad] * (width - len(row)) + row for row in encoded_prompts], device=device)
        attention = torch.tensor(
            [[0] * (width - len(row)) + [1] * len(row) for row in encoded_prompts], device=device
        )
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=attention,
                max_new_tokens=PROBE_TOKENS,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=sorted(set(stop)) or None,
                pad_token_id=pad,
            )
        texts = []
        for row in out[:, width:].tolist():
            ended = next((i for i, token in enumerate(row) if token in stop), len(row))
            texts.append(serving_tokenizer.decode(row[:ended], skip_special_tokens=True).strip())
        return texts

    scores: dict[str, dict[str, Any]] = {}
    answers: dict[str, dict[str, str]] = {p: {} for p in prompts}

    def score(name: str, version: str | None) -> None:
        progress(f"Scoring the {name}" + (f" {version}" if version else ""))
        scores[name] = {"version": version, "eval_loss": loss(eval_set), "regression_loss": loss(regression_set),
                        "new_loss": loss(new_set)}
        for prompt, text in zip(prompts, answer_all(prompts), strict=True):
            answers[prompt][name] = text

    model.set_adapter("candidate")
    score("candidate", None)
    if active is not None:
        model.set_adapter("active")
        score("active", active[0])
    with model.disable_adapter():
        score("base", None)
    del model
    if on_cuda:
        torch.cuda.empty_cache()
    return {
        "scores": scores,
        "eval_examples": len(eval_set),
        "regression_examples": len(regression_set),
        "new_examples": len(new_set),
        "probes": [{"prompt": p, "answers": answers[p]} for p in prompts],
    }
