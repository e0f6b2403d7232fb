"""Errors: one `error: ...` line on stderr, the documented exit code, nothing on disk lost."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from assistant import __version__
from tests.cli.helpers import run_subprocess, write_jsonl


def _corrupt(data_dir: Path) -> bytes:
    data = random.Random(6).randbytes(8192)
    (data_dir / "assistant.db").write_bytes(data)
    return data


def test_corrupt_database(cli, data_dir: Path) -> None:
    data = _corrupt(data_dir)

    result = cli("history", "list", "--data-dir", data_dir)

    assert result.code == 6
    assert result.out == ""
    [line] = result.err_lines
    assert line.startswith("error: database ") and "corrupt" in line
    assert (data_dir / "assistant.db").read_bytes() == data


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("max_new_tokens = 99\ncolour = 'blue'\n", "unknown setting 'colour'"),
        ('max_new_tokens = "many"\n', "max_new_tokens must be int, got 'many'"),
        ("max_new_tokens = \n", "is not valid TOML"),
        ("[[[\n", "is not valid TOML"),
    ],
    ids=["unknown key", "wrong type", "missing value", "broken table"],
)
def test_bad_config_file(cli, data_dir: Path, config: str, expected: str) -> None:
    (data_dir / "config.toml").write_text(config, encoding="utf-8")

    result = cli("history", "list", "--data-dir", data_dir)

    assert result.code == 3
    [line] = result.err_lines
    assert line.startswith("error: ") and expected in line
    assert str((data_dir / "config.toml").resolve()) in line


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ASSISTANT_TEMPERATURE", "-1", "temperature must be 0 or more"),
        ("ASSISTANT_TEMPERATURE", "warm", "env ASSISTANT_TEMPERATURE: temperature must be float"),
        ("ASSISTANT_DEVICE", "tpu", "device must be auto, cpu or cuda"),
    ],
)
def test_bad_environment_variable(
    cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)

    result = cli("history", "list", "--data-dir", data_dir)

    assert result.code == 3
    [line] = result.err_lines
    assert line.startswith("error: ") and expected in line


def test_missing_explicit_config_file(cli, data_dir: Path, tmp_path: Path) -> None:
    result = cli("history", "list", "--data-dir", data_dir, "--config", tmp_path / "nope.toml")

    assert result.code == 3
    assert result.err_lines == [f"error: config file not found: {tmp_path / 'nope.toml'}"]


def test_data_dir_below_a_regular_file(cli, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")

    result = cli("history", "list", "--data-dir", blocker / "data")

    assert result.code == 6
    [line] = result.err_lines
    assert line.startswith("error: cannot create data dir")
    assert blocker.read_text() == "keep me"


def test_errors_in_a_real_process_are_one_line_without_traceback(tmp_path: Path, data_dir: Path) -> None:
    data = _corrupt(data_dir)

    corrupt = run_subprocess("history", "list", "--data-dir", data_dir, cwd=tmp_path)

    assert corrupt.code == 6
    assert corrupt.out == ""
    assert len(corrupt.err.splitlines()) == 1 and corrupt.err.endswith("\n")
    assert "corrupt" in corrupt.err and "Traceback" not in corrupt.err
    assert (data_dir / "assistant.db").read_bytes() == data

    bad = write_jsonl(tmp_path / "bad.jsonl", {"messages": [{"role": "user", "content": "hi"}]}, "{oops")
    fresh = tmp_path / "fresh"
    imported = run_subprocess("import", bad, "--data-dir", fresh, cwd=tmp_path)

    assert imported.code == 4
    assert imported.err.splitlines() == [imported.err.strip()]
    assert imported.err.startswith("error: bad.jsonl line 2: not valid JSON")
    assert "Traceback" not in imported.err


def test_version(cli) -> None:
    result = cli("--version")

    assert result.code == 0
    assert result.out.strip() == f"assistant, version {__version__}"


def test_unknown_command_is_a_usage_error(cli) -> None:
    result = cli("frobnicate")

    assert result.code == 2
    assert result.out == ""
    assert "No such command 'frobnicate'" in result.err


def test_missing_argument_is_a_usage_error(cli, data_dir: Path) -> None:
    result = cli("history", "show", "--data-dir", data_dir)

    assert result.code == 2
    assert "Missing argument" in result.err


def test_version_in_a_real_process(tmp_path: Path) -> None:
    result = run_subprocess("--version", cwd=tmp_path)

    assert (result.code, result.out.strip(), result.err) == (0, f"assistant, version {__version__}", "")
