"""Chat templates for training: they mark the tokens an assistant turn trains on.

A leaf module (no imports from the package): the demo model is built with `chatml_template`, and
retraining (train/) picks its template with `training_template`; neither imports the other.

TRL's assistant-only loss needs `{% generation %}` markers in the template. The demo model's
template has them; most hub models' (Qwen's ChatML among them) do not. For a ChatML model the
training template below is used instead; it renders exactly like ChatML and honours `"weight": 0`
on context turns (the OpenAI fine-tuning convention the dataset uses). Any other template without
markers is refused by the preflight: nothing would train.
"""

from __future__ import annotations

from typing import Any


def chatml_template(*, system: bool) -> str:
    """ChatML whose assistant turns are marked for training, except context turns with `weight: 0`.
    `system=False` leaves system messages out (the demo model is trained without them)."""
    loop = "messages" if system else "messages if message['role'] != 'system'"
    return (
        "{%- for message in " + loop + " %}"
        "{{- '<|im_start|>' + message['role'] + '\\n' }}"
        "{%- if message['role'] == 'assistant' and message['weight'] is defined and message['weight'] == 0 %}"
        "{{- message['content'] + '<|im_end|>' + '\\n' }}"
        "{%- elif message['role'] == 'assistant' %}"
        "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
        "{{- '\\n' }}"
        "{%- else %}"
        "{{- message['content'] + '<|im_end|>' + '\\n' }}"
        "{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )


CHATML_TRAINING_TEMPLATE = chatml_template(system=True)


def marks_generation(template: str | None) -> bool:
    return bool(template) and "generation" in template and "endgeneration" in template


def training_template(tokenizer: Any) -> str | None:
    """The template to train with: the model's own if it marks assistant tokens, ChatML's training
    variant for a ChatML model, else None (cannot train assistant-only)."""
    own = getattr(tokenizer, "chat_template", None)
    if marks_generation(own):
        return own
    if own and "<|im_start|>" in own and "<|im_start|>" in tokenizer.get_vocab():
        return CHATML_TRAINING_TEMPLATE
    return None
