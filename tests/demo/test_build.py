"""The demo model builder: deterministic, safetensors, a chat template fit for assistant-only loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.demo.build import RECIPES, build_demo_model, ensure_demo_model, is_built
from assistant.demo.samples import load_samples, sample_questions

SMALL = load_samples()[:12]


@pytest.fixture(scope="module")
def built_twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    first = build_demo_model(tmp_path_factory.mktemp("a"), SMALL, recipe=RECIPES["tiny"], seed=7)
    second = build_demo_model(tmp_path_factory.mktemp("b"), SMALL, recipe=RECIPES["tiny"], seed=7)
    return first, second


def test_same_seed_gives_identical_files(built_twice: tuple[Path, Path]) -> None:
    first, second = built_twice
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_weights_are_safetensors_only(built_twice: tuple[Path, Path]) -> None:
    names = {p.name for p in built_twice[0].iterdir()}
    assert "model.safetensors" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]


def test_template_marks_assistant_turns_with_end_of_turn(built_twice: tuple[Path, Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built_twice[0])
    assert "{% generation %}" in tokenizer.chat_template.replace("{%- generation %}", "{% generation %}")
    conversation = SMALL[0][:2]
    encoded = tokenizer.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    trained = [t for t, keep in zip(encoded["input_ids"], encoded["assistant_masks"]) if keep]
    assert tokenizer.decode(trained) == conversation[1]["content"] + "<|im_end|>"


def test_template_leaves_system_messages_out(built_twice: tuple[Path, Path]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built_twice[0])
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "SYSTEM TEXT"}, {"role": "user", "content": "hi"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert "SYSTEM TEXT" not in text
    assert text.endswith("<|im_start|>assistant\n")


def test_ensure_builds_once_and_reuses(tmp_path: Path) -> None:
    stages: list[tuple[str, int, int]] = []
    path = ensure_demo_model(
        tmp_path, recipe="tiny", seed=3, conversations=SMALL, progress=lambda *a: stages.append(a)
    )
    assert is_built(path)
    assert ("training", stages[-1][2], stages[-1][2]) in stages  # progress reached the end
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    again = ensure_demo_model(tmp_path, recipe="tiny", seed=3, conversations=SMALL, progress=lambda *a: stages.append(a))
    assert again == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    other = ensure_demo_model(tmp_path, recipe="tiny", seed=4, conversations=SMALL)
    assert other != path
    assert not list(tmp_path.glob("*.lock-staging*"))


def test_sample_questions_cover_every_assistant_turn() -> None:
    conversations = load_samples()
    assert len(conversations) >= 200
    pairs = sample_questions(conversations)
    assert len(pairs) == sum(1 for c in conversations for m in c if m["role"] == "assistant")
    for context, answer in pairs:
        assert context[-1]["role"] == "user" and answer


def test_the_settings_know_every_recipe() -> None:
    from assistant.settings import DEMO_RECIPES

    assert set(DEMO_RECIPES) == set(RECIPES)
