"""Two versions on one base model, for blind A/B replies: the second version loaded beside the one
serving (`load_alternate`) answers the replies asked with `alternate=True`, and nothing else changes.

On the tiny model with the two real trained adapters, in process and in the chat's worker process.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.engine.base import ChatMessage, GenerationParams
from assistant.errors import ModelError
from tests.conftest import SYSTEM, THERMOSTAT, load_backend

GREEDY = GenerationParams(max_new_tokens=48, temperature=0.0)
ASK = [ChatMessage("system", SYSTEM), ChatMessage("user", THERMOSTAT)]


def answer(backend, alternate: bool = False):  # noqa: ANN001, ANN201
    reply = backend.stream(ASK, GREEDY, alternate=alternate)
    list(reply)
    return reply


def base_parameters(model) -> int:  # noqa: ANN001
    return sum(p.numel() for name, p in model.named_parameters() if ".lora_" not in name)


@pytest.fixture(scope="module")
def expected(tiny_model_dir: Path, adapters: dict[str, Path]) -> dict[str | None, str]:
    """Each version's greedy answer from a model loaded with it alone; None: the base model."""
    answers = {None: answer(load_backend(tiny_model_dir, device="cpu")).text}
    for version, path in adapters.items():
        answers[version] = answer(load_backend(tiny_model_dir, device="cpu", adapter=str(path))).text
    assert len(set(answers.values())) == 3  # the three can be told apart by their answers
    return answers


def test_the_second_version_answers_alternate_replies_beside_the_one_serving(
    tiny_model_dir: Path, adapters: dict[str, Path], expected: dict[str | None, str]
) -> None:
    backend = load_backend(tiny_model_dir, device="cpu")
    backend.swap_adapter("v0001", adapters["v0001"])
    weights = base_parameters(backend.model)
    assert backend.alternate is None

    loaded = backend.load_alternate("v0002", adapters["v0002"])
    assert loaded is not None and loaded == backend.alternate
    assert loaded.adapter == "v0002" and loaded.model == tiny_model_dir.name
    assert backend.identity.adapter == "v0001"  # what serves did not change
    assert base_parameters(backend.model) == weights  # one base model: no second copy
    # In any order, each reply is its own version's, and says so.
    for alternate in (True, False, False, True, True, False):
        reply = answer(backend, alternate=alternate)
        version = "v0002" if alternate else "v0001"
        assert reply.text == expected[version], (alternate, reply.text)
        assert reply.identity.adapter == version
    # Loading it again is a no-op; unloading leaves the one serving alone.
    assert backend.load_alternate("v0002", adapters["v0002"]) == loaded
    assert backend.load_alternate(None, None) is None and backend.alternate is None
    assert list(backend.model.peft_config) == ["v0001"]
    assert answer(backend).text == expected["v0001"]
    with pytest.raises(ModelError, match="no second version"):
        backend.stream(ASK, GREEDY, alternate=True)


def test_beside_the_bare_base_model_and_unloaded_back_to_it(
    tiny_model_dir: Path, adapters: dict[str, Path], expected: dict[str | None, str]
) -> None:
    from peft import PeftModel

    backend = load_backend(tiny_model_dir, device="cpu")
    backend.load_alternate("v0001", adapters["v0001"])
    assert backend.identity.adapter is None
    assert answer(backend).text == expected[None]
    assert answer(backend, alternate=True).text == expected["v0001"]
    assert answer(backend).text == expected[None]
    backend.load_alternate(None, None)
    assert not isinstance(backend.model, PeftModel)  # the adapter layers are gone with it
    assert answer(backend).text == expected[None]


def test_the_candidate_promoted_is_served_without_loading_it_again(
    tiny_model_dir: Path, adapters: dict[str, Path], expected: dict[str | None, str]
) -> None:
    backend = load_backend(tiny_model_dir, device="cpu")
    backend.swap_adapter("v0001", adapters["v0001"])
    backend.load_alternate("v0002", adapters["v0002"])
    identity = backend.swap_adapter("v0002", adapters["v0002"])
    assert identity.adapter == "v0002" and backend.alternate is None
    assert list(backend.model.peft_config) == ["v0002"]
    assert answer(backend).text == expected["v0002"]
    # The old active version can be the second one now.
    backend.load_alternate("v0001", adapters["v0001"])
    assert answer(backend, alternate=True).text == expected["v0001"]
    assert answer(backend).text == expected["v0002"]
    # Serving the base model keeps the second version answering.
    backend.swap_adapter(None, None)
    assert answer(backend).text == expected[None]
    assert answer(backend, alternate=True).text == expected["v0001"]


def test_a_damaged_second_version_is_refused_and_nothing_changes(
    tiny_model_dir: Path, adapters: dict[str, Path], expected: dict[str | None, str], tmp_path: Path
) -> None:
    backend = load_backend(tiny_model_dir, device="cpu")
    backend.swap_adapter("v0001", adapters["v0001"])
    damaged = shutil.copytree(adapters["v0002"], tmp_path / "v0003")
    weights = damaged / "adapter_model.safetensors"
    weights.chmod(0o644)
    weights.write_bytes(weights.read_bytes()[:-64])  # cut short: its checksum no longer matches
    with pytest.raises(ModelError):
        backend.load_alternate("v0003", damaged)
    assert backend.alternate is None and list(backend.model.peft_config) == ["v0001"]
    assert answer(backend).text == expected["v0001"]
    with pytest.raises(ModelError, match="serving"):
        backend.load_alternate("v0001", adapters["v0001"])  # the version serving cannot answer beside itself


def test_the_chats_worker_process_answers_with_both(
    tiny_model_dir: Path, adapters: dict[str, Path], expected: dict[str | None, str], tmp_path: Path
) -> None:
    from assistant.engine.worker import ProcessBackend
    from assistant.settings import load_settings

    settings = load_settings(data_dir=tmp_path, environ={}, overrides={"model": str(tiny_model_dir)}).settings
    backend = ProcessBackend.start(settings)
    try:
        backend.swap_adapter("v0001", adapters["v0001"])
        assert backend.load_alternate("v0002", adapters["v0002"]).adapter == "v0002"
        assert backend.alternate.adapter == "v0002"
        for alternate, version in ((True, "v0002"), (False, "v0001")):
            reply = answer(backend, alternate=alternate)
            assert (reply.text, reply.identity.adapter) == (expected[version], version)
        # Refusals come back as errors and leave it as it was.
        with pytest.raises(ModelError):
            backend.load_alternate("v0009", tmp_path / "missing")
        assert answer(backend, alternate=True).text == expected["v0002"]
        backend.swap_adapter("v0002", adapters["v0002"])  # promoted: served, no longer the second version
        assert backend.alternate is None
        assert answer(backend).text == expected["v0002"]
    finally:
        backend.close()
