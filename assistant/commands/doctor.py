"""`assistant doctor`: what is configured, what was found, and what to do about anything missing."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import sys
from pathlib import Path

import click

from assistant import __version__
from assistant.commands.common import Context, settings_options
from assistant.errors import AssistantError, StoreError
from assistant.settings import SECTIONS, Settings, field_help, section_of
from assistant.text import one_line, plural


@click.command()
@settings_options
def doctor(state: Context) -> None:
    """Print the configuration, data dir, database, model resolution and hardware."""
    resolved = state.resolved
    settings = resolved.settings
    advice: list[str] = []

    click.echo(f"assistant {__version__} (Python {platform.python_version()}, {sys.platform})")
    _section("Data")
    _row("data dir", f"{settings.data_dir}  ({resolved.sources['data_dir']})")
    writable = _writable(settings.data_dir)
    if not writable:
        advice.append(f"The data dir {settings.data_dir} is not writable: pass --data-dir or set ASSISTANT_DATA_DIR.")
    files = ", ".join(str(p) for p in resolved.config_files) or "none (defaults; see README 'Configuration')"
    _row("config files", files)
    usable = _database(state, settings, advice)

    _section("Settings")
    helps = field_help()
    for section in SECTIONS:
        click.echo(f"  [{section}]")
        for name, source in resolved.sources.items():
            if name == "data_dir" or section_of(name) != section:
                continue
            value = getattr(settings, name)
            shown = one_line(repr(value), 70)
            meaning = zero_means(helps[name]) if value == 0 and not isinstance(value, bool) else None
            click.echo(f"    {name:<29} = {shown}  [{source}]" + (f"  (0: {meaning})" if meaning else ""))
            if state.verbose:
                click.echo(f"    {'':<32}{helps[name]}")

    if not settings.curators:
        advice.append(
            "No curators configured: everyone may review and approve training data. Fine for one user; "
            "for a team, list them in config.toml (curators = [\"maria\", \"tom\"])."
        )

    _section("Model")
    _model(settings, advice)

    _section("Model server")
    _server(state, settings, advice)

    _section("Hardware and libraries")
    _hardware(settings, advice)

    _section("Advice")
    if not advice:
        click.echo("  Nothing to fix.")
    for line in advice:
        click.echo(f"  - {line}")
    if not usable:
        sys.exit(StoreError.exit_code)


def zero_means(help_text: str) -> str | None:
    """What 0 stands for in a setting whose help says so ("...; 0: about ten times per run.")."""
    found = re.search(r"(?:;|\.)\s*0(?::| means)\s*([^.]*(?:\.\d[^.]*)*)", help_text)
    return found.group(1).strip() if found else None


def _section(title: str) -> None:
    click.echo(f"\n{title}")


def _row(label: str, value: str) -> None:
    click.echo(f"  {label:<19} {value}")


def _writable(directory: Path) -> bool:
    probe = directory
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


SQLITE_WAL_FIX = (3, 51, 3)  # fixed a WAL-reset race that could corrupt a database several processes write


def sqlite_too_old(version: tuple[int, int, int]) -> bool:
    return tuple(version) < SQLITE_WAL_FIX


def _database(state: Context, settings: Settings, advice: list[str]) -> bool:
    """The database's state; False when it exists and is unusable (doctor then exits with its code)."""
    import sqlite3

    _row("database", str(settings.db_path) + ("" if settings.db_path.exists() else "  (created on first use)"))
    old = sqlite_too_old(sqlite3.sqlite_version_info)
    _row("SQLite", sqlite3.sqlite_version + ("  (older than 3.51.3: see below)" if old else ""))
    if old:
        advice.append(
            f"SQLite {sqlite3.sqlite_version} is older than 3.51.3, which fixed a bug that can corrupt a WAL database "
            "when several apps write to it at once (as chats on one host do): run assistant with a Python whose "
            "sqlite3 module is 3.51.3 or newer (`python -c 'import sqlite3; print(sqlite3.sqlite_version)'`), "
            "and keep backups (`assistant backup FILE`)"
        )
    if not settings.db_path.exists():
        return True
    try:
        store = state.store()
        counts = store.counts()
        mode = store.journal_mode()
    except AssistantError as exc:
        _row("status", f"unusable: {exc}")
        advice.append(f"Database: {exc}")
        return False
    _row("schema", ", ".join(store.applied_migrations()))
    _row("journal mode", mode)
    _row("contents", ", ".join(f"{n} {name}" for name, n in counts.items()))
    _adapters(store, settings, advice)
    _newest_dataset(store, advice)
    return True


