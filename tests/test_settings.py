"""Settings resolution: defaults < user config < data-dir config < ASSISTANT_* env < flags.

Every test passes an explicit `environ` and points the user config file at a temporary path, so
neither the real environment nor the real user config is ever read.
"""

from __future__ import annotations

import dataclasses
import getpass
import re
from pathlib import Path

import platformdirs
import pytest

import assistant.settings as settings_module
from assistant.errors import ConfigError
from assistant.settings import Settings, field_help, load_settings


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user config file, redirected to a temporary place (not created)."""
    path = tmp_path / "user-config" / "config.toml"
    monkeypatch.setattr(settings_module, "user_config_file", lambda: path)
    return path


@pytest.fixture(autouse=True)
def user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The platform's user data dir, redirected to a temporary place (not created)."""
    path = tmp_path / "user-data" / "assistant"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *args, **kwargs: str(path))
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(data_dir: Path, **kwargs):  # noqa: ANN003, ANN201
    kwargs.setdefault("environ", {})
    return load_settings(data_dir=data_dir, **kwargs)


# --- precedence -------------------------------------------------------------------------------


def test_defaults_when_nothing_is_configured(data_dir: Path) -> None:
    resolved = load(data_dir)
    defaults = {f.name: f.default for f in dataclasses.fields(Settings) if f.name not in {"data_dir", "user"}}
    for name, value in defaults.items():
        assert getattr(resolved.settings, name) == value, name
        assert resolved.sources[name] == "default", name
    assert resolved.config_files == ()


def test_each_layer_beats_the_one_below_and_is_named_in_sources(data_dir: Path, user_config: Path) -> None:
    write(
        user_config,
        'model = "from-user-file"\ndevice = "cpu"\ntemperature = 0.1\ntop_p = 0.5\nmax_new_tokens = 10\n',
    )
    data_config = write(data_dir / "config.toml", "temperature = 0.2\ntop_p = 0.6\nmax_new_tokens = 20\n")
    environ = {"ASSISTANT_TOP_P": "0.7", "ASSISTANT_MAX_NEW_TOKENS": "30"}

    resolved = load(data_dir, environ=environ, overrides={"max_new_tokens": 40})
    s = resolved.settings

    assert (s.model, s.device) == ("from-user-file", "cpu")
    assert resolved.sources["model"] == resolved.sources["device"] == f"file {user_config}"
    assert s.temperature == 0.2
    assert resolved.sources["temperature"] == f"file {data_config}"
    assert s.top_p == 0.7
    assert resolved.sources["top_p"] == "env ASSISTANT_TOP_P"
    assert s.max_new_tokens == 40
    assert resolved.sources["max_new_tokens"] == "flag --max-new-tokens"
    assert s.repetition_penalty == 1.0
    assert resolved.sources["repetition_penalty"] == "default"
    assert resolved.config_files == (user_config, data_config)


def test_data_dir_config_alone_is_read(data_dir: Path) -> None:
    data_config = write(data_dir / "config.toml", 'device = "cpu"\n')
    resolved = load(data_dir)
    assert resolved.settings.device == "cpu"
    assert resolved.sources["device"] == f"file {data_config}"
    assert resolved.config_files == (data_config,)


def test_flags_set_to_none_are_ignored(data_dir: Path) -> None:
    write(data_dir / "config.toml", "temperature = 0.2\n")
    resolved = load(data_dir, overrides={"temperature": None, "model": None})
    assert resolved.settings.temperature == 0.2
    assert resolved.settings.model == ""
    assert resolved.sources["model"] == "default"


def test_unknown_flag_is_a_config_error(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="colour"):
        load(data_dir, overrides={"colour": "blue"})


