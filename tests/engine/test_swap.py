"""Hot-swapping LoRA adapters between replies, on the tiny model with two real trained adapters.

A swap changes who answers the next reply, never the one being generated; a version that cannot be
served is refused and the one serving keeps answering; memory stays flat over many swaps.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import shutil
import threading
from pathlib import Path

import pytest

from assistant.adapters.registry import WEIGHTS, checksums
from assistant.engine.base import ChatMessage, GenerationParams
from assistant.errors import ModelError
from tests.conftest import load_backend
from tests.conftest import SYSTEM, TAUGHT, THERMOSTAT

GREEDY = GenerationParams(max_new_tokens=64, temperature=0.0)


def ask(text: str = THERMOSTAT) -> list[ChatMessage]:
    return [ChatMessage("system", SYSTEM), ChatMessage("user", text)]


def answer(backend):  # noqa: ANN001, ANN201
    """The greedy reply to THERMOSTAT, read to its end."""
    reply = backend.stream(ask(), GREEDY)
    list(reply)
    return reply


@pytest.fixture(scope="module")
def expected(tiny_model_dir: Path, adapters: dict[str, Path]) -> dict[str | None, str]:
    """Each version's greedy answer from a model loaded with it (no swap involved); None: the base model."""
    answers = {None: answer(load_backend(tiny_model_dir, device="cpu")).text}
    for version, path in adapters.items():
        answers[version] = answer(load_backend(tiny_model_dir, device="cpu", adapter=str(path))).text
    return answers


def lora_parameters(model) -> int:  # noqa: ANN001
    return sum(p.numel() for name, p in model.named_parameters() if ".lora_" in name)


def test_the_adapters_answer_what_they_were_taught(expected: dict[str | None, str]) -> None:
    for version, taught in TAUGHT.items():
        assert expected[version].startswith(taught[:20]), (version, expected[version])
    assert len(set(expected.values())) == 3


def test_swaps_change_the_next_answer_and_none_serves_the_base_model(
    tiny_model_dir: Path, adapters: dict[str, Path], expected: dict[str | None, str]
) -> None:
    from peft import PeftModel

    backend = load_backend(tiny_model_dir, device="cpu")
    assert answer(backend).identity.adapter is None
    for version in ("v0001", "v0002", None, "v0001", "v0001", None, None, "v0002"):
        identity = backend.swap_adapter(version, adapters.get(version))
        assert identity.adapter == backend.identity.adapter == version
        assert identity.model == tiny_model_dir.name
        reply = answer(backend)
        assert reply.text == expected[version], version
        assert reply.identity == identity
        assert isinstance(backend.model, PeftModel) and len(backend.model.peft_config) == 1
    assert backend.identity.label == f"{tiny_model_dir.name} + v0002"


def test_an_adapter_loaded_at_start_is_swapped_out(
    tiny_model_dir: Path, adapters: dict[str, Path], expected: dict[str | None, str]
) -> None:
    backend = load_backend(tiny_model_dir, device="cpu", adapter=str(adapters["v0001"]))
    assert backend.identity.adapter == "v0001"
    backend.swap_adapter("v0002", adapters["v0002"])
    assert list(backend.model.peft_config) == ["v0002"]
    assert answer(backend).text == expected["v0002"]
    backend.swap_adapter("v0001", adapters["v0001"])
    assert list(backend.model.peft_config) == ["v0001"]
    assert answer(backend).text == expected["v0001"]


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    for file in target.iterdir():
        file.chmod(0o644)
    return target