def _newest_dataset(store, advice: list[str]) -> None:  # noqa: ANN001
    """Whether the newest dataset snapshot would teach the model PII placeholders."""
    from assistant.data.builder import placeholder_advice

    newest = next((d for d in store.datasets() if d.erased_at is None), None)
    if newest is None:
        return
    try:
        counts = json.loads((Path(newest.path) / "manifest.json").read_text(encoding="utf-8"))["counts"]
    except (OSError, ValueError, KeyError):
        _row("newest dataset", f"{newest.id} (its manifest cannot be read)")
        return
    found = counts.get("answers_with_placeholders", 0)
    _row("newest dataset", newest.id + (f": {found} training answers with PII placeholders" if found else ""))
    if text := placeholder_advice(counts):
        advice.append(f"Dataset {newest.id}: {text}.")


def _adapters(store, settings: Settings, advice: list[str]) -> None:  # noqa: ANN001
    """The adapter version chats serve, and how the last retrain ended."""
    active = store.active_adapter()
    versions = store.adapters()
    _row("adapter", f"{active.version} active ({plural(len(versions), 'version')})" if active else
         f"none active: the base model answers ({plural(len(versions), 'version')})")
    if active is not None and active.dataset_erased_at:
        advice.append(f"{active.version} was trained on data erased since: run `assistant retrain` to drop it.")
    runs = store.training_runs(limit=1)
    if runs:
        run = runs[0]
        _row("last retrain", f"{run.id} {run.status}" + (f": {one_line(run.error, 100)}" if run.error else ""))
        if run.status == "interrupted":
            advice.append(f"Retrain run {run.id} was interrupted: `assistant retrain --resume` continues it.")


def _model(settings: Settings, advice: list[str]) -> None:
    from assistant.engine.resolve import (
        cached_snapshot,
        fallback_choice,
        hub_reachable,
        is_offline,
        looks_like_path,
    )
    from assistant.demo.build import is_built

    if settings.model:
        if looks_like_path(settings.model):
            path = Path(settings.model).expanduser()
            ok = (path / "config.json").is_file()
            _row("configured", f"{path} ({'a model directory' if ok else 'NOT a model directory'})")
            if not ok:
                advice.append(f"model {path} has no config.json: point `model` at a saved model directory.")
            return
        cached = cached_snapshot(settings.model)
        _row("configured", f"{settings.model} (Hugging Face id)")
        if cached:
            _row("found", f"in the local cache: {cached}")
            return
        reachable = hub_reachable(settings.hub_timeout)
        _row("found", "not cached; " + ("will be downloaded on first use" if reachable else "hub unreachable"))
        if not reachable:
            advice.append(f"{settings.model} is not cached and the hub cannot be reached: copy it here or use a local path.")
        return

    _row("configured", "nothing (model is empty): default hub model, else fallback_model, else the demo model")
    why = "no model configured"
    if settings.hub_model:
        cached = cached_snapshot(settings.hub_model)
        if cached:
            _row("will use", f"{settings.hub_model} from the local cache ({cached})")
            return
        offline = is_offline()
        reachable = hub_reachable(settings.hub_timeout)
        if reachable:
            _row("will use", f"{settings.hub_model}, downloaded on first use")
            return
        unreachable = "HF_HUB_OFFLINE is set" if offline else "hub unreachable"
        _row("hub", f"{settings.hub_model} not cached; {unreachable}")
        why = f"{why}; {settings.hub_model} is not cached and {unreachable}"
    choice = fallback_choice(settings, build=False, why=why)
    if not choice.is_demo:
        from assistant.engine.packaged import SMOLLM2, is_converted

        converted = is_converted(choice.path)
        _row("will use", f"{choice.name} from the package index ({SMOLLM2.package} {SMOLLM2.version})")
        _row("why", choice.why if converted else f"{why}; fallback_model is smollm2")
        _row(
            "fallback model",
            f"{choice.path}" + ("  (converted before)" if converted else "  (fetched and converted on first use, "
            "about a minute; the demo model if the package index does not answer)"),
        )  # fmt: skip
        from assistant.demo.teach import teaches_samples

        learns = teaches_samples(settings, is_fallback=True)
        _row("sample conversations", "learnt by every retrain (sample_training " + settings.sample_training
             + "); the first chat on a data dir with nothing trained starts the first retrain" if learns
             else f"not learnt (sample_training {settings.sample_training})")  # fmt: skip
        advice.append(
            f"Chat uses {choice.name}, a small general model: set `model` (config.toml or ASSISTANT_MODEL) to a "
            "Hugging Face id or a local model directory for a larger one."
        )
        return
    built = is_built(choice.path)
    _row("will use", f"the built-in demo model ({settings.demo_recipe} recipe)")
    _row("why", choice.why)
    _row("demo model", f"{choice.path}" + ("" if built else "  (built on first use, about 3 minutes)"))
    advice.append(
        "Chat uses the demo model, which only knows the sample conversations: set `model` (config.toml or "
        "ASSISTANT_MODEL) to a Hugging Face id or a local model directory for a real one."
    )