def test_only_the_given_environ_is_read(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_MODEL", "from-real-env")
    resolved = load(data_dir, environ={})
    assert resolved.settings.model == ""
    assert resolved.sources["model"] == "default"


# --- data dir ---------------------------------------------------------------------------------


def test_data_dir_flag_beats_env_and_local_conversations(tmp_path: Path) -> None:
    (tmp_path / "conversations").mkdir()
    flag_dir = tmp_path / "flag"
    resolved = load_settings(
        data_dir=flag_dir, environ={"ASSISTANT_DATA_DIR": str(tmp_path / "env")}, cwd=tmp_path
    )
    assert resolved.settings.data_dir == flag_dir.resolve()
    assert resolved.sources["data_dir"] == "flag --data-dir"


def test_data_dir_env_beats_local_conversations(tmp_path: Path) -> None:
    (tmp_path / "conversations").mkdir()
    env_dir = tmp_path / "env"
    resolved = load_settings(environ={"ASSISTANT_DATA_DIR": str(env_dir)}, cwd=tmp_path)
    assert resolved.settings.data_dir == env_dir.resolve()
    assert resolved.sources["data_dir"] == "env ASSISTANT_DATA_DIR"


def test_data_dir_is_local_conversations_when_it_exists(tmp_path: Path) -> None:
    (tmp_path / "conversations").mkdir()
    resolved = load_settings(environ={}, cwd=tmp_path)
    assert resolved.settings.data_dir == (tmp_path / "conversations").resolve()
    assert resolved.sources["data_dir"] == "./conversations"


def test_data_dir_falls_back_to_the_user_data_dir(tmp_path: Path, user_data_dir: Path) -> None:
    resolved = load_settings(environ={}, cwd=tmp_path)  # no ./conversations here
    assert resolved.settings.data_dir == user_data_dir.resolve()
    assert resolved.sources["data_dir"] == "user data dir"


def test_a_file_named_conversations_is_not_a_data_dir(tmp_path: Path, user_data_dir: Path) -> None:
    (tmp_path / "conversations").write_text("not a directory")
    resolved = load_settings(environ={}, cwd=tmp_path)
    assert resolved.settings.data_dir == user_data_dir.resolve()


def test_data_dir_config_comes_from_the_resolved_data_dir(tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    write(env_dir / "config.toml", 'device = "cpu"\n')
    resolved = load_settings(environ={"ASSISTANT_DATA_DIR": str(env_dir)}, cwd=tmp_path)
    assert resolved.settings.device == "cpu"


# --- explicit config file ---------------------------------------------------------------------


def test_assistant_config_replaces_both_files(data_dir: Path, user_config: Path, tmp_path: Path) -> None:
    write(user_config, 'device = "cpu"\nmodel = "user"\n')
    write(data_dir / "config.toml", "temperature = 0.2\nmodel = \"data\"\n")
    explicit = write(tmp_path / "explicit.toml", 'model = "explicit"\n')

    resolved = load(data_dir, environ={"ASSISTANT_CONFIG": str(explicit)})

    assert resolved.settings.model == "explicit"
    assert resolved.sources["model"] == f"file {explicit}"
    assert resolved.settings.device == "auto"
    assert resolved.settings.temperature == 0.3
    assert resolved.config_files == (explicit,)


def test_config_file_flag_replaces_both_files_and_beats_assistant_config(
    data_dir: Path, user_config: Path, tmp_path: Path
) -> None:
    write(user_config, 'device = "cpu"\n')
    write(data_dir / "config.toml", "temperature = 0.2\n")
    from_env = write(tmp_path / "env.toml", 'model = "env"\n')
    from_flag = write(tmp_path / "flag.toml", 'model = "flag"\n')

    resolved = load(data_dir, config_file=from_flag, environ={"ASSISTANT_CONFIG": str(from_env)})

    assert resolved.settings.model == "flag"
    assert (resolved.settings.device, resolved.settings.temperature) == ("auto", 0.3)
    assert resolved.config_files == (from_flag,)


def test_env_still_beats_an_explicit_config_file(data_dir: Path, tmp_path: Path) -> None:
    explicit = write(tmp_path / "explicit.toml", 'model = "file"\n')
    resolved = load(data_dir, config_file=explicit, environ={"ASSISTANT_MODEL": "env"})
    assert resolved.settings.model == "env"
    assert resolved.sources["model"] == "env ASSISTANT_MODEL"


@pytest.mark.parametrize("via", ["flag", "env"])
def test_missing_explicit_config_file_is_a_config_error(data_dir: Path, tmp_path: Path, via: str) -> None:
    missing = tmp_path / "nope.toml"
    kwargs = {"config_file": missing} if via == "flag" else {"environ": {"ASSISTANT_CONFIG": str(missing)}}
    with pytest.raises(ConfigError, match="not found") as info:
        load(data_dir, **kwargs)
    assert "nope.toml" in str(info.value)


# --- types ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["true", "TRUE", "1", "yes", " Yes ", "on"])
def test_env_bool_true_spellings(data_dir: Path, text: str) -> None:
    resolved = load(data_dir, environ={"ASSISTANT_CPU_LOAD_IN_4BIT": text})
    assert resolved.settings.cpu_load_in_4bit is True


@pytest.mark.parametrize("text", ["false", "False", "0", "no", "off", "OFF"])
def test_env_bool_false_spellings(data_dir: Path, text: str) -> None:
    write(data_dir / "config.toml", "cpu_load_in_4bit = true\n")
    resolved = load(data_dir, environ={"ASSISTANT_CPU_LOAD_IN_4BIT": text})
    assert resolved.settings.cpu_load_in_4bit is False


def test_env_numbers_are_coerced(data_dir: Path) -> None:
    environ = {
        "ASSISTANT_MAX_NEW_TOKENS": "12",
        "ASSISTANT_DEMO_SEED": "7",
        "ASSISTANT_TEMPERATURE": "0.5",
        "ASSISTANT_HUB_TIMEOUT": "2",
        "ASSISTANT_MODEL": "org/name",
    }
    s = load(data_dir, environ=environ).settings
    assert s.max_new_tokens == 12 and type(s.max_new_tokens) is int
    assert s.demo_seed == 7 and type(s.demo_seed) is int
    assert s.temperature == 0.5 and type(s.temperature) is float
    assert s.hub_timeout == 2.0 and type(s.hub_timeout) is float
    assert s.model == "org/name"


def test_toml_integer_is_accepted_for_a_float_setting(data_dir: Path) -> None:
    write(data_dir / "config.toml", "temperature = 1\n")
    s = load(data_dir).settings
    assert s.temperature == 1.0 and type(s.temperature) is float


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ASSISTANT_MAX_NEW_TOKENS", "many"),
        ("ASSISTANT_MAX_NEW_TOKENS", "12.5"),
        ("ASSISTANT_TEMPERATURE", "warm"),
        ("ASSISTANT_CPU_LOAD_IN_4BIT", "maybe"),
    ],
)
def test_env_wrong_type_names_the_setting(data_dir: Path, key: str, value: str) -> None:
    setting = key.removeprefix("ASSISTANT_").lower()
    with pytest.raises(ConfigError) as info:
        load(data_dir, environ={key: value})
    assert setting in str(info.value)
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        ('max_new_tokens = "lots"', "max_new_tokens"),
        ("max_new_tokens = 12.5", "max_new_tokens"),
        ("temperature = true", "temperature"),
        ("cpu_load_in_4bit = 3", "cpu_load_in_4bit"),
        ('model = ["a", "b"]', "model"),
        ("system_prompt = true", "system_prompt"),
    ],
)
def test_toml_wrong_type_names_the_setting(data_dir: Path, line: str, setting: str) -> None:
    path = write(data_dir / "config.toml", line + "\n")
    with pytest.raises(ConfigError) as info:
        load(data_dir)
    assert setting in str(info.value)
    assert str(path) in str(info.value)


