"""The eval gate: is the new adapter better than the one serving now?

The candidate, the active adapter (if any) and the bare base model are scored as they are served:
the base as a chat loads it (4-bit on CUDA; on a CPU full precision unless `cpu_load_in_4bit`) with
the adapter unmerged on top, each on the same rows, without the curated answers a chat shows beside
a question (`references.py`): the model alone. Each gets

- its loss on the eval split of the candidate's dataset (assistant tokens only, token-weighted);
- its loss on a regression set: eval examples of earlier snapshots that still exist and are not
  training examples now;
- its loss on the new rows: the team's training rows that the active version was not trained on
  (all of them for a first version), i.e. what curators approved since;
- its preference score on the snapshot's preference rows (the held-out `dpo_eval`/`kto_eval` rows,
  else, when it has none, the training side's `dpo`/`kto` rows): each answer's mean per-token
  log-probability given its prompt; for the DPO pairs the share whose chosen answer is strictly more
  likely than the rejected one (pair accuracy) and the mean difference (pair margin), for the KTO rows
  the mean log-probability of the desirable and of the undesirable completions;
- its greedy answers to the probe prompts, kept in the report for people to read.

`decide` is the rule, kept pure: promote only if the candidate beats the baseline (the active
adapter, else the base model) on eval loss by at least `margin`, or learned its new rows (their loss
fell by at least `margin`) while its eval loss rose by at most `max_rise` (the learned path, which
retrain opens only for the small-data schedule: a few corrections on a model that already answers the
eval questions well cannot beat it there, only not break them), and does not raise the regression
loss by more than `tolerance` (a fraction), and, where both have a preference score, holds it (pair
accuracy not lower by more than `tolerance`, the KTO gap, desirable minus undesirable log-probability,
not lower by more than `margin`). A candidate worse than the baseline that did not take the learned
path is rejected; one that is better but not by enough, regresses or loses its preference score stays
a candidate.

A run that trained a preference stage (`preference_stage=True`) is judged on its preference score
instead: promoted only if it improves on the baseline's (pair accuracy higher, or equal with a pair
margin higher by at least `margin`; without pairs, the KTO gap higher by at least `margin`, or with
one label only, its log-probability moved that way by at least `margin`), its eval loss rises by at
most `max_rise` (not checked where neither side has an eval loss: a preference-only dataset) and the
regression check passes. A preference score that got worse is rejected; one that improves by too
little, or that costs too much eval loss, stays a candidate. Without preference rows to score, such a
run is judged on eval loss as above but never promoted (at best it stays a candidate).
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
GOLDEN_TOKENS = 128  # of each golden-set answer: enough to tell a right answer from a broken one
GOLDEN_BATCH = 8  # golden-set questions decoded together
NEW_ROWS = 32  # new rows scored: enough to tell whether a version learned them (SmolLM2: about 6 s a model)


@dataclass(frozen=True)
class Verdict:
    verdict: str  # "promote", "keep" (stays a candidate) or "reject"
    reason: str


def decide(
    scores: dict[str, dict[str, Any]], *, margin: float, tolerance: float, max_rise: float = 0.0,
    preference_stage: bool = False, golden_tolerance: float = 0.05,
) -> Verdict:
    verdict = _decide(scores, margin=margin, tolerance=tolerance, max_rise=max_rise, preference_stage=preference_stage)
    if verdict.verdict == "promote":
        dropped = _golden_dropped(scores, golden_tolerance)
        if dropped:
            return Verdict("keep", f"{dropped} (otherwise: {verdict.reason})")
    return verdict


def _baseline(scores: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """What the candidate is compared with, the active adapter or else the base model, and its name in reasons."""
    if "active" in scores:
        return scores["active"], f"the active adapter {scores['active'].get('version')}"
    return scores["base"], "the base model"


def _golden_dropped(scores: dict[str, dict[str, Any]], tolerance: float) -> str | None:
    """Why the candidate fails the golden set (`gate_golden_set`): its mean ROUGE-L or pass rate fell by
    more than `tolerance` below the baseline's; None when it holds them, or there is no golden set."""
    baseline, label = _baseline(scores)
    new, old = scores["candidate"].get("golden"), baseline.get("golden")
    if not new or not old:
        return None
    for key, name in (("rouge_l", "mean ROUGE-L"), ("pass_rate", "pass rate")):
        if new.get(key) is not None and old.get(key) is not None and old[key] - new[key] > tolerance + _SLACK:
            return (f"the golden set's {name} fell from {label}'s {old[key]:.3f} to {new[key]:.3f}, more than"
                    f" gate_golden_tolerance {tolerance}")
    return None


