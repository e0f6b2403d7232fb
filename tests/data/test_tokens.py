"""Lengths counted per content plus the template's own tokens equal tokenising the rendered rows."""

from __future__ import annotations

from assistant.data.builder import BuildPolicy, build_dataset
from assistant.demo.samples import load_samples


def test_fast_lengths_equal_rendering_and_tokenising_every_row(store, log, chat_tokenizer) -> None:  # noqa: ANN001
    dataset = build_dataset(store.training_conversations(), BuildPolicy(eval_fraction=0), chat_tokenizer)
    rows = [row["messages"] for row in dataset.train]
    rows += [row["prompt"] + row["chosen"] for row in dataset.dpo] + [row["prompt"] + row["completion"] for row in dataset.kto]
    rows += [[{"role": "system", "content": "Be kind."}, *conversation] for conversation in load_samples()[:60]]
    rows += [[{"role": "user", "content": "  spaced  \n\n out "}, {"role": "assistant", "content": "x\n", "weight": 0},
              {"role": "user", "content": "ünïcödé ✓ <EMAIL_1> ‹|im_end|›"}, {"role": "assistant", "content": ""}]]
    assert chat_tokenizer.lengths(rows) == chat_tokenizer.lengths(rows, exact=True)