def test_flag_wrong_type_names_the_flag(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="--max-new-tokens"):
        load(data_dir, overrides={"max_new_tokens": "many"})


@pytest.mark.parametrize("key", ["colour", "data_dir"])
def test_unknown_key_in_toml_names_the_key(data_dir: Path, key: str) -> None:
    write(data_dir / "config.toml", f'{key} = "x"\n')
    with pytest.raises(ConfigError, match=repr(key)):
        load(data_dir)


def test_unknown_key_in_user_config_names_the_key(data_dir: Path, user_config: Path) -> None:
    write(user_config, 'modle = "typo"\n')
    with pytest.raises(ConfigError, match="'modle'"):
        load(data_dir)


@pytest.mark.parametrize("text", ["model = \n", "[unclosed\n", 'model = "a"\nmodel = "b"\n'])
def test_invalid_toml_is_a_config_error(data_dir: Path, text: str) -> None:
    path = write(data_dir / "config.toml", text)
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load(data_dir)
    assert str(path) in str(info.value)


def test_non_utf8_config_is_a_config_error(data_dir: Path) -> None:
    (data_dir / "config.toml").write_bytes(b'model = "\xff\xfe"\n')
    with pytest.raises(ConfigError):
        load(data_dir)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"device": "gpu"}, "device"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"top_p": -0.5}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"max_new_tokens": -3}, "max_new_tokens"),
    ],
)
def test_invalid_values_are_rejected(data_dir: Path, overrides: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load(data_dir, overrides=overrides)


def test_invalid_value_from_env_is_rejected(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="device"):
        load(data_dir, environ={"ASSISTANT_DEVICE": "tpu"})


@pytest.mark.parametrize(
    "overrides",
    [
        {"device": "auto"},
        {"device": "cpu"},
        {"device": "cuda"},
        {"temperature": 0.0},
        {"top_p": 1.0},
        {"top_p": 0.01},
        {"max_new_tokens": 1},
    ],
)
def test_boundary_values_are_accepted(data_dir: Path, overrides: dict) -> None:
    s = load(data_dir, overrides=overrides).settings
    for name, value in overrides.items():
        assert getattr(s, name) == value


# --- user and help ----------------------------------------------------------------------------


def test_user_defaults_to_the_os_login_name(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "zed")
    resolved = load(data_dir)
    assert resolved.settings.user == "zed"
    assert resolved.sources["user"] == "OS login name"


def test_user_can_be_set(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "zed")
    resolved = load(data_dir, environ={"ASSISTANT_USER": "ann"})
    assert resolved.settings.user == "ann"
    assert resolved.sources["user"] == "env ASSISTANT_USER"


def test_user_without_a_login_name_still_gets_a_name(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_login() -> str:
        raise OSError("no login name")

    monkeypatch.setattr(getpass, "getuser", no_login)
    assert load(data_dir).settings.user.strip()


def test_blank_user_is_rejected(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="user"):
        load(data_dir, overrides={"user": "   "})


def test_every_setting_has_help_text() -> None:
    helps = field_help()
    names = {f.name for f in dataclasses.fields(Settings)}
    assert names - {"data_dir"} <= set(helps)
    for name in names - {"data_dir"}:
        assert helps[name].strip(), name


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [("ASSISTANT_TEMPERATURE", "nan", "temperature"), ("ASSISTANT_TOP_P", "inf", "top_p"),
     ("ASSISTANT_DEMO_RECIPE", "big", "demo_recipe")],
)
def test_values_no_command_could_use_are_refused(tmp_path: Path, variable: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(data_dir=tmp_path, environ={variable: value})


def test_curators_from_a_toml_list_or_a_comma_separated_variable(data_dir: Path) -> None:
    write(data_dir / "config.toml", 'curators = ["maria", "tom", "maria"]\n')
    assert load(data_dir).settings.curators == ("maria", "tom")
    resolved = load(data_dir, environ={"ASSISTANT_CURATORS": " zoe, ann ,"})
    assert resolved.settings.curators == ("zoe", "ann")
    assert load(data_dir, environ={"ASSISTANT_CURATORS": ""}).settings.curators == ()


def test_pii_patterns_from_a_toml_table_or_a_json_variable(data_dir: Path) -> None:
    write(data_dir / "config.toml", "[pii_patterns]\nORDER_ID = 'NH-\\d{5}'\nTICKET = 'T\\d+'\n")
    assert load(data_dir).settings.pii_patterns == (("ORDER_ID", r"NH-\d{5}"), ("TICKET", r"T\d+"))
    resolved = load(data_dir, environ={"ASSISTANT_PII_PATTERNS": '{"VIN": "[A-Z0-9]{17}"}'})
    assert resolved.settings.pii_patterns == (("VIN", "[A-Z0-9]{17}"),)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("curators = 'maria'\ncurators = 3", "not valid TOML"),
        ("curators = [1, 2]", "curators must be a list of names"),
        ("[pii_patterns]\norder = 'x'", "must be an upper-case name"),
        ("[pii_patterns]\nORDER = '(unclosed'", "ORDER is not a valid regex"),
        ("eval_fraction = 1.0", "eval_fraction must be in [0, 1)"),
        ("max_length = 8", "max_length must be at least 16"),
        ("max_truncated_fraction = 1.5", "max_truncated_fraction must be in [0, 1]"),
    ],
)
def test_bad_curation_settings_name_the_setting(data_dir: Path, line: str, words: str) -> None:
    write(data_dir / "config.toml", line + "\n")
    with pytest.raises(ConfigError, match=re.escape(words)):
        load(data_dir)


