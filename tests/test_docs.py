"""The README documents every setting and every exit code the code has."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from assistant.errors import EXIT_CODES
from assistant.settings import ENV_PREFIX, Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_with_its_variable() -> None:
    for field in dataclasses.fields(Settings):
        assert f"| `{field.name}` |" in README, field.name
        assert f"`{ENV_PREFIX}{field.name.upper()}`" in README, field.name


def test_every_exit_code_is_documented() -> None:
    for code in EXIT_CODES:
        assert f"\n| {code} |" in README, code


def test_readme_opens_with_the_two_commands() -> None:
    opening = README.split("```")[1]
    commands = [line.split("#")[0].strip() for line in opening.splitlines() if line.strip() and "sh" != line.strip()]
    assert commands == ["python3 scripts/bootstrap.py chat", "python3 scripts/bootstrap.py test"]
