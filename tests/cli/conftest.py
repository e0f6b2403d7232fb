"""Helpers for the command-line tests: an isolated environment and an in-process runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.cli import main
from tests.cli.helpers import Result


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ASSISTANT_* variable or user config file from the machine; never the network."""
    for key in list(os.environ):
        if key.startswith("ASSISTANT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ASSISTANT_FALLBACK_MODEL", "demo")  # not SmolLM2 from the package index
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def fast_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_MAX_NEW_TOKENS", "24")
    monkeypatch.setenv("ASSISTANT_TEMPERATURE", "0")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run `assistant ARGS...` in-process; returns the exit code and what it printed."""

    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
