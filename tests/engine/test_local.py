"""The in-process backend on real tiny models: streaming, stopping, 4-bit, adapters, context limits."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from assistant.engine.base import ChatMessage, GenerationParams
from assistant.engine.local import check_adapter_dir
from assistant.errors import InputError, ModelError
from tests.conftest import load_backend

GREEDY = GenerationParams(max_new_tokens=40, temperature=0.0)


def ask(text: str) -> list[ChatMessage]:
    return [ChatMessage("system", "You help Nimbus Home customers."), ChatMessage("user", text)]


def test_reply_streams_token_by_token_with_stats(tiny_backend) -> None:  # noqa: ANN001
    reply = tiny_backend.stream(ask("How do I reset my password?"), GREEDY)
    chunks = list(reply)
    assert len(chunks) > 3
    assert "".join(chunks) == reply.text
    stats = reply.stats
    assert stats is not None
    assert 1 < stats.token_count <= GREEDY.max_new_tokens
    assert stats.ttft_ms is not None and stats.ttft_ms > 0
    assert stats.tokens_per_s is not None and stats.tokens_per_s > 0
    assert stats.finish_reason in {"stop", "length"}


def test_greedy_replies_are_repeatable(tiny_backend) -> None:  # noqa: ANN001
    first = "".join(tiny_backend.stream(ask("Where is my order?"), GREEDY))
    second = "".join(tiny_backend.stream(ask("Where is my order?"), GREEDY))
    assert first == second


def test_identity_names_model_device_and_precision(tiny_backend, tiny_model_dir: Path) -> None:  # noqa: ANN001
    identity = tiny_backend.identity
    assert identity.model == tiny_model_dir.name
    assert identity.adapter is None
    assert identity.device == "cpu"
    assert identity.precision == "fp32"


def test_cancel_stops_a_reply_at_once(chatty_model_dir: Path) -> None:
    backend = load_backend(chatty_model_dir)
    reply = backend.stream(ask("Tell me everything."), GenerationParams(max_new_tokens=4000, temperature=0.0))
    seen = 0
    for _ in reply:
        seen += 1
        if seen == 5:
            reply.cancel()
    assert reply.stats is not None
    assert reply.stats.finish_reason == "cancelled"
    assert reply.stats.token_count < 50
    # The model is free again for the next reply.
    follow_up = backend.stream(ask("hi"), GenerationParams(max_new_tokens=8, temperature=0.0))
    assert len(list(follow_up)) > 0
    assert follow_up.stats.finish_reason == "length"


def test_cancel_from_another_thread(chatty_model_dir: Path) -> None:
    backend = load_backend(chatty_model_dir)
    reply = backend.stream(ask("Tell me everything."), GenerationParams(max_new_tokens=4000, temperature=0.0))
    first = next(iter(reply))
    assert first
    threading.Timer(0.05, reply.cancel).start()
    rest = list(reply)
    assert reply.stats.finish_reason == "cancelled"
    assert reply.stats.token_count < 4000
    assert reply.text.startswith(first) and len(rest) >= 0


def test_replies_are_generated_on_one_thread_that_close_ends(chatty_model_dir: Path) -> None:
    """The first token comes sooner on a thread that has generated before (its OpenMP pool is warm):
    every reply, cancelled ones too, runs on the same generation thread; `close()` ends it."""
    backend = load_backend(chatty_model_dir)
    threads: list[threading.Thread] = []
    for text, cancel in (("hi", False), ("Tell me everything.", True), ("and again", False)):
        cancel_event = threading.Event()
        chunks, _ = backend.generate(ask(text), GenerationParams(max_new_tokens=30, temperature=0.0), cancel_event,
                                     on_start=lambda _: threads.append(threading.current_thread()))
        for _ in chunks:
            if cancel:
                cancel_event.set()
    assert len(threads) == 3 and len(set(threads)) == 1
    assert threads[0] is not threading.current_thread() and threads[0].is_alive()
    backend.close()
    threads[0].join(timeout=5)
    assert not threads[0].is_alive()


def test_cpu_4bit_loading_uses_bitsandbytes(tiny_model_dir: Path) -> None:
    import bitsandbytes as bnb

    backend = load_backend(tiny_model_dir, cpu_load_in_4bit=True)
    assert backend.identity.precision.startswith("4-bit NF4")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in backend.model.modules())
    reply = backend.stream(ask("How do I return a camera?"), GREEDY)
    assert reply.text == "" and len(list(reply)) > 0 and reply.text


def _make_adapter(base_dir: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out


def test_lora_adapter_is_applied_unmerged(tiny_model_dir: Path, tiny_backend, tmp_path: Path) -> None:  # noqa: ANN001
    from peft import PeftModel

    adapter = _make_adapter(tiny_model_dir, tmp_path / "v0001")
    backend = load_backend(tiny_model_dir, adapter=str(adapter))
    assert backend.identity.adapter == "v0001"
    assert isinstance(backend.model, PeftModel)
    assert any("lora_A" in name for name, _ in backend.model.named_parameters())
    ids = torch.tensor([backend.encode(ask("hello"), 8)])
    with torch.no_grad():
        adapted = backend.model(ids).logits
        base = tiny_backend.model(ids).logits
    assert not torch.allclose(adapted, base)


def test_pickled_adapter_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = _make_adapter(tiny_model_dir, tmp_path / "v0002")
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="pickle"):
        load_backend(tiny_model_dir, adapter=str(adapter))


def test_adapter_checks_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        check_adapter_dir(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="adapter_model.safetensors"):
        check_adapter_dir(tmp_path / "empty")


def test_oldest_turns_give_way_when_the_context_is_full(tiny_backend) -> None:  # noqa: ANN001
    long_turn = "word " * 3000
    messages = [
        ChatMessage("system", "sys"),
        ChatMessage("user", long_turn),
        ChatMessage("assistant", "ok"),
        ChatMessage("user", "short question"),
    ]
    ids = tiny_backend.encode(messages, max_new_tokens=384)
    text = tiny_backend.tokenizer.decode(ids)
    assert "short question" in text
    assert long_turn not in text


def test_a_single_message_too_long_for_the_model_is_a_clear_error(tiny_backend) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="too long"):
        tiny_backend.stream(ask("word " * 9000), GREEDY)


@pytest.mark.parametrize("text", ["Refunds take 5-10 days.", "Café crème, naïve façade: €20 😀 done", "日本語のテキスト"])
def test_incremental_decoding_streams_exactly_the_text(tiny_model_dir: Path, text: str) -> None:
    """Token by token, multi-byte characters split across byte-level tokens included."""
    from transformers import AutoTokenizer

    from assistant.engine.local import _Chunks

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    chunks = _Chunks(tokenizer)
    chunks.put(torch.tensor([[1, 2, 3]]))  # the prompt, skipped
    for token in ids:
        chunks.put(torch.tensor([token]))
    chunks.end()
    pieces = list(chunks.iterate())
    assert "".join(piece for piece, _ in pieces) == text
    assert sum(count for _, count in pieces) == len(ids)
    assert not any("\ufffd" in piece for piece, _ in pieces)