def _server(state: Context, settings: Settings, advice: list[str]) -> None:
    """Where chats are answered: the configured model server, checked, or each chat's own process."""
    from assistant.server.environment import has_nvidia_gpu
    from assistant.server.process import precision

    held = precision(settings, has_nvidia_gpu())
    _row("assistant serve", f"serves the base in {held}" + (f" (serve_precision = {settings.serve_precision})" if has_nvidia_gpu() else " (no GPU: the CPU build)"))
    if not settings.server_url:
        _row("server_url", "empty: each chat runs the model in its own process")
        return
    from assistant.engine.remote import ServerAPI, api_key

    _row("server_url", _without_credentials(settings.server_url))
    if settings.server_api_key_env:
        present = api_key(settings) is not None
        _row("API key", f"from ${settings.server_api_key_env}: " + ("set (not shown)" if present else "NOT SET"))
        if not present:
            advice.append(f"server_api_key_env names {settings.server_api_key_env}, which is not set in this environment.")
    api = ServerAPI.from_settings(settings)
    try:
        api.health()
        base = api.base_model(settings.server_model)
    except AssistantError as exc:
        _row("reachable", f"NO: {one_line(str(exc), 120)}")
        advice.append(f"The model server does not answer: {one_line(str(exc), 160)}. Start it with `assistant serve`.")
        api.close()
        return
    try:
        version = api.version()
        _row("reachable", "yes" + (f" (vLLM {version})" if version else " (an OpenAI-compatible server)"))
        _row("base model", base.id + (f"  ({base.root})" if base.root and base.root != base.id else ""))
        _server_adapters(state, api, advice)
    except AssistantError as exc:  # it went away while being asked
        _row("stopped answering", one_line(str(exc), 120))
        advice.append(f"The model server stopped answering: {one_line(str(exc), 160)}.")
    finally:
        api.close()


def _without_credentials(url: str) -> str:
    import re

    return re.sub(r"//[^/@]*@", "//…@", url)


def _server_adapters(state: Context, api, advice: list[str]) -> None:  # noqa: ANN001
    import re

    try:
        metrics = api.metrics()
    except AssistantError:
        metrics = ""
    # Registered when the server has LoRA enabled; its sample (with max_lora) only after a first request.
    lora = re.search(r"^# TYPE vllm:lora_requests_info ", metrics, re.M)
    per_batch = re.search(r'^vllm:lora_requests_info\{[^}]*max_lora="(\d+)"', metrics, re.M)
    _row("LoRA", ("enabled" + (f" ({per_batch.group(1)} adapters per batch)" if per_batch else "")) if lora
         else "NOT enabled (or not a vLLM server)")
    runtime = api.runtime_loading()
    _row("runtime loading", {True: "allowed", False: "NOT allowed", None: "unknown"}[runtime])
    if not lora or runtime is False:
        advice.append("The model server cannot load adapters at runtime: start it with `assistant serve` "
                      "(or vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True).")
    loaded = sorted(m.id for m in api.models() if m.parent is not None)
    _row("loaded adapters", ", ".join(loaded) or "none")
    settings = state.settings
    if not settings.db_path.exists():
        return
    active = state.store().active_adapter()
    if active is None:
        _row("active adapter", "none: chats use the base model")
    elif active.version in loaded:
        _row("active adapter", f"{active.version}: loaded")
    else:
        _row("active adapter", f"{active.version}: NOT loaded (the chats load it with their next reply)")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _hardware(settings: Settings, advice: list[str]) -> None:
    import torch

    cuda = torch.cuda.is_available()
    _row("device setting", settings.device)
    if cuda:
        name = torch.cuda.get_device_name(0)
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        _row("CUDA", f"available: {name}, {memory:.0f} GiB (CUDA {torch.version.cuda})")
    else:
        _row("CUDA", "not available: models run on the CPU")
        if settings.device == "cuda":
            advice.append("device = cuda but no CUDA GPU is visible: set device = \"auto\" or \"cpu\".")
    _row("CPU threads", str(torch.get_num_threads()))
    bnb = _version("bitsandbytes")
    if bnb == "not installed":
        _row("bitsandbytes", "not installed: 4-bit loading unavailable")
        advice.append("Install bitsandbytes (pip install bitsandbytes) for 4-bit models and QLoRA training.")
    else:
        where = "CUDA and CPU" if cuda else "CPU (set cpu_load_in_4bit = true to use it)"
        _row("bitsandbytes", f"{bnb}: 4-bit NF4 available on {where}")
    for package in ("torch", "transformers", "peft", "trl", "datasets", "textual", "sqlite-utils"):
        _row(package, _version(package))
