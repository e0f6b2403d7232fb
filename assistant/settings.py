"""One settings object, resolved once and passed in: defaults < config TOML < ASSISTANT_* env < flags.

The data dir is resolved first (flag, ASSISTANT_DATA_DIR, ./conversations when it exists, else
the user data dir), because one of the config files lives in it. Config files, lowest first:
the user config dir's `config.toml`, then the data dir's `config.toml`; ASSISTANT_CONFIG (or
`--config`) names one file that replaces both.

This module must not import torch, transformers or textual.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import platformdirs

from assistant.errors import ConfigError
from assistant.text import is_utf8

APP_NAME = "assistant"
ENV_PREFIX = "ASSISTANT_"
CONFIG_FILENAME = "config.toml"
DEFAULT_HUB_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
DEFAULT_SYSTEM_PROMPT = (
    "You are the support assistant of Nimbus Home, a shop for smart-home devices "
    "(thermostat, cameras, hub, smart plugs, doorbell) and the Nimbus Plus subscription. "
    "Answer customers' questions about accounts, billing, shipping, returns and "
    "troubleshooting accurately, briefly and kindly."
)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class Settings:
    """Everything the commands and the app need to know. Field names are the config keys."""

    data_dir: Path = field(metadata=_help("Where the database, models, adapters and datasets live."))
    model: str = field(
        default="",
        metadata=_help(
            "Base model: a Hugging Face id or a local directory. Empty: the default hub model "
            "when cached or downloadable, else the built-in demo model."
        ),
    )
    hub_model: str = field(
        default=DEFAULT_HUB_MODEL,
        metadata=_help("The default small instruct model tried when `model` is empty; empty disables it."),
    )
    adapter: str = field(
        default="",
        metadata=_help("A LoRA adapter directory (adapter_model.safetensors) applied unmerged; empty: none."),
    )
    device: str = field(default="auto", metadata=_help("auto, cpu or cuda."))
    cpu_load_in_4bit: bool = field(
        default=False,
        metadata=_help("On CPU, load the base model in 4-bit NF4 (bitsandbytes) instead of full precision."),
    )
    system_prompt: str = field(
        default=DEFAULT_SYSTEM_PROMPT,
        metadata=_help("The assistant's domain profile, sent as the system message of new conversations."),
    )
    max_new_tokens: int = field(default=384, metadata=_help("Longest reply, in tokens."))
    temperature: float = field(default=0.3, metadata=_help("Sampling temperature; 0 means greedy."))
    top_p: float = field(default=0.9, metadata=_help("Nucleus sampling threshold."))
    repetition_penalty: float = field(default=1.0, metadata=_help("1.0 disables it."))
    user: str = field(default="", metadata=_help("Who is chatting; default: the OS login name."))
    max_message_chars: int = field(
        default=100_000,
        metadata=_help("Longest message, in characters, that a chat, `assistant ask` or `assistant import` accepts."),
    )
    max_conversation_messages: int = field(
        default=50_000,
        metadata=_help("Most messages in one conversation: a chat asks for a new one beyond it; import refuses it."),
    )
    import_max_bytes: int = field(
        default=256 * 1024 * 1024, metadata=_help("Largest file `assistant import` reads, in bytes.")
    )
    hub_timeout: float = field(
        default=3.0, metadata=_help("Seconds to wait for the model hub before falling back to the demo model.")
    )
    demo_seed: int = field(default=0, metadata=_help("Seed of the built-in demo model's build."))
    demo_recipe: str = field(
        default="demo", metadata=_help("Size of the built-in demo model: demo, or tiny (seconds to build; for tests).")
    )
    curators: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "Who may review, approve, reject and correct rated replies (login names; a TOML list, or "
            "comma-separated in ASSISTANT_CURATORS). Empty: everyone may curate."
        ),
    )
    allow_user_override: bool = field(
        default=False,
        metadata=_help(
            "With `curators` set, let `--user`, ASSISTANT_USER or a config file's `user` name someone other "
            "than the OS login for curating, erasing and promoting (read only from the data dir's config.toml)."
        ),
    )
    train_on_unreviewed_thumbs_up: bool = field(
        default=False,
        metadata=_help("Train on thumbs-up replies no curator has reviewed yet (default: only approved ones)."),
    )
    eval_fraction: float = field(
        default=0.1, metadata=_help("Share of conversations held out for evaluation (split by conversation).")
    )
    min_eval_examples: int = field(
        default=8, metadata=_help("Smallest evaluation split, when the data allows (at most half the examples).")
    )
    max_length: int = field(
        default=2048,
        metadata=_help("Longest training example in tokens of the model's tokenizer; longer ones are dropped."),
    )
    max_truncated_fraction: float = field(
        default=0.05,
        metadata=_help(
            "`dataset build` fails when more than this share of examples is longer than max_length (and more "
            "than one: a single one is dropped, and named in the output and the manifest)."
        ),
    )
    pii_patterns: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata=_help(
            "Extra PII to scrub, NAME = regex (a TOML table, or a JSON object in ASSISTANT_PII_PATTERNS); "
            "matches become <NAME_1>, <NAME_2>, ..."
        ),
    )

    # -- the model server: a team's chats served by one OpenAI-compatible server (vLLM) ----
    server_url: str = field(
        default="",
        metadata=_help(
            "The OpenAI-compatible base URL of the model server that answers every chat, such as "
            "http://127.0.0.1:8000/v1 (`assistant serve` starts one). Empty: the model runs in-process."
        ),
    )
    server_model: str = field(
        default="", metadata=_help("The base model's name on the server; empty: the one the server names.")
    )
    server_api_key_env: str = field(
        default="",
        metadata=_help(
            "The name of the environment variable that holds the server's API key (the key itself is never "
            "stored, logged or shown); empty: no key."
        ),
    )
    server_timeout: float = field(
        default=30.0,
        metadata=_help("Seconds to wait for the model server: to answer a request, and between two pieces of a reply."),
    )
    server_adapters_dir: str = field(
        default="",
        metadata=_help(
            "Where the model server reads the data dir's adapters/ when it runs on another host (a shared "
            "mount); empty: the same path as here."
        ),
    )
    serve_precision: str = field(
        default="auto",
        metadata=_help(
            "How `assistant serve` holds the base model on CUDA: 4bit (bitsandbytes NF4, as it was trained), "
            "bf16, or auto (4bit). Without a GPU it serves in fp32."
        ),
    )

    # -- retrain: the names follow peft and TRL --------------------------------------------
    lora_r: int = field(default=16, metadata=_help("LoRA rank."))
    lora_alpha: int = field(default=32, metadata=_help("LoRA alpha (scaling = alpha / r)."))
    lora_dropout: float = field(default=0.05, metadata=_help("Dropout on the LoRA path while training."))
    lora_target_modules: tuple[str, ...] = field(
        default=("all-linear",),
        metadata=_help("Modules that get LoRA weights: all-linear, or names such as q_proj, v_proj (a TOML list)."),
    )
    learning_rate: float = field(
        default=0.0, metadata=_help("Peak learning rate; 0: 2e-4, or 1e-2 for the built-in demo model.")
    )
    lr_scheduler_type: str = field(default="cosine", metadata=_help("Learning-rate schedule: cosine, linear, constant_with_warmup, ..."))
    warmup_ratio: float = field(default=0.05, metadata=_help("Share of the steps spent warming the learning rate up."))
    epochs: float = field(default=0.0, metadata=_help("Passes over the training set; 0: 3, or 30 for the demo model."))
    max_steps: int = field(default=0, metadata=_help("Stop after this many optimiser steps; 0: no limit but epochs."))
    batch_size: int = field(default=4, metadata=_help("Examples per device per step."))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("Steps whose gradients add up per update."))
    eval_steps: int = field(
        default=0, metadata=_help("Evaluate and checkpoint every this many steps; 0: about ten times per run.")
    )
    early_stopping_patience: int = field(
        default=3, metadata=_help("Stop after this many evaluations without a better eval loss; 0: never (the demo model never does).")
    )
    train_seed: int = field(default=0, metadata=_help("Seed of retrain (initialisation, shuffling, dropout)."))
    gate_margin: float = field(
        default=0.01,
        metadata=_help("A candidate is promoted only if its eval loss beats the active adapter's by this much."),
    )
    gate_regression_tolerance: float = field(
        default=0.02,
        metadata=_help("Largest allowed rise (a fraction) of the loss on earlier snapshots' eval examples."),
    )
    gate_max_examples: int = field(default=200, metadata=_help("Most examples of each eval set the gate scores."))
    probe_prompts: tuple[str, ...] = field(
        default=(),
        metadata=_help("Questions every version answers (greedy) in its eval report (a TOML list); empty: a few eval questions."),
    )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "assistant.db"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "assistant.log"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Resolved:
    """The settings and, for `assistant doctor`, where each value came from."""

    settings: Settings
    sources: dict[str, str]
    config_files: tuple[Path, ...]


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_TYPES = get_type_hints(Settings)
_CONFIGURABLE = [name for name in _FIELDS if name != "data_dir"]


def field_help() -> dict[str, str]:
    return {name: f.metadata["help"] for name, f in _FIELDS.items()}


def default_data_dir(cwd: Path | None = None) -> Path:
    local = (cwd or Path.cwd()) / "conversations"
    if local.is_dir():
        return local
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / CONFIG_FILENAME


def _coerce(name: str, value: Any, origin: str) -> Any:
    kind = _TYPES[name]
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, (bool, float)):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError(value)
            return str(value)
        if kind == tuple[str, ...]:
            return _coerce_names(value)
        if kind == tuple[tuple[str, str], ...]:
            return _coerce_patterns(value)
    except (TypeError, ValueError):  # json.JSONDecodeError is a ValueError
        raise ConfigError(f"{origin}: {name} must be {_kind_name(kind)}, got {value!r}") from None
    raise AssertionError(f"unhandled settings type {kind}")


def _kind_name(kind: Any) -> str:
    if kind == tuple[str, ...]:
        return "a list of names"
    if kind == tuple[tuple[str, str], ...]:
        return "a table of NAME = regex"
    return kind.__name__


def _coerce_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ValueError(value)
    return tuple(dict.fromkeys(item.strip() for item in value if item.strip()))


def _coerce_patterns(value: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if isinstance(value, (list, tuple)):  # already coerced (a Settings value passed back in)
        value = dict(value)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(value)
    return tuple(sorted((str(name), regex) for name, regex in value.items()))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_CONFIGURABLE))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting {unknown[0]!r}",
            hint="see `assistant doctor` for the valid names",
        )
    return data


DEMO_RECIPES = ("demo", "tiny")
SERVE_PRECISIONS = ("auto", "4bit", "bf16")


def _validate(settings: Settings) -> None:
    for name, kind in _TYPES.items():
        if kind is float and not math.isfinite(getattr(settings, name)):
            raise ConfigError(f"{name} must be a finite number, got {getattr(settings, name)}")
    if settings.demo_recipe not in DEMO_RECIPES:
        raise ConfigError(f"demo_recipe must be one of {', '.join(DEMO_RECIPES)}, got {settings.demo_recipe!r}")
    if settings.device not in {"auto", "cpu", "cuda"}:
        raise ConfigError(f"device must be auto, cpu or cuda, got {settings.device!r}")
    if settings.server_url and not re.match(r"https?://[^/\s]+", settings.server_url):
        raise ConfigError(f"server_url must be an http:// or https:// URL, got {settings.server_url!r}")
    if settings.server_api_key_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", settings.server_api_key_env):
        raise ConfigError(
            f"server_api_key_env must name an environment variable (such as VLLM_API_KEY), got {settings.server_api_key_env!r}"
        )
    if settings.server_timeout <= 0:
        raise ConfigError("server_timeout must be positive")
    if settings.serve_precision not in SERVE_PRECISIONS:
        raise ConfigError(f"serve_precision must be one of {', '.join(SERVE_PRECISIONS)}, got {settings.serve_precision!r}")
    if settings.max_new_tokens < 1:
        raise ConfigError("max_new_tokens must be at least 1")
    if settings.temperature < 0:
        raise ConfigError("temperature must be 0 or more")
    if not 0 < settings.top_p <= 1:
        raise ConfigError("top_p must be in (0, 1]")
    if settings.repetition_penalty <= 0:
        raise ConfigError("repetition_penalty must be positive")
    if not settings.user.strip():
        raise ConfigError("user must not be empty")
    if not 0 <= settings.eval_fraction < 1:
        raise ConfigError("eval_fraction must be in [0, 1)")
    if settings.min_eval_examples < 0:
        raise ConfigError("min_eval_examples must be 0 or more")
    if settings.max_length < 16:
        raise ConfigError("max_length must be at least 16")
    if not 0 <= settings.max_truncated_fraction <= 1:
        raise ConfigError("max_truncated_fraction must be in [0, 1]")
    positive = ("lora_r", "lora_alpha", "batch_size", "gradient_accumulation_steps", "gate_max_examples",
                "max_message_chars", "max_conversation_messages", "import_max_bytes")
    for name in positive:
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name} must be at least 1")
    for name in ("learning_rate", "epochs", "max_steps", "eval_steps", "early_stopping_patience", "gate_margin",
                 "gate_regression_tolerance"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name} must be 0 or more")
    if not 0 <= settings.lora_dropout < 1 or not 0 <= settings.warmup_ratio < 1:
        raise ConfigError("lora_dropout and warmup_ratio must be in [0, 1)")
    if not settings.lora_target_modules:
        raise ConfigError("lora_target_modules must name at least one module (or all-linear)")
    for name, regex in settings.pii_patterns:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            raise ConfigError(f"pii_patterns: {name!r} must be an upper-case name such as ORDER_ID")
        try:
            re.compile(regex)
        except re.error as exc:
            raise ConfigError(f"pii_patterns: {name} is not a valid regex: {exc}") from None


# Settings that widen who may do what: only the data dir's config.toml (the admin's file) sets them,
# never the user config dir's file, ASSISTANT_CONFIG, the environment or a flag.
ADMIN_ONLY = frozenset({"allow_user_override"})


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"


def login_name() -> str:
    """The OS account running this process, by its uid (LOGNAME and USER can say anything): who
    curates when `curators` is set."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, OSError):
        pass
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"