def _reseal(directory: Path) -> None:
    """Rewrite meta.json's checksums to match the files as they are now: damage the checksums cannot see."""
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    meta["files"] = checksums(directory)
    (directory / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def _rewrite_weights(directory: Path, change) -> None:  # noqa: ANN001
    from safetensors.torch import load_file, save_file

    save_file(change(load_file(directory / WEIGHTS)), directory / WEIGHTS)
    _reseal(directory)


def _damage(kind: str, source: Path, target: Path) -> Path:
    import torch

    directory = _copy(source, target)
    weights = directory / WEIGHTS
    if kind == "flipped":
        data = bytearray(weights.read_bytes())
        data[-64:] = bytes(b ^ 0xFF for b in data[-64:])
        weights.write_bytes(bytes(data))
    elif kind == "pickle":
        (directory / "adapter_model.bin").write_bytes(b"\x80\x04pickled")
    elif kind == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        _reseal(directory)
    elif kind == "missing":
        _rewrite_weights(directory, lambda tensors: {k: v for k, v in tensors.items() if ".layers.1.mlp." not in k})
    elif kind == "misnamed":
        _rewrite_weights(directory, lambda tensors: {k.replace("q_proj", "qq_proj"): v for k, v in tensors.items()})
    elif kind == "nan":
        _rewrite_weights(
            directory,
            lambda tensors: {k: torch.full_like(v, float("nan")) if "lora_B" in k else v for k, v in tensors.items()},
        )
    return directory


DAMAGE = {
    "flipped": "does not match its checksum",
    "pickle": "pickle file",
    "truncated": "unreadable",
    "missing": "does not fit the model",
    "misnamed": "were not loaded as saved",
    "nan": "NaN or infinite",
}


REFUSED_BEFORE_LOADING = ["flipped", "pickle", "truncated"]
REFUSED_AFTER_LOADING = ["missing", "misnamed", "nan"]


@pytest.mark.filterwarnings("ignore:Found missing adapter keys")
@pytest.mark.parametrize(
    ("kind", "serving"),
    [(kind, "v0001") for kind in REFUSED_BEFORE_LOADING]
    + [(kind, serving) for kind in REFUSED_AFTER_LOADING for serving in ("v0001", "base", "rolled back")],
)
def test_a_damaged_adapter_is_refused_and_the_old_one_keeps_answering(
    kind: str,
    serving: str,
    tiny_model_dir: Path,
    adapters: dict[str, Path],
    expected: dict[str | None, str],
    tmp_path: Path,
) -> None:
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    backend = load_backend(tiny_model_dir, device="cpu")
    if serving != "base":
        backend.swap_adapter("v0001", adapters["v0001"])
    if serving == "rolled back":
        backend.swap_adapter(None, None)
    before = backend.identity
    damaged = _damage(kind, adapters["v0002"], tmp_path / "v0009")
    with pytest.raises(ModelError, match=DAMAGE[kind]) as refused:
        backend.swap_adapter("v0009", damaged)
    assert "\n" not in str(refused.value)
    assert backend.identity == before
    assert answer(backend).text == expected[before.adapter]
    if serving == "base":
        assert not isinstance(backend.model, PeftModel)
        assert not any(isinstance(m, BaseTunerLayer) for m in backend.model.modules())
    else:
        assert list(backend.model.peft_config) == ["v0001"]
    backend.swap_adapter("v0002", adapters["v0002"])  # and a good version is still taken
    assert answer(backend).text == expected["v0002"]


def _rss_bytes() -> int:
    statm = Path("/proc/self/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_fifty_swaps_while_replies_stream_never_change_a_reply_midway(
    tiny_model_dir: Path, adapters: dict[str, Path], expected: dict[str | None, str]
) -> None:
    backend = load_backend(tiny_model_dir, device="cpu")
    backend.swap_adapter("v0001", adapters["v0001"])
    parameters, loaded = sum(p.numel() for p in backend.model.parameters()), len(backend.model.peft_config)
    adapter_parameters = lora_parameters(backend.model)
    replies, failures = [], []
    done = threading.Event()

    def chat() -> None:
        try:
            while not done.is_set():
                replies.append(answer(backend))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    chatting = threading.Thread(target=chat, name="chat")
    chatting.start()
    try:
        for number in range(50):
            version = ("v0002", "v0001")[number % 2]
            assert backend.swap_adapter(version, adapters[version]).adapter == version
            if number == 9:
                gc.collect()
                rss_after_ten = _rss_bytes()
    finally:
        done.set()
        chatting.join()
    assert not failures
    assert {reply.identity.adapter for reply in replies} == {"v0001", "v0002"}
    for reply in replies:
        assert reply.text == expected[reply.identity.adapter]
    assert sum(p.numel() for p in backend.model.parameters()) == parameters
    assert len(backend.model.peft_config) == loaded == 1
    assert lora_parameters(backend.model) == adapter_parameters
    gc.collect()
    assert _rss_bytes() - rss_after_ten < 50 * 2**20


def test_the_worker_process_swaps_between_replies(
    tiny_model_dir: Path, adapters: dict[str, Path], expected: dict[str | None, str], tmp_path: Path
) -> None:
    from assistant.engine.worker import ProcessBackend
    from assistant.settings import load_settings

    settings = load_settings(
        data_dir=tmp_path, environ={}, overrides={"model": str(tiny_model_dir), "device": "cpu"}
    ).settings
    backend = ProcessBackend.start(settings)
    try:
        assert backend.swap_adapter("v0001", adapters["v0001"]).adapter == "v0001"
        reply = answer(backend)
        assert reply.text == expected["v0001"] and reply.identity.adapter == "v0001"

        with pytest.raises(ModelError, match="pickle"):
            backend.swap_adapter("v0009", _damage("pickle", adapters["v0002"], tmp_path / "v0009"))
        assert backend.identity.adapter == "v0001"

        # A swap asked for while a reply is open waits for its end; the reply keeps its adapter.
        open_reply = backend.stream(ask(), GREEDY)
        chunks = iter(open_reply)
        next(chunks)
        swapped = []
        swapping = threading.Thread(target=lambda: swapped.append(backend.swap_adapter("v0002", adapters["v0002"])))
        swapping.start()
        swapping.join(0.5)
        assert swapping.is_alive() and not swapped
        list(chunks)
        swapping.join(30)
        assert swapped and swapped[0].adapter == "v0002"
        assert open_reply.text == expected["v0001"] and open_reply.identity.adapter == "v0001"
        reply = answer(backend)
        assert reply.text == expected["v0002"] and reply.identity.adapter == "v0002"

        assert backend.swap_adapter(None, None).adapter is None
        reply = answer(backend)
        assert reply.text == expected[None] and reply.identity.adapter is None
    finally:
        backend.close()