def _decide(
    scores: dict[str, dict[str, Any]], *, margin: float, tolerance: float, max_rise: float = 0.0, preference_stage: bool = False
) -> Verdict:
    candidate = scores["candidate"]
    baseline, label = _baseline(scores)
    if preference_stage:
        judged = _decide_preference(candidate, baseline, label, margin=margin, tolerance=tolerance, max_rise=max_rise)
        if judged is not None:
            return judged
        # Nothing to judge the preference stage on: the eval-loss rule, and no promotion.
        verdict = _decide(scores, margin=margin, tolerance=tolerance, max_rise=max_rise)
        unjudged = "a preference stage ran but there is no preference score to compare (no preference rows scored)"
        return Verdict("keep" if verdict.verdict == "promote" else verdict.verdict, f"{unjudged}; {verdict.reason}")
    new, old = candidate.get("eval_loss"), baseline.get("eval_loss")
    if new is None or old is None or not (math.isfinite(new) and math.isfinite(old)):
        return Verdict("reject", "no eval loss to compare (empty eval split or non-finite loss)")
    gain = old - new
    learned = _learned(candidate, baseline, label, margin=margin, max_rise=max_rise) if gain < margin else None
    if gain < 0 and learned is None:
        return Verdict("reject", f"eval loss {new:.4f} is worse than {label}'s {old:.4f}")
    if gain < margin and learned is None:
        return Verdict("keep", f"eval loss {new:.4f} beats {label}'s {old:.4f} by {gain:.4f}, less than the margin {margin}")
    regressed = _regressed(candidate, baseline, tolerance)
    if regressed:
        return Verdict("keep", regressed)
    lost = _preference_lost(candidate.get("preference"), baseline.get("preference"), label, margin=margin, tolerance=tolerance)
    if lost:
        return Verdict("keep", lost)
    return Verdict("promote", learned or f"eval loss {new:.4f} beats {label}'s {old:.4f} by {gain:.4f}")


def _regressed(candidate: dict[str, Any], baseline: dict[str, Any], tolerance: float) -> str | None:
    """Why the candidate fails the regression check (its regression loss rose by more than tolerance), or None."""
    new_reg, old_reg = candidate.get("regression_loss"), baseline.get("regression_loss")
    if new_reg is not None and old_reg is not None and not new_reg <= old_reg * (1 + tolerance):
        return f"regression loss rose {_rise(old_reg, new_reg)} ({old_reg:.4f} -> {new_reg:.4f}), more than the tolerance {tolerance:.0%}"
    return None


_SLACK = 1e-9  # accuracies and gaps are computed sums: a drop of exactly the tolerance is allowed


def _kto_gap(preference: dict[str, Any]) -> float | None:
    good, bad = preference.get("desirable_logp"), preference.get("undesirable_logp")
    return good - bad if good is not None and bad is not None else None


def _preference_lost(
    new: dict[str, Any] | None, old: dict[str, Any] | None, label: str, *, margin: float, tolerance: float
) -> str | None:
    """Why a candidate trained without a preference stage does not hold the baseline's preference score, or None."""
    if not new or not old:
        return None
    if new.get("pairs") and old.get("pairs") and new.get("pair_accuracy") is not None and old.get("pair_accuracy") is not None:
        acc_new, acc_old = new["pair_accuracy"], old["pair_accuracy"]
        if not acc_old - acc_new <= tolerance + _SLACK:
            return (f"preference pair accuracy fell from {label}'s {acc_old:.1%} to {acc_new:.1%}, more than the"
                    f" tolerance {tolerance:.0%}")
    gap_new, gap_old = _kto_gap(new), _kto_gap(old)
    if gap_new is not None and gap_old is not None and not gap_old - gap_new <= margin + _SLACK:
        return (f"preference gap (desirable - undesirable log-probability) fell from {label}'s {gap_old:.4f} to"
                f" {gap_new:.4f}, more than the margin {margin}")
    return None