def load_settings(
    *,
    data_dir: Path | str | None = None,
    config_file: Path | str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Resolved:
    """Resolve the settings. `overrides` are command-line flags (None values are ignored)."""
    env = os.environ if environ is None else environ
    sources: dict[str, str] = {}

    if data_dir is not None:
        resolved_dir, sources["data_dir"] = Path(data_dir), "flag --data-dir"
    elif env.get(ENV_PREFIX + "DATA_DIR"):
        resolved_dir, sources["data_dir"] = Path(env[ENV_PREFIX + "DATA_DIR"]), "env ASSISTANT_DATA_DIR"
    else:
        resolved_dir = default_data_dir(cwd)
        sources["data_dir"] = "./conversations" if resolved_dir.name == "conversations" else "user data dir"
    resolved_dir = resolved_dir.expanduser().resolve()

    values: dict[str, Any] = {"user": _login_name()}
    sources.update({name: "default" for name in _CONFIGURABLE})
    sources["user"] = "OS login name"

    explicit = config_file or env.get(ENV_PREFIX + "CONFIG")
    if explicit:
        files = [Path(explicit).expanduser()]
        if not files[0].is_file():
            raise ConfigError(f"config file not found: {files[0]}")
    else:
        files = [p for p in (user_config_file(), resolved_dir / CONFIG_FILENAME) if p.is_file()]
    for path in files:
        for name, value in _read_toml(path).items():
            if name in ADMIN_ONLY and path != resolved_dir / CONFIG_FILENAME:
                raise ConfigError(f"config file {path}: {name} is read only from the data dir's {CONFIG_FILENAME}")
            values[name] = _coerce(name, value, str(path))
            sources[name] = f"file {path}"

    for name in _CONFIGURABLE:
        key = ENV_PREFIX + name.upper()
        if key in env and name in ADMIN_ONLY:
            raise ConfigError(f"env {key}: {name} is read only from the data dir's {CONFIG_FILENAME}")
        if key in env:
            if not is_utf8(env[key]):
                raise ConfigError(f"env {key} is not valid UTF-8 text")
            values[name] = _coerce(name, env[key], f"env {key}")
            sources[name] = f"env {key}"

    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in _CONFIGURABLE or name in ADMIN_ONLY:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = _coerce(name, value, f"flag --{name.replace('_', '-')}")
        sources[name] = f"flag --{name.replace('_', '-')}"

    settings = Settings(data_dir=resolved_dir, **values)
    _validate(settings)
    return Resolved(settings=settings, sources=sources, config_files=tuple(files))
