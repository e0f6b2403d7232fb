"""Helpers shared by the command-line tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from assistant.store import Store

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def run_subprocess(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    environ.update(HF_HUB_OFFLINE="1", XDG_CONFIG_HOME=str(cwd / "xdg-config"), PYTHONPATH=str(REPO))
    environ.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "assistant", *map(str, args)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def open_store(data_dir: Path) -> Store:
    return Store.open(data_dir / "assistant.db")


def write_jsonl(path: Path, *records: dict | str) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