def _preference_change(
    new: dict[str, Any], old: dict[str, Any], label: str, *, margin: float
) -> tuple[int, str] | None:
    """How the candidate's preference score compares with the baseline's: (1 improved, 0 by too little,
    -1 worse) and the words saying so; None when there is nothing to compare."""
    if new.get("pairs") and old.get("pairs") and new.get("pair_accuracy") is not None and old.get("pair_accuracy") is not None:
        acc_new, acc_old = new["pair_accuracy"], old["pair_accuracy"]
        gap_new, gap_old = new.get("pair_margin") or 0.0, old.get("pair_margin") or 0.0
        numbers = (f"pair accuracy {acc_new:.1%} (margin {gap_new:+.4f}) against {label}'s {acc_old:.1%}"
                   f" (margin {gap_old:+.4f}) on {new['pairs']} pairs")
        if acc_new != acc_old:
            return (1 if acc_new > acc_old else -1), numbers
        gain = gap_new - gap_old
        return (1 if gain >= margin else 0 if gain >= 0 else -1), numbers + (
            f": an equal accuracy, the pair margin {'better by ' if gain >= 0 else 'worse by '}{abs(gain):.4f}"
            + (f", less than the margin {margin}" if 0 <= gain < margin else "")
        )
    gap_new, gap_old = _kto_gap(new), _kto_gap(old)
    if gap_new is not None and gap_old is not None:
        what, value_new, value_old = "preference gap (desirable - undesirable log-probability)", gap_new, gap_old
    elif new.get("desirable") and old.get("desirable") and new.get("desirable_logp") is not None and old.get("desirable_logp") is not None:
        what, value_new, value_old = "desirable answers' log-probability", new["desirable_logp"], old["desirable_logp"]
    elif new.get("undesirable") and old.get("undesirable") and new.get("undesirable_logp") is not None and old.get("undesirable_logp") is not None:
        # Only thumbs down: the less likely they become, the better.
        what, value_new, value_old = "undesirable answers' log-probability, negated", -new["undesirable_logp"], -old["undesirable_logp"]
    else:
        return None
    gain = value_new - value_old
    numbers = f"{what} {value_new:.4f} against {label}'s {value_old:.4f}"
    if gain >= margin:
        return 1, f"{numbers}, better by {gain:.4f}"
    if gain >= 0:
        return 0, f"{numbers}, better by {gain:.4f}, less than the margin {margin}"
    return -1, f"{numbers}, worse by {-gain:.4f}"


def _decide_preference(
    candidate: dict[str, Any], baseline: dict[str, Any], label: str, *, margin: float, tolerance: float, max_rise: float
) -> Verdict | None:
    """The rule for a run that trained a preference stage: its preference score must improve (None: no
    preference score to compare)."""
    new_pref, old_pref = candidate.get("preference"), baseline.get("preference")
    change = _preference_change(new_pref, old_pref, label, margin=margin) if new_pref and old_pref else None
    if change is None:
        return None
    new, old = candidate.get("eval_loss"), baseline.get("eval_loss")
    if (new is not None or old is not None) and (new is None or old is None or not (math.isfinite(new) and math.isfinite(old))):
        return Verdict("reject", "no eval loss to compare (empty eval split on one side or non-finite loss)")
    direction, numbers = change
    if direction < 0:
        return Verdict("reject", f"preference score got worse: {numbers}")
    if direction == 0:
        return Verdict("keep", f"preference score does not improve enough: {numbers}")
    if new is not None and old is not None and new - old > max_rise:
        return Verdict("keep", f"preference score improves ({numbers}) but eval loss rose from {label}'s {old:.4f} to"
                               f" {new:.4f}, more than {max_rise}")
    regressed = _regressed(candidate, baseline, tolerance)
    if regressed:
        return Verdict("keep", f"preference score improves ({numbers}) but {regressed}")
    held = f"; eval loss {new:.4f} against {label}'s {old:.4f}" if new is not None and old is not None else ""
    return Verdict("promote", f"preference score improves: {numbers}{held}")


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


