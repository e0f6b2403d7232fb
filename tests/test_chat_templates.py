"""Training templates: a ChatML model without `{% generation %}` markers (Qwen's) trains assistant-only
through the ChatML training template, which renders exactly like ChatML and honours `weight: 0`."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.chat_templates import CHATML_TRAINING_TEMPLATE, marks_generation, training_template

# Qwen2.5's template without tools: ChatML, a default system prompt, no generation markers.
QWEN_LIKE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Where is my parcel?"},
    {"role": "assistant", "content": "On its way.", "weight": 0},
    {"role": "user", "content": "When will it come?"},
    {"role": "assistant", "content": "Tomorrow before noon.", "weight": 1},
]


@pytest.fixture
def qwen_like(tiny_model_dir: Path):  # noqa: ANN201
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = QWEN_LIKE
    return tokenizer


def test_a_chatml_template_without_markers_gets_the_training_template(qwen_like) -> None:  # noqa: ANN001
    assert not marks_generation(QWEN_LIKE)
    assert training_template(qwen_like) == CHATML_TRAINING_TEMPLATE


def test_the_training_template_renders_like_chatml_and_trains_only_the_weighted_answer(qwen_like) -> None:  # noqa: ANN001
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in CONVERSATION]
    served = qwen_like.apply_chat_template(plain, tokenize=False)
    qwen_like.chat_template = training_template(qwen_like)
    assert qwen_like.apply_chat_template(CONVERSATION, tokenize=False) == served

    encoded = qwen_like.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
    assert qwen_like.decode(trained) == "Tomorrow before noon.<|im_end|>"


def test_a_template_that_is_neither_marked_nor_chatml_cannot_train(qwen_like) -> None:  # noqa: ANN001
    qwen_like.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    assert training_template(qwen_like) is None


def test_a_template_with_markers_is_kept(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert training_template(tokenizer) == tokenizer.chat_template
