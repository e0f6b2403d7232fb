"""A retrain on a CPU scores only the answer tokens through the LM head (as TRL does on CUDA), and its
loss and gradients are the ones TRL computes scoring every position: the speed-up changes nothing a
model learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from trl.trainer import utils as trl_utils

from assistant.train.loop import score_answers_only_on_cpu


def _loss_and_grads(model, batch) -> tuple[float, dict[str, torch.Tensor]]:  # noqa: ANN001
    model.zero_grad()
    out = model(**batch, fused_lm_head=True)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(out.loss.detach()), grads


def test_answer_only_scoring_on_cpu_gives_the_same_loss_and_gradients(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TRL's own choice, even where an earlier retrain in this process made it answers-only; restored after.
    monkeypatch.setattr(trl_utils, "_use_triton", getattr(trl_utils._use_triton, "__wrapped__", trl_utils._use_triton))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    vocab = model.config.vocab_size
    # Two rows of a batch: a prompt (no labels), an answer, and the second row padded.
    ids = torch.randint(3, vocab, (2, 24))
    attention = torch.ones_like(ids)
    attention[1, 18:] = 0
    labels = ids.clone()
    labels[:, :10] = -100
    labels[1, 18:] = -100
    batch = {"input_ids": ids, "attention_mask": attention, "labels": labels}

    assert not trl_utils._use_triton(torch.device("cpu"))  # TRL's own choice on a CPU: every position
    every_position = _loss_and_grads(model, batch)

    score_answers_only_on_cpu()
    assert trl_utils._use_triton(torch.device("cpu")), "the locked TRL's fused head no longer takes the CPU fast path"
    score_answers_only_on_cpu()  # twice is once
    answers_only = _loss_and_grads(model, batch)

    assert answers_only[0] == pytest.approx(every_position[0], rel=1e-5)
    assert every_position[1].keys() == answers_only[1].keys() and every_position[1]
    for name, grad in every_position[1].items():
        torch.testing.assert_close(answers_only[1][name], grad, rtol=1e-4, atol=1e-6)