def test_a_bad_json_variable_is_a_config_error(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="ASSISTANT_PII_PATTERNS: pii_patterns must be a table"):
        load(data_dir, environ={"ASSISTANT_PII_PATTERNS": "{not json"})


# --- sections ---------------------------------------------------------------------------------


def test_a_config_file_may_group_settings_under_their_sections(data_dir: Path) -> None:
    write(
        data_dir / "config.toml",
        'temperature = 0.5\n[training]\nlora_r = 8\nlora_target_modules = ["q_proj"]\n'
        '[gate]\ngate_margin = 0.1\n[dataset.pii_patterns]\nORDER_ID = "ORD-[0-9]+"\n',
    )
    settings = load(data_dir).settings
    assert (settings.temperature, settings.lora_r, settings.gate_margin) == (0.5, 8, 0.1)
    assert settings.lora_target_modules == ("q_proj",)
    assert settings.pii_patterns == (("ORDER_ID", "ORD-[0-9]+"),)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[chat]\nlora_r = 8\n", "lora_r belongs under [training], not [chat]"),
        ("lora_r = 8\n[training]\nlora_r = 4\n", "lora_r is set twice"),
        ("chat = 3\n", "[chat] must be a table of settings"),
        ("[training]\nlora_rank = 8\n", "unknown setting 'lora_rank'"),
    ],
)
def test_a_setting_under_the_wrong_section_is_refused(data_dir: Path, text: str, error: str) -> None:
    write(data_dir / "config.toml", text)
    with pytest.raises(ConfigError, match=re.escape(error)):
        load(data_dir)


def test_every_setting_has_a_section_and_every_section_settings() -> None:
    fields = [f for f in dataclasses.fields(Settings) if f.name != "data_dir"]
    sections = {f.metadata["section"] for f in fields}
    assert sections == set(settings_module.SECTIONS)
    assert {"chat", "dataset", "training", "gate", "server"} <= sections


def test_an_admin_only_setting_stays_admin_only_under_its_section(data_dir: Path, user_config: Path) -> None:
    write(user_config, "[curation]\nallow_user_override = true\n")
    with pytest.raises(ConfigError, match="read only from the data dir"):
        load(data_dir)