def preference_rows(dataset_dir: Path, limit: int) -> tuple[str | None, list[dict[str, Any]], list[dict[str, Any]]]:
    """The snapshot's preference rows to score: (which, DPO rows, KTO rows), each capped at limit. The held-out
    rows (dpo_eval, kto_eval) where it has any, else the training side's (dpo, kto); which is "held out",
    "training" or None (no rows)."""
    for which, suffix in (("held out", "_eval"), ("training", "")):
        dpo = read_rows(dataset_dir / f"dpo{suffix}.jsonl")[:limit]
        kto = read_rows(dataset_dir / f"kto{suffix}.jsonl")[:limit]
        if dpo or kto:
            return which, dpo, kto
    return None, [], []


def _answer(messages: Any) -> list[dict[str, Any]]:
    """A preference row's answer (chosen, rejected or completion) as messages."""
    return [{"role": "assistant", "content": messages}] if isinstance(messages, str) else list(messages)


def preference_summary(
    dpo: Sequence[tuple[int, int]], kto: Sequence[tuple[int, bool]], logps: Sequence[float]
) -> dict[str, Any]:
    """A model's preference score from its answers' mean per-token log-probabilities: dpo holds (chosen,
    rejected) indices into logps, kto (completion index, label)."""
    diffs = [logps[chosen] - logps[rejected] for chosen, rejected in dpo]
    good = [logps[i] for i, label in kto if label]
    bad = [logps[i] for i, label in kto if not label]
    return {
        "pairs": len(diffs),
        "pair_accuracy": sum(d > 0 for d in diffs) / len(diffs) if diffs else None,  # strictly more likely
        "pair_margin": sum(diffs) / len(diffs) if diffs else None,
        "desirable": len(good),
        "undesirable": len(bad),
        "desirable_logp": sum(good) / len(good) if good else None,
        "undesirable_logp": sum(bad) / len(bad) if bad else None,
    }


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
    golden: Any = None,  # adapters.golden.GoldenSet: answered greedily and scored by each model
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

    # The preference rows: each distinct (prompt, answer) encoded once, as one conversation; its answer is
    # the last run of assistant tokens (the prompt's own assistant turns come before it), cut at max_length.
    preference_source, dpo_rows, kto_rows = preference_rows(dataset_dir, max_examples)
    answers_set: list[tuple[list[int], list[int]]] = []
    index: dict[str, int | None] = {}

    def answer_index(prompt: Any, answer: Any) -> int | None:
        conversation = [*prompt, *_answer(answer)]
        key = json.dumps(conversation, sort_keys=True)
        if key not in index:
            ids = tokenizer.apply_chat_template(
                conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
            )
            input_ids, mask = list(ids["input_ids"]), list(ids["assistant_masks"])
            end = max((i + 1 for i, m in enumerate(mask) if m), default=0)
            start = end
            while start > 0 and mask[start - 1]:
                start -= 1
            start, end = max(start, 1), min(end, max_length)  # the first token is never predicted
            if start >= end:
                index[key] = None
            else:
                index[key] = len(answers_set)
                answers_set.append((input_ids[:end], [0] * start + [1] * (end - start)))
        return index[key]

    dpo_pairs: list[tuple[int, int]] = []
    for row in dpo_rows:
        chosen, rejected = answer_index(row["prompt"], row["chosen"]), answer_index(row["prompt"], row["rejected"])
        if chosen is not None and rejected is not None:
            dpo_pairs.append((chosen, rejected))
    kto_items: list[tuple[int, bool]] = []
    for row in kto_rows:
        completion = answer_index(row["prompt"], row["completion"])
        if completion is not None:
            kto_items.append((completion, bool(row["label"])))
    if not dpo_pairs and not kto_items:
        preference_source = None

    # A full-precision base on a CPU with bf16 (the training's own autocast): the losses of every model
    # scored are computed alike, in half the time; the probe answers stay in the chat's precision.
    bf16 = not on_cuda and not four_bit and cpu_has_bf16()

    def batches(examples: list[tuple[list[int], list[int]]]):  # noqa: ANN202
        """(positions in examples, input ids, attention mask, labels) per forward pass: sorted by length (little
        padding per batch), LOSS_BATCH rows each."""
        order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
        for start in range(0, len(order), LOSS_BATCH):
            positions = order[start : start + LOSS_BATCH]
            batch = [examples[i] for i in positions]
            width = max(len(input_ids) for input_ids, _ in batch)
            ids = torch.tensor([input_ids + [0] * (width - len(input_ids)) for input_ids, _ in batch], device=device)
            attention = torch.tensor([[1] * len(input_ids) + [0] * (width - len(input_ids)) for input_ids, _ in batch], device=device)
            labels = torch.tensor(
                [[t if m else -100 for t, m in zip(input_ids, mask, strict=True)] + [-100] * (width - len(input_ids)) for input_ids, mask in batch],
                device=device,
            )
            yield positions, ids, attention, labels

    def loss(examples: list[tuple[list[int], list[int]]]) -> float | None:
        if not examples:
            return None
        total, count = 0.0, 0
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for _, ids, attention, labels in batches(examples):
                n = int((labels[:, 1:] != -100).sum())
                if n:  # the mean over the batch's answer tokens, back to their sum
                    total += float(model(input_ids=ids, attention_mask=attention, labels=labels).loss) * n
                    count += n
        return total / count

    def logps(examples: list[tuple[list[int], list[int]]]) -> list[float]:
        """Each example's mean per-token log-probability of its answer tokens (as `loss` computes it, negated)."""
        out = [0.0] * len(examples)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for positions, ids, attention, labels in batches(examples):
                logits = model(input_ids=ids, attention_mask=attention).logits
                targets = labels[:, 1:]
                for row, position in enumerate(positions):
                    where = (targets[row] != -100).nonzero().squeeze(-1)  # each predicted from the token before
                    picked = torch.log_softmax(logits[row, where].float(), dim=-1)
                    out[position] = float(picked.gather(-1, targets[row, where].unsqueeze(-1)).mean())
        return out

    stop = [serving_tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>")]
    stop = [t for t in stop if isinstance(t, int) and t >= 0 and t != serving_tokenizer.unk_token_id]
    if serving_tokenizer.eos_token_id is not None:
        stop.append(serving_tokenizer.eos_token_id)

    pad = serving_tokenizer.pad_token_id if serving_tokenizer.pad_token_id is not None else (stop[0] if stop else 0)

    def answer_all(prompts: Sequence[str], max_new_tokens: int = PROBE_TOKENS) -> list[str]:
        """Greedy answers to every probe in one batch (left-padded): a CPU decodes three rows for the
        price of one, so the probes cost a third of asking them one by one. More than GOLDEN_BATCH
        prompts (a golden set) go in batches of that many."""
        if not prompts:
            return []
        if len(prompts) > GOLDEN_BATCH:
            return [text for start in range(0, len(prompts), GOLDEN_BATCH)
                    for text in answer_all(prompts[start : start + GOLDEN_BATCH], max_new_tokens)]
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
                max_new_tokens=max_new_tokens,
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
    if golden is not None:
        from assistant.adapters.golden import Scorer
        from assistant.adapters.golden import totals as golden_totals

        scorer = Scorer()
    answers: dict[str, dict[str, str]] = {p: {} for p in prompts}

    def score(name: str, version: str | None) -> None:
        progress(f"Scoring the {name}" + (f" {version}" if version else ""))
        scores[name] = {"version": version, "eval_loss": loss(eval_set), "regression_loss": loss(regression_set),
                        "new_loss": loss(new_set),
                        "preference": preference_summary(dpo_pairs, kto_items, logps(answers_set)) if preference_source else None}
        for prompt, text in zip(prompts, answer_all(prompts), strict=True):
            answers[prompt][name] = text
        if golden is not None:
            asked = [q.question for q in golden.questions]
            replies = answer_all(asked, GOLDEN_TOKENS)
            scores[name]["golden"] = golden_totals(golden.questions, [scorer(q, a) for q, a in zip(golden.questions, replies, strict=True)])

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
        "preference_rows": preference_source,
        "preference_examples": {"pairs": len(dpo_pairs), "kto": len(kto_items)},
        "golden_set": {"file": golden.name, "sha256": golden.sha256, "questions": len(golden.questions)} if golden else None,
        "probes": [{"prompt": p, "answers": answers[p]} for p in prompts],
    }
